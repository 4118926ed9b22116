# The shipped policy in front of Salesforce: classification.salesforce and
# resources.salesforce give the shipped roles their plans out of the box.
package veil.systems.salesforce_test

import data.veil

request(role, type, action, fields) := {
	"user": {"id": "005RO000001QwErYAK", "roles": [role], "department": "cs", "claims": {}, "restricted": false},
	"request": {"method": "GET", "path": "/services/data/v60.0/query", "query": {}, "headers": {}, "client_ip": "10.1.2.3", "time": "2026-11-28T09:00:00Z"},
	"route": "salesforce",
	"resource": {"system": "salesforce", "type": type, "action": action, "id": null, "page_size": 200, "fields": fields, "export": false},
}

test_cs_agent_masks_contact_fields if {
	d := veil.decision with input as request("cs_agent", "Contact", "list", [])
	d.allow
	d.fields.MobilePhone == "mask:phone"
	d.fields.Phone == "mask:phone"
	d.fields.Email == "mask:email"
	d.fields.National_ID__c == "mask:id_card"
	d.fields.MailingAddress == "mask:address"
	d.fields.MailingStreet == "mask:address"
	not d.fields.Id
}

# A nextRecordsUrl page does not name its object: the system-wide entries still apply.
test_query_pages_are_masked if {
	d := veil.decision with input as request("cs_agent", "query", "list", [])
	d.allow
	d.fields.MobilePhone == "mask:phone"
}

test_report_cells_are_core if {
	d := veil.decision with input as request("ops_manager", "report", "export", [])
	d.allow
	d.fields["dataCells.*.label"] == "mask:generic"
	d.fields["dataCells.*.value"] == "mask:generic"
	r := veil.decision with input as request("cs_agent", "report", "export", [])
	not r.allow
}

test_contractor_reads_products_only if {
	not veil.decision.allow with input as request("contractor", "Contact", "list", [])
	veil.decision.allow with input as request("contractor", "Product2", "list", [])
	veil.decision.allow with input as request("contractor", "metadata", "read", [])
}

test_host_rows_are_scoped_by_owner if {
	d := veil.decision with input as request("host", "Account", "list", [])
	d.rows == [{"field": "OwnerId", "op": "eq", "value": "005RO000001QwErYAK"}]
}

test_cs_agent_may_not_update_a_phone if {
	d := veil.decision with input as request("cs_agent", "Contact", "update", ["Title", "MobilePhone"])
	d.reason == "you may not change sensitive fields"
	veil.decision.allow with input as request("cs_agent", "Contact", "update", ["Title", "DoNotCall"])
}
