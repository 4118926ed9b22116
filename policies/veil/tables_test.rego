package veil.tables_test

import data.veil.tables

test_profiles_fill_defaults if {
	p := tables.profiles.minimal with data.veil.roles as {"minimal": {"read": "all"}}
		with data.veil.actions as {"minimal": {"public": "keep", "sensitive": "mask", "core": "mask"}}
	p.read == "all"
	p.export == false
	p.writes == []
	p.writes_classified == false
	p.detect == true
	p.own_records_only == false
	p.max_page_size == 500
	p.role == "minimal"
	p.reasons.export == data.veil.reasons.export
}

test_profiles_merge_role_reasons if {
	tables.profiles.contractor.reasons.export == "contractors may not export data"
	tables.profiles.contractor.reasons.update == data.veil.reasons.update
}

test_profiles_need_a_matrix_row if {
	not tables.profiles.minimal with data.veil.roles.minimal as {"read": "all"}
}

test_resource_infos_fill_defaults if {
	tables.resource_infos.generic.customers == {"personal": true, "owner": "owner_id", "system": "generic"}
	tables.resource_infos.generic.products == {"personal": false, "owner": "", "system": "generic"}
	tables.resource_infos.generic["*"] == {"personal": true, "owner": "", "system": "generic"}
	tables.resource_infos["*"]["*"] == {"personal": true, "owner": "", "system": "*"}
}

test_classified_resource_overrides_system_wide if {
	tables.classified.generic.products.name.level == "public"
	tables.classified.generic.customers.name.level == "sensitive"
	tables.classified.generic.products.phone.level == "sensitive"
	tables.classified.generic["*"] == data.veil.classification.generic["*"]
}

test_field_actions_formats[name] if {
	some name, c in {
		"format": {"class": {"level": "sensitive", "kind": "phone"}, "want": "mask:phone"},
		"no format": {"class": {"level": "sensitive", "kind": "text"}, "want": "mask"},
		"no kind": {"class": {"level": "sensitive"}, "want": "mask:generic"},
		"core": {"class": {"level": "core", "kind": "id_card"}, "want": "redact"},
		"no level": {"class": {"kind": "phone"}, "want": "redact"},
		"unknown level": {"class": {"level": "secret", "kind": "phone"}, "want": "redact"},
	}
	f := tables.field_actions.host.demo.things with data.veil.classification as {"demo": {"things": {"f": c.class}}}
	f == {"f": c.want}
}

test_field_actions_leave_out_kept_fields if {
	f := tables.field_actions.cs_agent.demo.things with data.veil.classification as {"demo": {"things": {
		"id": {"level": "public", "kind": "generic"},
		"mobile": {"level": "sensitive", "kind": "phone"},
	}}}
	f == {"mobile": "mask:phone"}
}

test_field_actions_restricted_redact_everything if {
	f := tables.field_actions.restricted.generic.products
	f.name == "redact"
	f.id == "redact"
	f.phone == "redact"
}

test_levels_are_lower_case if {
	tables.levels.generic.customers.mobile == "sensitive"
	tables.levels.generic["*"].taxid == "core"
	tables.levels.demo.things.mobilephone == "sensitive" with data.veil.classification as {"demo": {"things": {"MobilePhone": {"level": "sensitive", "kind": "phone"}}}}
}

test_plans_exist_for_every_role_resource_action[name] if {
	some role, _ in data.veil.roles
	some system, by_type in tables.resource_infos
	some type, _ in by_type
	some action in ["list", "read", "export", "create", "update", "delete"]
	some state in ["normal", "restricted"]
	name := concat(" ", [role, system, type, action, state])
	is_boolean(tables.plans[role][system][type][action][state].allow)
}

test_plan_refusal_carries_reason if {
	tables.plans.contractor.generic.customers.list.normal == {
		"allow": false,
		"reason": "your role may only read resources without personal data",
	}
}

test_plan_allow if {
	p := tables.plans.host.generic.orders.read.normal
	p.allow
	p.owner == "owner_id"
	p.returns_records
	p.user_limit == {"window": "1h", "records": 500}
	p.check_fields == false
	p.max_page_size == 500
}

test_plan_restricted if {
	p := tables.plans.security_admin.generic.customers.read.restricted
	p.allow
	p.detect == data.veil.detectors
	p.user_limit.records == 0
	p.fields.mobile == "redact"
	tables.plans.security_admin.generic.customers.export.restricted.reason == data.veil.reasons.restricted
}

test_plan_writes_check_fields if {
	tables.plans.cs_agent.generic.customers.update.normal.check_fields == true
	tables.plans.cs_agent.generic.customers.update.normal.returns_records == false
}

test_plan_without_budget if {
	tables.plans.security_admin.generic.customers.export.normal.user_limit.records == -1
}

test_plan_detectors_opt_out if {
	tables.plans.security_admin.generic.customers.list.normal.detect == []
	tables.plans.ops_manager.generic.customers.list.normal.detect == data.veil.detectors
}

test_tables_are_plain_json if {
	# Veil stores data.veil.tables as data: no sets, string keys only.
	json.unmarshal(json.marshal(tables.plans)) == tables.plans
	json.unmarshal(json.marshal(tables.levels)) == tables.levels
}

test_people_lists_become_lookups if {
	r := tables.revoked with data.veil.revoked as ["mallory", "eve@example.com"]
	r == {"mallory": true, "eve@example.com": true}
	o := tables.offboarding with data.veil.offboarding as ["bob"]
	o == {"bob": 50}
	m := tables.modes with data.veil.monitor_routes as ["livecrm"]
	m == {"livecrm": "monitor"}
}
