# Budgets: requests that return records are charged to a per-user budget (the
# role's; at most data.veil.budgets.offboarding while the user is off-boarding;
# zero under containment) and to the user's department's shared budget.
package veil

import data.veil.tables

# limits are the budgets a request that returns records is charged to.
limits := array.concat(user_limits, department_limits) if plan.returns_records

else := []

# user_limits is the user's budget for the resource type, if the user has one.
user_limits := [] if user_budget < 0

else := [{
	"name": concat("", ["user-", input.resource.type, "-hourly"]),
	"key": concat("", ["user:", input.user.id]),
	"window": plan.user_limit.window,
	"records": user_budget,
}]

# user_budget is the plan's budget (-1: none), capped while the user is off-boarding.
user_budget := cap if {
	cap := tables.offboarding[input.user.id]
	not within(plan.user_limit.records, cap)
} else := plan.user_limit.records

# within: budget is a budget no larger than cap.
within(budget, cap) if {
	budget >= 0
	budget <= cap
}

# department_limits is the department's shared budget when the user has a department.
department_limits := [{
	"name": "dept-hourly",
	"key": concat("", ["dept:", input.user.department]),
	"window": data.veil.budgets.window,
	"records": data.veil.budgets.department,
}] if {
	input.user.department != ""
} else := []
