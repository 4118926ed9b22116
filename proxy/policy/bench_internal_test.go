package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/veilproxy/veil/policies"
)

// BenchmarkInput compares the two ways of handing Input to the prepared query: an AST
// value built directly (what Decide does) and rego.EvalInput, which converts the struct
// through JSON on every evaluation.
func BenchmarkInput(b *testing.B) {
	ctx := context.Background()
	files, err := readTree(policies.FS)
	if err != nil {
		b.Fatal(err)
	}
	c, err := build(ctx, files)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		User:     User{ID: "alice", Roles: []string{"cs_agent"}, Department: "cs", Claims: map[string]any{"sub": "alice"}},
		Request:  Request{Method: "GET", Path: "/api/customers", Query: map[string][]string{"pageSize": {"100"}}, Headers: map[string][]string{"user-agent": {"curl/8"}}, ClientIP: "10.1.2.3"},
		Route:    "livecrm",
		Resource: Resource{System: "generic", Type: "customers", Action: "list", PageSize: 100},
	}
	b.Run("parsed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := inputValue(in)
			if err != nil {
				b.Fatal(err)
			}
			if rs, err := c.query.Eval(ctx, rego.EvalParsedInput(v)); err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rs, err := c.query.Eval(ctx, rego.EvalInput(in)); err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
		}
	})
}
