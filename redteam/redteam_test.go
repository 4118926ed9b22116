package redteam

import "testing"

// TestRedTeam runs every case of REDTEAM.md, numbered as there; each case's subtests are the
// variants an attacker tries next (docs/security.md lists them).
func TestRedTeam(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T)
	}{
		{"01_dot_segments", case01},
		{"02_encoded_separators", case02},
		{"03_duplicate_slashes", case03},
		{"04_fragments", case04},
		{"05_case", case05},
		{"06_method_override", case06},
		{"07_head", case07},
		{"08_parameter_pollution", case08},
		{"09_spoofed_identity", case09},
		{"10_spoofed_forwarded_for", case10},
		{"11_header_control_characters", case11},
		{"12_smuggling", case12},
		{"13_upgrade", case13},
		{"14_no_route", case14},
		{"15_request_body_limit", case15},
		{"16_compressed_responses", case16},
		{"17_range", case17},
		{"18_split_chunks", case18},
		{"19_event_stream", case19},
		{"20_json_content_types", case20},
		{"21_jsonp", case21},
		{"22_error_statuses", case22},
		{"23_nonstandard_json", case23},
		{"24_deep_nesting", case24},
		{"25_text_detectors", case25},
		{"26_key_case", case26},
		{"27_csv_injection", case27},
		{"28_decompression_bomb", case28},
		{"29_response_over_limit", case29},
		{"30_slowloris", case30},
		{"31_stalled_upstream", case31},
		{"32_header_and_body_size", case32},
		{"33_paging_budgets", case33},
		{"34_policy_errors", case34},
		{"35_broken_policy_reload", case35},
		{"36_redis_down", case36},
		{"37_upstream_dies_mid_body", case37},
		{"38_audit_unwritable", case38},
		{"39_jwt_algorithms", case39},
		{"40_jwt_claims", case40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}
