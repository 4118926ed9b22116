package veil_test

import data.veil

# request is the input of a request by alice, holding roles, to act on a
# generic resource type; an update names the public field "tags".
request(roles, type, action) := {
	"user": {"id": "alice", "roles": roles, "department": "cs", "claims": {}, "restricted": false},
	"request": {
		"method": "GET",
		"path": concat("/", ["", "api", type]),
		"query": {},
		"headers": {},
		"client_ip": "10.1.2.3",
		"time": "2026-11-28T09:00:00Z",
	},
	"route": "livecrm",
	"resource": {
		"system": "generic",
		"type": type,
		"action": action,
		"id": null,
		"page_size": 100,
		"fields": fields_for(action),
		"export": false,
	},
}

fields_for("update") := ["tags"]

fields_for(action) := [] if action != "update"

# with_user is req with some user keys replaced.
with_user(req, user) := object.union(req, {"user": object.union(req.user, user)})

# with_resource is req with some resource keys replaced.
with_resource(req, resource) := object.union(req, {"resource": object.union(req.resource, resource)})

# outcome is "allow" or the reason of a deny.
outcome(d) := "allow" if d.allow == true

else := d.reason

# matrix holds every role × resource × action of the generic demo system.
matrix := [
	{"role": "cs_agent", "type": "customers", "action": "list", "want": "allow"},
	{"role": "cs_agent", "type": "customers", "action": "read", "want": "allow"},
	{"role": "cs_agent", "type": "customers", "action": "export", "want": "customer-service agents may not export data"},
	{"role": "cs_agent", "type": "customers", "action": "update", "want": "allow"},
	{"role": "cs_agent", "type": "customers", "action": "create", "want": "customer-service agents may not create records"},
	{"role": "cs_agent", "type": "customers", "action": "delete", "want": "customer-service agents may not delete records"},
	{"role": "cs_agent", "type": "orders", "action": "list", "want": "allow"},
	{"role": "cs_agent", "type": "orders", "action": "read", "want": "allow"},
	{"role": "cs_agent", "type": "orders", "action": "export", "want": "customer-service agents may not export data"},
	{"role": "cs_agent", "type": "orders", "action": "update", "want": "allow"},
	{"role": "cs_agent", "type": "orders", "action": "create", "want": "customer-service agents may not create records"},
	{"role": "cs_agent", "type": "orders", "action": "delete", "want": "customer-service agents may not delete records"},
	{"role": "cs_agent", "type": "products", "action": "list", "want": "allow"},
	{"role": "cs_agent", "type": "products", "action": "read", "want": "allow"},
	{"role": "cs_agent", "type": "products", "action": "export", "want": "customer-service agents may not export data"},
	{"role": "cs_agent", "type": "products", "action": "update", "want": "allow"},
	{"role": "cs_agent", "type": "products", "action": "create", "want": "customer-service agents may not create records"},
	{"role": "cs_agent", "type": "products", "action": "delete", "want": "customer-service agents may not delete records"},
	{"role": "host", "type": "customers", "action": "list", "want": "allow"},
	{"role": "host", "type": "customers", "action": "read", "want": "allow"},
	{"role": "host", "type": "customers", "action": "export", "want": "hosts may not export customer data"},
	{"role": "host", "type": "customers", "action": "update", "want": "your role may not update records"},
	{"role": "host", "type": "customers", "action": "create", "want": "your role may not create records"},
	{"role": "host", "type": "customers", "action": "delete", "want": "your role may not delete records"},
	{"role": "host", "type": "orders", "action": "list", "want": "allow"},
	{"role": "host", "type": "orders", "action": "read", "want": "allow"},
	{"role": "host", "type": "orders", "action": "export", "want": "hosts may not export customer data"},
	{"role": "host", "type": "orders", "action": "update", "want": "your role may not update records"},
	{"role": "host", "type": "orders", "action": "create", "want": "your role may not create records"},
	{"role": "host", "type": "orders", "action": "delete", "want": "your role may not delete records"},
	{"role": "host", "type": "products", "action": "list", "want": "allow"},
	{"role": "host", "type": "products", "action": "read", "want": "allow"},
	{"role": "host", "type": "products", "action": "export", "want": "hosts may not export customer data"},
	{"role": "host", "type": "products", "action": "update", "want": "your role may not update records"},
	{"role": "host", "type": "products", "action": "create", "want": "your role may not create records"},
	{"role": "host", "type": "products", "action": "delete", "want": "your role may not delete records"},
	{"role": "contractor", "type": "customers", "action": "list", "want": "your role may only read resources without personal data"},
	{"role": "contractor", "type": "customers", "action": "read", "want": "your role may only read resources without personal data"},
	{"role": "contractor", "type": "customers", "action": "export", "want": "contractors may not export data"},
	{"role": "contractor", "type": "customers", "action": "update", "want": "your role may not update records"},
	{"role": "contractor", "type": "customers", "action": "create", "want": "your role may not create records"},
	{"role": "contractor", "type": "customers", "action": "delete", "want": "your role may not delete records"},
	{"role": "contractor", "type": "orders", "action": "list", "want": "allow"},
	{"role": "contractor", "type": "orders", "action": "read", "want": "allow"},
	{"role": "contractor", "type": "orders", "action": "export", "want": "contractors may not export data"},
	{"role": "contractor", "type": "orders", "action": "update", "want": "your role may not update records"},
	{"role": "contractor", "type": "orders", "action": "create", "want": "your role may not create records"},
	{"role": "contractor", "type": "orders", "action": "delete", "want": "your role may not delete records"},
	{"role": "contractor", "type": "products", "action": "list", "want": "allow"},
	{"role": "contractor", "type": "products", "action": "read", "want": "allow"},
	{"role": "contractor", "type": "products", "action": "export", "want": "contractors may not export data"},
	{"role": "contractor", "type": "products", "action": "update", "want": "your role may not update records"},
	{"role": "contractor", "type": "products", "action": "create", "want": "your role may not create records"},
	{"role": "contractor", "type": "products", "action": "delete", "want": "your role may not delete records"},
	{"role": "ops_manager", "type": "customers", "action": "list", "want": "allow"},
	{"role": "ops_manager", "type": "customers", "action": "read", "want": "allow"},
	{"role": "ops_manager", "type": "customers", "action": "export", "want": "allow"},
	{"role": "ops_manager", "type": "customers", "action": "update", "want": "your role may not update records"},
	{"role": "ops_manager", "type": "customers", "action": "create", "want": "your role may not create records"},
	{"role": "ops_manager", "type": "customers", "action": "delete", "want": "your role may not delete records"},
	{"role": "ops_manager", "type": "orders", "action": "list", "want": "allow"},
	{"role": "ops_manager", "type": "orders", "action": "read", "want": "allow"},
	{"role": "ops_manager", "type": "orders", "action": "export", "want": "allow"},
	{"role": "ops_manager", "type": "orders", "action": "update", "want": "your role may not update records"},
	{"role": "ops_manager", "type": "orders", "action": "create", "want": "your role may not create records"},
	{"role": "ops_manager", "type": "orders", "action": "delete", "want": "your role may not delete records"},
	{"role": "ops_manager", "type": "products", "action": "list", "want": "allow"},
	{"role": "ops_manager", "type": "products", "action": "read", "want": "allow"},
	{"role": "ops_manager", "type": "products", "action": "export", "want": "allow"},
	{"role": "ops_manager", "type": "products", "action": "update", "want": "your role may not update records"},
	{"role": "ops_manager", "type": "products", "action": "create", "want": "your role may not create records"},
	{"role": "ops_manager", "type": "products", "action": "delete", "want": "your role may not delete records"},
	{"role": "security_admin", "type": "customers", "action": "list", "want": "allow"},
	{"role": "security_admin", "type": "customers", "action": "read", "want": "allow"},
	{"role": "security_admin", "type": "customers", "action": "export", "want": "allow"},
	{"role": "security_admin", "type": "customers", "action": "update", "want": "your role may not update records"},
	{"role": "security_admin", "type": "customers", "action": "create", "want": "your role may not create records"},
	{"role": "security_admin", "type": "customers", "action": "delete", "want": "your role may not delete records"},
	{"role": "security_admin", "type": "orders", "action": "list", "want": "allow"},
	{"role": "security_admin", "type": "orders", "action": "read", "want": "allow"},
	{"role": "security_admin", "type": "orders", "action": "export", "want": "allow"},
	{"role": "security_admin", "type": "orders", "action": "update", "want": "your role may not update records"},
	{"role": "security_admin", "type": "orders", "action": "create", "want": "your role may not create records"},
	{"role": "security_admin", "type": "orders", "action": "delete", "want": "your role may not delete records"},
	{"role": "security_admin", "type": "products", "action": "list", "want": "allow"},
	{"role": "security_admin", "type": "products", "action": "read", "want": "allow"},
	{"role": "security_admin", "type": "products", "action": "export", "want": "allow"},
	{"role": "security_admin", "type": "products", "action": "update", "want": "your role may not update records"},
	{"role": "security_admin", "type": "products", "action": "create", "want": "your role may not create records"},
	{"role": "security_admin", "type": "products", "action": "delete", "want": "your role may not delete records"},
]

