package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// TestInputValueMatchesJSON checks that the AST input Decide builds is the document
// encoding/json makes of Input, the one rego.EvalInput would see.
func TestInputValueMatchesJSON(t *testing.T) {
	id := "10086"
	tests := []struct {
		name string
		in   Input
	}{
		{"zero", Input{}},
		{"full", Input{
			User: User{
				ID: "alice", Roles: []string{"cs_agent", "host"}, Department: "cs", Email: "alice@example.com",
				Claims:     map[string]any{"sub": "alice", "n": 1.5, "big": json.Number("9007199254740993"), "groups": []any{"a", "b"}, "nested": map[string]any{"x": nil, "ok": true}},
				Restricted: true,
			},
			Request: Request{
				Method: "GET", Path: "/api/customers",
				Query:    map[string][]string{"pageSize": {"10", "100000"}, "empty": {}},
				Headers:  map[string][]string{"user-agent": {"curl/8"}},
				ClientIP: "10.1.2.3",
				Time:     time.Date(2026, 11, 28, 9, 0, 0, 123456789, time.FixedZone("CST", 8*3600)),
			},
			Route: "livecrm",
			Resource: Resource{
				System: "generic", Type: "customers", Action: "read", ID: &id, PageSize: 2000,
				Fields: []string{"mobile", "address.city"}, Export: true,
			},
		}},
		{"empty slices stay arrays", Input{User: User{Roles: []string{}, Claims: map[string]any{}}, Resource: Resource{Fields: []string{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inputValue(tt.in)
			if err != nil {
				t.Fatalf("inputValue(%+v) error: %v", tt.in, err)
			}
			var doc any
			raw, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := util.UnmarshalJSON(raw, &doc); err != nil {
				t.Fatal(err)
			}
			want, err := ast.InterfaceToValue(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got.Compare(want) != 0 {
				t.Errorf("inputValue(%s) =\n%v\nwant\n%v", tt.name, got, want)
			}
		})
	}
}

func TestInputValueRefusesUnencodableClaims(t *testing.T) {
	in := Input{User: User{Claims: map[string]any{"f": func() {}}}}
	if v, err := inputValue(in); err == nil {
		t.Errorf("inputValue(claims with a func) = %v, nil; want an error", v)
	}
}
