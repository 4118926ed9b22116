# The shipped policy in front of Kingdee: 云星空 FieldKeys and 云星辰 snake_case names.
package veil.systems.kingdee_test

import data.veil

request(role, type, action, fields) := {
	"user": {"id": "alice", "roles": [role], "department": "finance", "claims": {}, "restricted": false},
	"request": {"method": "POST", "path": "/k3cloud/x.common.kdsvc", "query": {}, "headers": {}, "client_ip": "10.1.2.3", "time": "2026-11-28T09:00:00Z"},
	"route": "k3cloud",
	"resource": {"system": "kingdee", "type": type, "action": action, "id": null, "page_size": 2000, "fields": fields, "export": false},
}

test_cs_agent_masks_customer_columns if {
	d := veil.decision with input as request("cs_agent", "BD_Customer", "list", [])
	d.allow
	d.fields.FTEL == "mask:phone"
	d.fields.FADDRESS == "mask:address"
	d.fields.FINVOICEBANKACCOUNT == "mask:bank_card"
	d.fields.FTAXREGISTERCODE == "mask:generic"
	not d.fields.FNumber
}

test_cs_agent_masks_xingchen_fields if {
	d := veil.decision with input as request("cs_agent", "customer", "list", [])
	d.fields.MOBILE == "mask:phone"
	d.fields.addr == "mask:address"
	d.fields.bank_account == "mask:bank_card"
	d.fields.contact_person == "mask:name"
}

test_login_is_not_personal if {
	veil.decision.allow with input as request("contractor", "session", "read", [])
}

test_cs_agent_may_not_update_a_phone if {
	d := veil.decision with input as request("cs_agent", "BD_Customer", "update", ["FShortName", "FTEL"])
	d.reason == "you may not change sensitive fields"
}
