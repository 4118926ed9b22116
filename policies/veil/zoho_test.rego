# The shipped policy in front of Zoho CRM: classification.zoho and resources.zoho.
package veil.systems.zoho_test

import data.veil

request(role, type, action, fields) := {
	"user": {"id": "5725767000000411002", "roles": [role], "department": "cs", "claims": {}, "restricted": false},
	"request": {"method": "GET", "path": "/crm/v8/Contacts", "query": {}, "headers": {}, "client_ip": "10.1.2.3", "time": "2026-11-28T09:00:00Z"},
	"route": "zoho",
	"resource": {"system": "zoho", "type": type, "action": action, "id": null, "page_size": 200, "fields": fields, "export": false},
}

test_cs_agent_masks_contact_fields if {
	d := veil.decision with input as request("cs_agent", "Contacts", "list", [])
	d.allow
	d.fields.Mobile == "mask:phone"
	d.fields.Email == "mask:email"
	d.fields.National_ID == "mask:id_card"
	d.fields.Mailing_Street == "mask:address"
	d.max_page_size == 500
}

test_host_rows_are_scoped_by_owner if {
	d := veil.decision with input as request("host", "Leads", "list", [])
	d.rows == [{"field": "Owner.id", "op": "eq", "value": "5725767000000411002"}]
}

test_exports_need_the_export_right if {
	not veil.decision.allow with input as request("cs_agent", "bulk", "export", [])
	veil.decision.allow with input as request("ops_manager", "bulk", "export", [])
}

test_cs_agent_may_not_update_a_mobile if {
	d := veil.decision with input as request("cs_agent", "Contacts", "update", ["Lead_Source", "Mobile"])
	d.reason == "you may not change sensitive fields"
}
