# METADATA
# title: Lookup tables derived from data.veil
# description: |
#   Everything here depends on data only, never on input: Veil evaluates
#   data.veil.tables once each time the policy is loaded and serves the result
#   as data, so a request looks its plan up instead of recomputing it from the
#   classification. Rego tests evaluate these rules as written.
package veil.tables

# plans[role][system][type][action][state] is what a role may do to a resource
# type and, when it may, the request-independent part of the plan: field
# actions, detectors, page-size cap, the owner field rows are scoped to, the
# user budget. state is "restricted" while spike containment holds the user
# (classified fields redacted, every detector on, a zero budget, reads only),
# else "normal". Type "*" serves types the data does not list; system "*"
# systems it does not.
plans[role][system][type][action][state] := plan(profile, info, type, action, state == "restricted") if {
	some role, profile in profiles
	some system, infos in resource_infos
	some type, info in infos
	some action in actions
	some state in ["normal", "restricted"]
}

# revoked[user] is true for every user id or e-mail of data.veil.revoked.
revoked[user] := true if some user in data.veil.revoked

# offboarding[user] is the budget cap of every off-boarding user.
offboarding[user] := data.veil.budgets.offboarding if some user in data.veil.offboarding

# modes[route] is "monitor" for every route of data.veil.monitor_routes.
modes[route] := "monitor" if some route in data.veil.monitor_routes

# actions are the actions a plan exists for; anything else is refused.
actions := ["list", "read", "export", "create", "update", "delete"]

reads := ["list", "read", "export"]

writes := ["create", "update", "delete"]

# plan is the allow or the refusal for one role, resource and action.
plan(profile, info, type, action, restricted) := {"allow": false, "reason": reason} if {
	reason := refusal(profile, info, action, restricted)
} else := {
	"allow": true,
	"fields": field_actions[matrix_row(profile, restricted)][info.system][type],
	"detect": detectors(profile, restricted),
	"max_page_size": profile.max_page_size,
	"owner": owner(profile, info),
	"returns_records": action in reads,
	"user_limit": {
		"window": data.veil.budgets.window,
		"records": budget(profile, restricted),
	},
	"check_fields": check_fields(profile, action),
	"reasons": {k: profile.reasons[k] | some k in {"write_unnamed", "write_classified"}},
}

# refusal is the reason the role may not perform the action on the resource;
# undefined when it may.
refusal(profile, info, action, true) := data.veil.reasons.restricted if {
	not action in {"list", "read"}
} else := profile.reasons[key] if {
	key := refusal_key(profile, info, action)
}

refusal(profile, info, action, false) := profile.reasons[key] if {
	key := refusal_key(profile, info, action)
}

# refusal_key names the reason (a key of the role's reasons) the role may not
# perform the action on the resource; undefined when it may.
refusal_key(profile, info, action) := "export" if {
	action == "export"
	profile.export != true
} else := action if {
	action in {"list", "read"}
	not profile.read in {"all", "non_personal"}
} else := "personal" if {
	action in reads
	profile.read == "non_personal"
	info.personal != false
} else := "no_owner" if {
	action in reads
	profile.own_records_only == true
	info.personal != false
	info.owner == ""
} else := action if {
	action in writes
	not action in profile.writes
}

# matrix_row is the row of the action matrix that applies.
matrix_row(profile, false) := profile.role

matrix_row(_, true) := "restricted"

# detectors are the content scanners to run: none for roles that opt out, all of
# them otherwise and always under containment.
detectors(profile, restricted) := [] if {
	restricted == false
	profile.detect == false
} else := data.veil.detectors

# budget is the role's hourly records budget (-1: none), zero under containment.
budget(_, true) := 0

budget(profile, false) := object.get(data.veil.budgets.user, profile.role, -1)

# owner is the field rows are scoped to for owner-scoped roles, else "".
owner(profile, info) := info.owner if profile.own_records_only == true

else := ""

# check_fields: the write must name its fields and none may be classified above public.
check_fields(profile, action) if {
	action in {"create", "update"}
	profile.writes_classified != true
} else := false

# profiles is every role of data.veil.roles that has a row in the action matrix,
# with the defaults filled in (no reads, no export, no writes, detection on, page
# size 500, no owner scoping) and its reasons merged over data.veil.reasons.
profiles[role] := object.union(
	{
		"read": "none",
		"export": false,
		"writes": [],
		"writes_classified": false,
		"detect": true,
		"own_records_only": false,
		"max_page_size": 500,
	},
	object.union(spec, {
		"role": role,
		"reasons": object.union(data.veil.reasons, object.get(spec, "reasons", {})),
	}),
) if {
	some role, spec in data.veil.roles
	data.veil.actions[role]
}

# resource_infos[system][type] is what data.veil.resources says about every
# classified or listed resource type, with the defaults filled in (personal, no
# owner field). Type "*" and system "*" stand for types and systems not listed.
resource_infos[system][type] := object.union(
	{"personal": true, "owner": ""},
	object.union(object.get(data.veil.resources, [system, type], {}), {"system": system}),
) if {
	some system in systems
	some type in type_names(system)
}

# systems are the systems the data lists, and "*".
systems := sort((({"*"} | object.keys(data.veil.classification)) | object.keys(data.veil.resources)))

# type_names are the resource types the data lists for a system, and "*".
type_names(system) := ({"*"} | object.keys(object.get(data.veil.classification, system, {}))) | object.keys(object.get(data.veil.resources, system, {}))

# classified[system][type] is the classification of a resource type: the system's
# "*" entries overridden by the type's own.
classified[system][type] := object.union(
	object.get(data.veil.classification, [system, "*"], {}),
	object.get(data.veil.classification, [system, type], {}),
) if {
	some system in systems
	some type in type_names(system)
}

# field_actions[profile][system][type] is the action of every classified field
# that is not kept, for each row of data.veil.actions (the roles and "restricted").
# A field without a known level is treated as core; a mask becomes the mask for
# the field's kind ("mask:phone"), or the plain mask for kinds without a format.
field_actions[profile][system][type] := {name: action |
	some name, class in fields
	level_action := object.get(row, object.get(class, "level", "core"), row.core)
	action := field_action(level_action, object.get(class, "kind", "generic"))
	action != "keep"
} if {
	some profile, row in data.veil.actions
	some system, by_type in classified
	some type, fields in by_type
}

field_action("mask", kind) := object.get(data.veil.mask_formats, kind, "mask")

field_action(action, _) := action if action != "mask"

# levels[system][type] maps lower-case field names to their level, for checking
# the fields a write names.
levels[system][type] := {lower(name): object.get(class, "level", "core") |
	some name, class in fields
} if {
	some system, by_type in classified
	some type, fields in by_type
}