test_matrix[name] if {
	some c in matrix
	name := concat(" ", [c.role, c.action, c.type])
	d := veil.decision with input as request([c.role], c.type, c.action)
	outcome(d) == c.want
}

test_every_deny_is_403_enforce[name] if {
	some c in matrix
	c.want != "allow"
	name := concat(" ", [c.role, c.action, c.type])
	d := veil.decision with input as request([c.role], c.type, c.action)
	d == {"allow": false, "status": 403, "reason": c.want, "mode": "enforce"}
}

test_cs_agent_list_customers_masks_sensitive_and_core if {
	d := veil.decision with input as request(["cs_agent"], "customers", "list")
	d.allow
	d.fields.mobile == "mask:phone"
	d.fields.id_card == "mask:id_card"
	d.fields.bank_card == "mask:bank_card"
	d.fields.email == "mask:email"
	d.fields.name == "mask:name"
	d.fields.address == "mask:address"
	d.fields.note == "mask"
	d.fields.receiver == "mask:generic"
	d.fields.receiver_phone == "mask:phone"
	d.fields.taxid == "mask:id_card"
	not d.fields.id
	not d.fields.owner_id
	not d.fields.chat_log
	d.rows == []
	d.detect == ["phone", "id_card", "bank_card", "email", "address"]
	d.max_page_size == 500
	d.mode == "enforce"
	d.limits == [
		{"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 2000},
		{"name": "dept-hourly", "key": "dept:cs", "window": "1h", "records": 20000},
	]
}

test_host_reads_own_customers_with_core_redacted if {
	d := veil.decision with input as request(["host"], "customers", "list")
	d.allow
	d.rows == [{"field": "owner_id", "op": "eq", "value": "alice"}]
	d.fields.mobile == "mask:phone"
	d.fields.id_card == "redact"
	d.fields.bank_card == "redact"
	d.limits[0].records == 500
}

test_host_reads_own_orders if {
	d := veil.decision with input as request(["host"], "orders", "read")
	d.rows == [{"field": "owner_id", "op": "eq", "value": "alice"}]
}

test_host_reads_products_unscoped if {
	d := veil.decision with input as request(["host"], "products", "list")
	d.allow
	d.rows == []
}

test_contractor_reads_orders_without_receiver if {
	d := veil.decision with input as request(["contractor"], "orders", "list")
	d.allow
	d.fields.receiver == "drop"
	d.fields.receiver_phone == "drop"
	d.fields.phone == "drop"
	not d.fields.status
	not d.fields.name
	d.limits[0].records == 200
}

test_contractor_reads_products_names if {
	d := veil.decision with input as request(["contractor"], "products", "read")
	d.allow
	not d.fields.name
	d.fields.phone == "drop"
}

test_ops_manager_exports_masked_within_budget if {
	d := veil.decision with input as request(["ops_manager"], "customers", "export")
	d.allow
	d.fields.mobile == "mask:phone"
	d.fields.id_card == "mask:id_card"
	d.max_page_size == 1000
	d.limits[0] == {"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 5000}
}

test_security_admin_sees_everything if {
	d := veil.decision with input as request(["security_admin"], "customers", "export")
	d.allow
	d.fields == {}
	d.detect == []
	d.rows == []
	d.max_page_size == 0
	d.limits == [{"name": "dept-hourly", "key": "dept:cs", "window": "1h", "records": 20000}]
}

test_export_flag_makes_a_list_an_export if {
	req := with_resource(request(["cs_agent"], "customers", "list"), {"export": true})
	d := veil.decision with input as req
	d.reason == "customer-service agents may not export data"
}

test_unknown_action_denied if {
	d := veil.decision with input as request(["security_admin"], "customers", "other")
	d.reason == "this operation is not covered by the data policy"
}

test_no_role_denied[name] if {
	some name, c in {
		"empty": {"roles": [], "reason": "you have no role; ask an administrator for access"},
		"null": {"roles": null, "reason": "you have no role; ask an administrator for access"},
		"blank": {"roles": [""], "reason": "none of your roles grants access through Veil"},
	}
	d := veil.decision with input as with_user(request(["cs_agent"], "customers", "list"), {"roles": c.roles})
	d == {"allow": false, "status": 403, "reason": c.reason, "mode": "enforce"}
}

test_roles_missing_denied if {
	req := request(["cs_agent"], "customers", "list")
	d := veil.decision with input as object.union(object.remove(req, ["user"]), {"user": object.remove(req.user, ["roles"])})
	d.reason == "you have no role; ask an administrator for access"
}

test_unknown_role_denied if {
	d := veil.decision with input as request(["intern"], "customers", "list")
	d == {"allow": false, "status": 403, "reason": "none of your roles grants access through Veil", "mode": "enforce"}
}

test_broadest_role_wins if {
	d := veil.decision with input as request(["contractor", "intern", "security_admin"], "customers", "list")
	d.allow
	d.fields == {}
}

test_empty_type_denied[role] if {
	some role in ["cs_agent", "security_admin"]
	d := veil.decision with input as request([role], "", "list")
	d.reason == "this path is not a resource the data policy knows"
}

test_unknown_type_uses_system_wide_classification if {
	d := veil.decision with input as request(["cs_agent"], "invoices", "list")
	d.allow
	d.fields.phone == "mask:phone"
	d.fields.name == "mask:name"
}

test_unknown_type_is_personal[role] if {
	some role, reason in {
		"contractor": "your role may only read resources without personal data",
		"host": "your role may only read records you own, and this resource has no owner field",
	}
	d := veil.decision with input as request([role], "invoices", "list")
	d.reason == reason
}

test_unknown_system_detects_only if {
	req := with_resource(request(["cs_agent"], "contacts", "list"), {"system": "acme"})
	d := veil.decision with input as req
	d.allow
	d.fields == {}
	d.detect == ["phone", "id_card", "bank_card", "email", "address"]
}

test_update_with_classified_field_denied[name] if {
	some name, fields in {
		"sensitive": ["tags", "mobile"],
		"core": ["id_card"],
		"case": ["Mobile"],
		"path": ["address.city"],
		"nested name": ["orders.receiver_phone"],
		"system-wide": ["TaxID"],
	}
	req := with_resource(request(["cs_agent"], "customers", "update"), {"fields": fields})
	d := veil.decision with input as req
	d.reason == "you may not change sensitive fields"
}

test_update_of_unlisted_type_checks_system_wide_fields if {
	req := with_resource(request(["cs_agent"], "invoices", "update"), {"fields": ["Phone"]})
	d := veil.decision with input as req
	d.reason == "you may not change sensitive fields"
}

test_update_with_public_fields_allowed if {
	req := with_resource(request(["cs_agent"], "customers", "update"), {"fields": ["tags", "level", "chat_log"]})
	d := veil.decision with input as req
	d.allow
	d.limits == []
}

test_update_naming_no_field_denied[name] if {
	some name, fields in {"empty": [], "null": null, "blank": [""]}
	req := with_resource(request(["cs_agent"], "customers", "update"), {"fields": fields})
	d := veil.decision with input as req
	d.reason == "an update must name the fields it changes"
}

test_restricted_user_contained[role] if {
	some role in ["cs_agent", "ops_manager", "security_admin"]
	req := with_user(request([role], "customers", "list"), {"restricted": true})
	d := veil.decision with input as req
	d.allow
	d.fields.mobile == "redact"
	d.fields.id == "redact"
	d.fields.owner_id == "redact"
	d.detect == ["phone", "id_card", "bank_card", "email", "address"]
	d.limits[0] == {"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 0}
}

test_restricted_user_may_not_export_or_write[action] if {
	some action in ["export", "update", "create", "delete"]
	req := with_user(request(["security_admin"], "customers", action), {"restricted": true})
	d := veil.decision with input as req
	d.reason == "your account is restricted pending a security review"
}

test_restricted_contractor_still_refused_personal_data if {
	req := with_user(request(["contractor"], "customers", "list"), {"restricted": true})
	d := veil.decision with input as req
	d.reason == "your role may only read resources without personal data"
}

test_revoked_user_denied[name] if {
	some name, user in {"id": {"id": "alice"}, "email": {"id": "u-17", "email": "alice@example.com"}}
	req := with_user(request(["security_admin"], "customers", "list"), user)
	d := veil.decision with input as req with data.veil.revoked as ["alice", "alice@example.com"]
	d.reason == "your access has been revoked"
}

test_monitor_route[name] if {
	some name, c in {
		"allow": {"role": "cs_agent", "action": "list", "allow": true},
		"deny": {"role": "contractor", "action": "export", "allow": false},
	}
	d := veil.decision with input as request([c.role], "customers", c.action)
		with data.veil.monitor_routes as ["livecrm"]
	d.allow == c.allow
	d.mode == "monitor"
}

test_other_routes_enforced if {
	d := veil.decision with input as request(["cs_agent"], "customers", "list")
		with data.veil.monitor_routes as ["legacy"]
	d.mode == "enforce"
}

# Adding a system is data only: classify its fields and list its resources.
test_new_system_is_data_only if {
	req := with_resource(request(["cs_agent"], "Contact", "list"), {"system": "acme"})
	d := veil.decision with input as req
		with data.veil.classification.acme as {"Contact": {
			"MobilePhone": {"level": "sensitive", "kind": "phone"},
			"ID_Card_No__c": {"level": "core", "kind": "id_card"},
			"Id": {"level": "public", "kind": "generic"},
		}}
		with data.veil.resources.acme as {"Contact": {"personal": true, "owner": "OwnerId"}}
	d.fields == {"MobilePhone": "mask:phone", "ID_Card_No__c": "mask:id_card"}
	h := veil.decision with input as with_resource(request(["host"], "Contact", "list"), {"system": "acme"})
		with data.veil.classification.acme as {"Contact": {"MobilePhone": {"level": "sensitive", "kind": "phone"}}}
		with data.veil.resources.acme as {"Contact": {"personal": true, "owner": "OwnerId"}}
	h.rows == [{"field": "OwnerId", "op": "eq", "value": "alice"}]
}

# Adding a role is data only: a row of the action matrix, a profile, a place in
# the role order.
test_new_role_is_data_only if {
	d := veil.decision with input as request(["auditor"], "customers", "list")
		with data.veil.roles.auditor as {"read": "all"}
		with data.veil.actions.auditor as {"public": "keep", "sensitive": "hash", "core": "redact"}
		with data.veil.role_order as ["auditor"]
	d.allow
	d.fields.mobile == "hash"
	d.fields.id_card == "redact"
	d.detect == ["phone", "id_card", "bank_card", "email", "address"]
	d.max_page_size == 500
	d.limits == [{"name": "dept-hourly", "key": "dept:cs", "window": "1h", "records": 20000}]
	e := veil.decision with input as request(["auditor"], "customers", "export")
		with data.veil.roles.auditor as {"read": "all"}
		with data.veil.actions.auditor as {"public": "keep", "sensitive": "hash", "core": "redact"}
		with data.veil.role_order as ["auditor"]
	e.reason == "your role may not export data"
}

test_role_without_matrix_row_denied if {
	d := veil.decision with input as request(["auditor"], "customers", "list")
		with data.veil.roles.auditor as {"read": "all"}
		with data.veil.role_order as ["auditor"]
	d.reason == "none of your roles grants access through Veil"
}
