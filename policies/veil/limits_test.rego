package veil_test

import data.veil

test_user_budget_by_role[role] if {
	some role, records in {"cs_agent": 2000, "host": 500, "contractor": 200, "ops_manager": 5000}
	d := veil.decision with input as request([role], "orders", "list")
	d.limits[0] == {"name": "user-orders-hourly", "key": "user:alice", "window": "1h", "records": records}
}

test_no_user_budget_for_security_admin if {
	d := veil.decision with input as request(["security_admin"], "orders", "list")
	d.limits == [{"name": "dept-hourly", "key": "dept:cs", "window": "1h", "records": 20000}]
}

test_offboarding_caps_budget[role] if {
	some role in ["cs_agent", "host", "ops_manager", "security_admin"]
	d := veil.decision with input as request([role], "customers", "read")
		with data.veil.offboarding as ["alice"]
	d.limits[0] == {"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 50}
}

test_offboarding_keeps_smaller_budget if {
	d := veil.decision with input as request(["cs_agent"], "customers", "read")
		with data.veil.offboarding as ["alice"]
		with data.veil.budgets.user.cs_agent as 10
	d.limits[0].records == 10
}

test_offboarding_other_users_unaffected if {
	d := veil.decision with input as request(["host"], "customers", "read")
		with data.veil.offboarding as ["bob"]
	d.limits[0].records == 500
}

test_containment_zeroes_budget_even_offboarding if {
	req := with_user(request(["host"], "customers", "list"), {"restricted": true})
	d := veil.decision with input as req with data.veil.offboarding as ["alice"]
	d.limits[0].records == 0
}

test_no_department_no_department_budget if {
	d := veil.decision with input as with_user(request(["cs_agent"], "customers", "list"), {"department": ""})
	d.limits == [{"name": "user-customers-hourly", "key": "user:alice", "window": "1h", "records": 2000}]
}

test_department_budget_key if {
	d := veil.decision with input as with_user(request(["ops_manager"], "orders", "export"), {"department": "ops"})
	d.limits[1] == {"name": "dept-hourly", "key": "dept:ops", "window": "1h", "records": 20000}
}

test_writes_are_not_budgeted if {
	d := veil.decision with input as request(["cs_agent"], "customers", "update")
	d.allow
	d.limits == []
}

test_window_from_data if {
	d := veil.decision with input as request(["cs_agent"], "customers", "list")
		with data.veil.budgets.window as "24h"
	every l in d.limits {
		l.window == "24h"
	}
}

test_unlisted_types_have_their_own_budget[type] if {
	some type in ["invoices", "tickets"]
	d := veil.decision with input as request(["ops_manager"], type, "list")
	d.limits[0].name == concat("", ["user-", type, "-hourly"])
}
