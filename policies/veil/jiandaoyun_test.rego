# The shipped policy in front of Jiandaoyun: fields are named by widget labels.
package veil.systems.jiandaoyun_test

import data.veil

request(role, type, action, fields) := {
	"user": {"id": "alice", "roles": [role], "department": "cs", "claims": {}, "restricted": false},
	"request": {"method": "POST", "path": "/api/v5/app/entry/data/list", "query": {}, "headers": {}, "client_ip": "10.1.2.3", "time": "2026-11-28T09:00:00Z"},
	"route": "jiandaoyun",
	"resource": {"system": "jiandaoyun", "type": type, "action": action, "id": null, "page_size": 100, "fields": fields, "export": false},
}

test_cs_agent_masks_labelled_fields if {
	d := veil.decision with input as request("cs_agent", "customers", "list", [])
	d.allow
	d.fields["手机号"] == "mask:phone"
	d.fields["身份证号"] == "mask:id_card"
	d.fields["邮箱"] == "mask:email"
	d.fields["联系地址"] == "mask:address"
	d.fields["银行卡号"] == "mask:bank_card"
}

test_cs_agent_may_not_update_a_subform_phone if {
	d := veil.decision with input as request("cs_agent", "customers", "update", ["联系人明细.联系人电话"])
	d.reason == "you may not change sensitive fields"
}

test_metadata_is_not_personal if {
	veil.decision.allow with input as request("contractor", "metadata", "read", [])
	not veil.decision.allow with input as request("contractor", "data", "list", [])
}
