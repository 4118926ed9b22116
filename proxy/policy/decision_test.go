package policy

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

func TestParseDecision(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Decision
	}{
		{"empty object denies", `{}`, Decision{Status: 403, Mode: "enforce"}},
		{"deny with reason", `{"allow": false, "reason": "no"}`,
			Decision{Status: 403, Reason: "no", Mode: "enforce"}},
		{"deny with status", `{"allow": false, "status": 451, "mode": "monitor"}`,
			Decision{Status: 451, Mode: "monitor"}},
		{"allow keeps status zero", `{"allow": true}`, Decision{Allow: true, Mode: "enforce"}},
		{"full plan", `{
			"allow": true,
			"fields": {"phone": "mask", "id_card": "mask:id_card", "email": "hash", "bank": "drop",
				"a": "keep", "b": "redact", "c": "null", "d": "deny"},
			"rows": [{"field": "owner_id", "op": "eq", "value": "alice"},
				{"field": "level", "op": "in", "value": [1, 2.5, "x"]},
				{"field": "tag", "op": "not_in", "value": {"a", "b"}},
				{"field": "deleted", "op": "neq", "value": null}],
			"detect": ["phone", "email"],
			"limits": [{"name": "user", "key": "user:alice", "window": "1h", "records": 500},
				{"name": "week", "key": "k", "window": "7d", "records": 0, "requests": 10}],
			"max_page_size": 500,
			"mode": "monitor"}`,
			Decision{
				Allow: true,
				Fields: map[string]string{"phone": "mask", "id_card": "mask:id_card", "email": "hash",
					"bank": "drop", "a": "keep", "b": "redact", "c": "null", "d": "deny"},
				Rows: []Row{
					{Field: "owner_id", Op: "eq", Value: "alice"},
					{Field: "level", Op: "in", Value: []any{json.Number("1"), json.Number("2.5"), "x"}},
					{Field: "tag", Op: "not_in", Value: []any{"a", "b"}},
					{Field: "deleted", Op: "neq", Value: nil},
				},
				Detect: []string{"phone", "email"},
				Limits: []Limit{
					{Name: "user", Key: "user:alice", Window: time.Hour, Records: 500},
					{Name: "week", Key: "k", Window: 7 * 24 * time.Hour, Records: 0, Requests: 10},
				},
				MaxPageSize: 500,
				Mode:        "monitor",
			}},
		{"detect as a set", `{"allow": true, "detect": {"phone", "bank_card"}}`,
			Decision{Allow: true, Detect: []string{"bank_card", "phone"}, Mode: "enforce"}},
		{"empty collections", `{"allow": true, "fields": {}, "rows": [], "detect": [], "limits": []}`,
			Decision{Allow: true, Fields: map[string]string{}, Rows: []Row{}, Detect: []string{}, Limits: []Limit{}, Mode: "enforce"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDecision(ast.MustParseTerm(tt.in).Value)
			if err != nil {
				t.Fatalf("parseDecision(%s) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseDecision(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseDecisionRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"not an object", `"allow"`},
		{"array", `[{"allow": true}]`},
		{"null", `null`},
		{"unknown key", `{"allow": true, "feilds": {"phone": "mask"}}`},
		{"non-string key", `{"allow": true, 1: 2}`},
		{"allow not boolean", `{"allow": "true"}`},
		{"status string", `{"allow": false, "status": "403"}`},
		{"status 200", `{"allow": false, "status": 200}`},
		{"status 600", `{"allow": false, "status": 600}`},
		{"status fraction", `{"allow": false, "status": 403.5}`},
		{"reason not string", `{"allow": false, "reason": ["no"]}`},
		{"fields not object", `{"allow": true, "fields": ["phone"]}`},
		{"field action unknown", `{"allow": true, "fields": {"phone": "shred"}}`},
		{"field action case", `{"allow": true, "fields": {"phone": "Mask"}}`},
		{"field action not string", `{"allow": true, "fields": {"phone": true}}`},
		{"mask format unknown", `{"allow": true, "fields": {"phone": "mask:telephone"}}`},
		{"mask format empty", `{"allow": true, "fields": {"phone": "mask:"}}`},
		{"format on redact", `{"allow": true, "fields": {"phone": "redact:phone"}}`},
		{"field name empty", `{"allow": true, "fields": {"": "mask"}}`},
		{"rows not array", `{"allow": true, "rows": {"field": "a", "op": "eq", "value": 1}}`},
		{"row op unknown", `{"allow": true, "rows": [{"field": "a", "op": "like", "value": 1}]}`},
		{"row field missing", `{"allow": true, "rows": [{"op": "eq", "value": 1}]}`},
		{"row op missing", `{"allow": true, "rows": [{"field": "a", "value": 1}]}`},
		{"row value missing", `{"allow": true, "rows": [{"field": "a", "op": "eq"}]}`},
		{"row in without array", `{"allow": true, "rows": [{"field": "a", "op": "in", "value": "x"}]}`},
		{"row unknown key", `{"allow": true, "rows": [{"field": "a", "op": "eq", "value": 1, "or": 2}]}`},
		{"detect unknown", `{"allow": true, "detect": ["phone", "iban"]}`},
		{"detect not array", `{"allow": true, "detect": "phone"}`},
		{"limit not object", `{"allow": true, "limits": ["user"]}`},
		{"limit bad window", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1 hour", "records": 1}]}`},
		{"limit zero window", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "0s", "records": 1}]}`},
		{"limit negative window", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "-1d", "records": 1}]}`},
		{"limit window missing", `{"allow": true, "limits": [{"name": "n", "key": "k", "records": 1}]}`},
		{"limit negative records", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h", "records": -1}]}`},
		{"limit fractional records", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h", "records": 1.5}]}`},
		{"limit negative requests", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h", "records": 1, "requests": -1}]}`},
		{"limit records missing", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h"}]}`},
		{"limit name missing", `{"allow": true, "limits": [{"key": "k", "window": "1h", "records": 1}]}`},
		{"limit key empty", `{"allow": true, "limits": [{"name": "n", "key": "", "window": "1h", "records": 1}]}`},
		{"limit unknown key", `{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h", "records": 1, "burst": 2}]}`},
		{"max_page_size negative", `{"allow": true, "max_page_size": -1}`},
		{"max_page_size string", `{"allow": true, "max_page_size": "500"}`},
		{"mode unknown", `{"allow": true, "mode": "shadow"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDecision(ast.MustParseTerm(tt.in).Value)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("parseDecision(%s) = %+v, %v; want an error wrapping ErrInvalid", tt.in, got, err)
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1h", time.Hour},
		{"30m", 30 * time.Minute},
		{"24h", 24 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
	}
	for _, tt := range tests {
		got, err := parseWindow(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseWindow(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "d", "1", "h", "1w", "1.5d", "-1h", "0d", "0", "1 h", "7D", "99999999999999d"} {
		if got, err := parseWindow(in); err == nil {
			t.Errorf("parseWindow(%q) = %v, nil; want an error", in, got)
		}
	}
}
