# Checks of data.json itself: a mistake in the data is a failing test in
# `go test ./policies/` and `veil check`, not a surprise in production.
package veil.data_test

levels := {"public", "sensitive", "core"}

actions := {"keep", "mask", "redact", "hash", "drop", "null", "deny"}

mask_formats := {"phone", "id_card", "bank_card", "email", "name", "address", "generic"}

test_role_order_lists_every_role if {
	{r | some r in data.veil.role_order} == object.keys(data.veil.roles)
	count(data.veil.role_order) == count(data.veil.roles)
}

test_every_role_has_a_matrix_row[role] if {
	some role, _ in data.veil.roles
	data.veil.actions[role]
}

test_matrix_rows_are_complete[row] if {
	some row, actions_of in data.veil.actions
	object.keys(actions_of) == levels
	every _, action in actions_of {
		action in actions
	}
}

test_restricted_row_redacts_everything if {
	every _, action in data.veil.actions.restricted {
		action == "redact"
	}
}

test_role_profiles_are_well_formed[role] if {
	some role, p in data.veil.roles
	p.read in {"all", "non_personal", "none"}
	is_boolean(object.get(p, "export", false))
	every w in object.get(p, "writes", []) {
		w in {"create", "update", "delete"}
	}
	is_boolean(object.get(p, "detect", true))
	is_boolean(object.get(p, "own_records_only", false))
	object.get(p, "max_page_size", 500) >= 0
	every key, _ in object.get(p, "reasons", {}) {
		data.veil.reasons[key]
	}
}

test_reasons_cover_every_refusal if {
	keys := {
		"revoked", "no_role", "unknown_role", "no_resource", "restricted", "other", "personal", "no_owner",
		"write_unnamed", "write_classified", "list", "read", "export", "create", "update", "delete",
	}
	every key in keys {
		is_string(data.veil.reasons[key])
		data.veil.reasons[key] != ""
	}
}

test_classification_is_well_formed[name] if {
	some system, by_type in data.veil.classification
	some type, fields in by_type
	some field, class in fields
	name := concat(".", [system, type, field])
	class.level in levels
	is_string(class.kind)
}

# Matching is case-insensitive, and a resource's entry overrides the system's
# "*" entry of the same spelling: two spellings of one name would give the mask
# engine two rules for one field.
test_field_names_unique_ignoring_case[name] if {
	some system, by_type in data.veil.classification
	some type, fields in by_type
	name := concat(".", [system, type])
	star := object.get(by_type, "*", {})
	every field, _ in fields {
		count({f | some f, _ in fields; lower(f) == lower(field)}) == 1
		every s, _ in star {
			same_or_different(s, field)
		}
	}
}

# same_or_different: a and b are the same spelling or different names.
same_or_different(a, a)

same_or_different(a, b) if lower(a) != lower(b)

test_mask_formats_are_known[kind] if {
	some kind, action in data.veil.mask_formats
	[_, format] := split(action, ":")
	format in mask_formats
	startswith(action, "mask:")
}

test_detectors_are_known if {
	every d in data.veil.detectors {
		d in {"phone", "id_card", "bank_card", "email", "address"}
	}
}

test_resources_are_well_formed[name] if {
	some system, by_type in data.veil.resources
	some type, info in by_type
	name := concat(".", [system, type])
	is_boolean(info.personal)
	is_string(object.get(info, "owner", ""))
}

test_budgets_are_well_formed if {
	time.parse_duration_ns(data.veil.budgets.window) > 0
	every _, n in data.veil.budgets.user {
		n >= 0
	}
	data.veil.budgets.department >= 0
	data.veil.budgets.offboarding >= 0
	every role, _ in data.veil.budgets.user {
		data.veil.roles[role]
	}
}

test_people_lists_are_lists if {
	is_array(data.veil.offboarding)
	is_array(data.veil.revoked)
	is_array(data.veil.monitor_routes)
	is_object(data.veil.directory)
}
