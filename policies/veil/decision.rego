# METADATA
# title: Veil's shipped data policy
# description: |
#   One decision per request: who may do what to which resource, which fields are
#   masked, which rows come back, which budgets apply. Roles, the role × level
#   action matrix, budgets and the field classification are data (data.json);
#   tables.rego turns them into one plan per role, resource, action and
#   containment state when the policy loads; this file picks the request's plan
#   and fills in the requester. Few rules run per request: Veil evaluates this
#   for every request.
package veil

import data.veil.tables

# decision is what Veil evaluates for every request: a deny with a reason, or an
# allow with the plan for the response.
decision := {
	"allow": false,
	"status": 403,
	"reason": reason,
	"mode": mode,
} if {
	reason := deny_reason
} else := {
	"allow": true,
	"fields": p.fields,
	"rows": rows,
	"detect": p.detect,
	"limits": limits,
	"max_page_size": p.max_page_size,
	"mode": mode,
} if {
	p := plan
}

# deny_reason is the first reason, in this order, the request is refused.
deny_reason := data.veil.reasons.revoked if {
	tables.revoked[input.user.id]
} else := data.veil.reasons.revoked if {
	tables.revoked[input.user.email]
} else := data.veil.reasons.no_role if {
	not input.user.roles[0]
} else := data.veil.reasons.unknown_role if {
	not role
} else := data.veil.reasons.no_resource if {
	object.get(input.resource, "type", "") == ""
} else := data.veil.reasons.other if {
	not plan
} else := plan.reason if {
	not plan.allow
} else := plan.reasons.write_unnamed if {
	plan.check_fields
	not names_fields
} else := plan.reasons.write_classified if {
	plan.check_fields
	writes_classified_field
}

# role is the user's effective role: the first role of data.veil.role_order the
# user holds, so a user holding several roles gets the broadest one.
role := r if {
	[r] := input.user.roles
	tables.profiles[r]
} else := [r |
	some r in data.veil.role_order
	r in input.user.roles
	tables.profiles[r]
][0]

# plan is the role's plan for the resource, the action and the containment
# state; a type or a system the data does not list gets the plan for "*".
plan := p if {
	p := tables.plans[role][input.resource.system][input.resource.type][action][state]
} else := p if {
	p := tables.plans[role][input.resource.system]["*"][action][state]
} else := tables.plans[role]["*"]["*"][action][state]

# action is what the request does; a request the adapter flags as an export is one.
action := "export" if input.resource.export == true

else := input.resource.action

# state is "restricted" while spike containment holds the user, else "normal".
state := "restricted" if input.user.restricted == true

else := "normal"

# names_fields: the request names the fields it writes.
names_fields if {
	some f in input.resource.fields
	f != ""
}

# writes_classified_field: a field the request writes, or a segment of a dotted
# path to one, is classified above public (matched case-insensitively).
writes_classified_field if {
	levels := object.get(
		tables.levels,
		[input.resource.system, input.resource.type],
		object.get(tables.levels, [input.resource.system, "*"], {}),
	)
	some f in input.resource.fields
	some segment in split(lower(f), ".")
	object.get(levels, segment, "public") != "public"
}

# rows scopes owner-scoped roles to records whose owner field is the user.
rows := [{"field": plan.owner, "op": "eq", "value": input.user.id}] if {
	plan.owner != ""
} else := []

# mode is "monitor" for the routes listed in data.veil.monitor_routes.
mode := object.get(tables.modes, input.route, "enforce")
