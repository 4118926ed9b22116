package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/policy"
)

// TestDecideErrors: every way a policy can fail to produce a decision for a request is
// an error and a zero (deny) Decision. The policies fail only on the test's route, so they
// pass the load-time probe (see TestNewRefuses for policies that fail on every request).
func TestDecideErrors(t *testing.T) {
	on := func(body string) map[string]string {
		return decision(body + ` if input.route == "livecrm"`)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  error // nil: any error
	}{
		{"undefined", decision(`{"allow": true} if input.route == "elsewhere"`), policy.ErrUndefined},
		{"division by zero", on(`{"allow": true, "max_page_size": 100 / count(input.user.roles)}`), nil},
		{"conflicting outputs", map[string]string{"veil/decision.rego": `package veil

decision := {"allow": true} if input.route == "livecrm"

decision := {"allow": false} if startswith(input.route, "live")
`}, nil},
		{"builtin error", on(`{"allow": true, "max_page_size": to_number(input.route)}`), nil},
		{"not an object", on(`"allow"`), policy.ErrInvalid},
		{"unknown key", on(`{"allow": true, "feilds": {"phone": "mask"}}`), policy.ErrInvalid},
		{"unknown field action", on(`{"allow": true, "fields": {"phone": "shred"}}`), policy.ErrInvalid},
		{"bad window", on(`{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1 week", "records": 1}]}`), policy.ErrInvalid},
		{"negative records", on(`{"allow": true, "limits": [{"name": "n", "key": "k", "window": "1h", "records": -5}]}`), policy.ErrInvalid},
		{"allow not a boolean", on(`{"allow": "yes"}`), policy.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.files)
			e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir)})
			if err != nil {
				t.Fatalf("New error: %v", err)
			}
			in := request([]string{}, "customers", "list")
			d, err := e.Decide(context.Background(), in)
			if !errorIs(err, tt.want) {
				t.Fatalf("Decide() = %+v, %v; want error %v", d, err, tt.want)
			}
			if d.Allow {
				t.Errorf("Decide() with error %v = allow, want the zero Decision", err)
			}
		})
	}
}

// TestDecideDefaults: missing keys take DESIGN.md's defaults.
func TestDecideDefaults(t *testing.T) {
	dir := tree(t, decision(`{"allow": false, "reason": "closed"}`))
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), request([]string{"cs_agent"}, "customers", "list"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || d.Status != 403 || d.Mode != policy.ModeEnforce || d.Reason != "closed" {
		t.Errorf("Decide() = %+v, want deny 403 enforce %q", d, "closed")
	}
}

// TestNewRefuses: New fails on every tree that cannot serve, and reports it to OnReload.
func TestNewRefuses(t *testing.T) {
	ok := "package veil\n\ndecision := {\"allow\": false}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"empty tree", map[string]string{"README.md": "policies go here"}, "data.veil.decision"},
		{"syntax error", map[string]string{"veil/decision.rego": "package veil\n\ndecision := {\"allow\": \n"}, "rego_parse_error"},
		{"Rego v0 syntax", map[string]string{"veil/decision.rego": "package veil\n\ndecision = {\"allow\": true} { true }\n"}, "rego_parse_error"},
		{"unsafe variable", map[string]string{"veil/decision.rego": "package veil\n\ndecision := x\n"}, "rego_unsafe_var_error"},
		{"type error", map[string]string{"veil/decision.rego": "package veil\n\ndecision := {\"allow\": count(1)}\n"}, "rego_type_error"},
		{"bad data.json", map[string]string{"veil/decision.rego": ok, "veil/data.json": `{"classification": `}, "data.json"},
		{"bad data.yaml", map[string]string{"veil/decision.rego": ok, "veil/data.yaml": "a: [1\n"}, "data.yaml"},
		{"no decision rule", map[string]string{"veil/decision.rego": "package veil\n\nallow := true\n"}, "no rule defines data.veil.decision"},
		{"decision in another package", map[string]string{"veil/decision.rego": "package veilproxy\n\ndecision := {}\n"}, "no rule defines data.veil.decision"},
		{"broken test file", map[string]string{"veil/decision.rego": ok, "veil/decision_test.rego": "package veil_test\n\ntest_x if {\n"}, "rego_parse_error"},
		{"conflicting decision rules", map[string]string{
			"veil/decision.rego": "package veil\n\ndecision := {\"allow\": false} if input.user.id == \"\"\n",
			"veil/zz.rego":       "package veil\n\ndecision := {\"allow\": true}\n",
		}, "conflicting values"},
		{"decision errs on every request", map[string]string{
			"veil/decision.rego": "package veil\n\ndecision := {\"allow\": false, \"max_page_size\": 1 / count(input.user.roles)}\n",
		}, "divide by zero"},
		{"decision is never a decision", map[string]string{"veil/decision.rego": "package veil\n\ndecision := \"deny\"\n"}, "want an object"},
		{"decision is a set", map[string]string{"veil/decision.rego": "package veil\n\ndecision contains \"allow\" if input.route == \"livecrm\"\n"}, "want an object"},
		{"tables read input", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nroute := input.route\n",
		}, "reads input"},
		{"tables read input through a function", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nimport data.lib\n\nn := lib.twice(2)\n",
			"lib/lib.rego":       "package lib\n\ntwice(x) := y if {\n\ty := x * 2\n\tinput.user\n}\n",
		}, "reads input"},
		{"tables call a non-deterministic built-in", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nloaded := time.now_ns()\n",
		}, "non-deterministic"},
		{"tables hold a set", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nroles := {\"a\", \"b\"}\n",
		}, "is a set"},
		{"tables conflict with data", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nn := 1\n",
			"veil/data.json":     `{"tables": {"m": 2}}`,
		}, "defined by both data and rules"},
		{"tables fail to evaluate", map[string]string{
			"veil/decision.rego": ok,
			"veil/tables.rego":   "package veil.tables\n\nn := 1 if true\n\nn := 2 if true\n",
		}, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.files)
			var reported error
			var calls int
			e, err := policy.New(context.Background(), policy.Options{
				FS: os.DirFS(dir),
				OnReload: func(rev string, err error) {
					calls++
					reported = err
					if rev != "" {
						t.Errorf("OnReload(%q, %v): want an empty revision with an error", rev, err)
					}
				},
			})
			if err == nil || e != nil {
				t.Fatalf("New() = %v, nil; want an error containing %q", e, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want it to contain %q", err, tt.want)
			}
			if calls != 1 || reported == nil {
				t.Errorf("OnReload called %d times with %v, want once with the error", calls, reported)
			}
		})
	}
	if e, err := policy.New(context.Background(), policy.Options{}); err == nil {
		t.Errorf("New(no FS) = %v, nil; want an error", e)
	}
}

// TestTablesServedAsData: rules under data.veil.tables are evaluated once and served as
// data; the decision reads them; tests of the tables package do not end up in them.
func TestTablesServedAsData(t *testing.T) {
	dir := tree(t, map[string]string{
		"veil/data.json": `{"items": {"a": 1, "b": 2, "c": 3}}`,
		"veil/tables.rego": `package veil.tables

total := sum([n | some n in data.veil.items])

big[name] := n if {
	some name, n in data.veil.items
	n > 1
}
`,
		"veil/tables_test.rego": "package veil.tables\n\ntest_total if total == 6 with input as {}\n",
		"veil/decision.rego": `package veil

decision := {"allow": true, "max_page_size": data.veil.tables.total * data.veil.tables.big[input.route]}
`,
	})
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir)})
	if err != nil {
		t.Fatalf("New error: %v", err)
	}
	in := request([]string{"cs_agent"}, "customers", "list")
	in.Route = "c"
	d, err := e.Decide(context.Background(), in)
	if err != nil || d.MaxPageSize != 18 {
		t.Errorf("Decide(route c) = %+v, %v; want MaxPageSize 18", d, err)
	}
	in.Route = "a"
	if d, err := e.Decide(context.Background(), in); !errors.Is(err, policy.ErrUndefined) {
		t.Errorf("Decide(route a) = %+v, %v; want ErrUndefined", d, err)
	}
}

// TestRevision: the revision covers the policy files' names and contents only.
func TestRevision(t *testing.T) {
	onDisk, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(filepath.Join("..", "..", "policies"))})
	if err != nil {
		t.Fatal(err)
	}
	embedded := shipped(t)
	if onDisk.Revision() != embedded.Revision() {
		t.Errorf("Revision(policies dir) = %s, Revision(policies.FS) = %s; want equal", onDisk.Revision(), embedded.Revision())
	}
	if len(embedded.Revision()) != 12 {
		t.Errorf("Revision() = %q, want 12 hex digits", embedded.Revision())
	}

	base := map[string]*fstest.MapFile{
		"veil/decision.rego": {Data: []byte("package veil\n\ndecision := {\"allow\": false}\n")},
		"veil/data.json":     {Data: []byte(`{"a": 1}`)},
	}
	revision := func(extra map[string]*fstest.MapFile) string {
		fsys := fstest.MapFS{}
		for k, v := range base {
			fsys[k] = v
		}
		for k, v := range extra {
			fsys[k] = v
		}
		e, err := policy.New(context.Background(), policy.Options{FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}
	rev := revision(nil)
	same := map[string]map[string]*fstest.MapFile{
		"README":      {"veil/README.md": {Data: []byte("notes")}},
		"Go file":     {"policies.go": {Data: []byte("package policies")}},
		"hidden file": {"veil/.decision.rego.swp": {Data: []byte("junk")}},
		"hidden dir":  {".git/x.rego": {Data: []byte("junk")}},
	}
	for name, extra := range same {
		if got := revision(extra); got != rev {
			t.Errorf("Revision(with %s) = %s, want %s", name, got, rev)
		}
	}
	changed := map[string]map[string]*fstest.MapFile{
		"data":         {"veil/data.json": {Data: []byte(`{"a": 2}`)}},
		"another file": {"veil/more.rego": {Data: []byte("package veil\n\nx := 1\n")}},
	}
	for name, extra := range changed {
		if got := revision(extra); got == rev {
			t.Errorf("Revision(with changed %s) = %s, want a new revision", name, got)
		}
	}
}

// TestEmbeddedTreeLayout: policies.FS holds veil/ at its root, like the directory.
func TestEmbeddedTreeLayout(t *testing.T) {
	for _, name := range []string{"veil/decision.rego", "veil/data.json", "veil/decision_test.rego"} {
		if _, err := os.Stat(filepath.Join("..", "..", "policies", filepath.FromSlash(name))); err != nil {
			t.Errorf("policies/%s on disk: %v", name, err)
		}
		if _, err := policies.FS.Open(name); err != nil {
			t.Errorf("policies.FS.Open(%q): %v", name, err)
		}
	}
}

// TestDataDocuments: data.json and data.yaml sit at their folder's path, as in an OPA bundle.
func TestDataDocuments(t *testing.T) {
	dir := tree(t, map[string]string{
		"data.json":          `{"top": 1}`,
		"veil/data.yaml":     "budgets:\n  department: 7\n",
		"veil/sub/data.json": `{"n": 2}`,
		"veil/decision.rego": `package veil

decision := {"allow": true, "max_page_size": (data.top + data.veil.budgets.department) * data.veil.sub.n}
`,
	})
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir)})
	if err != nil {
		t.Fatalf("New error: %v", err)
	}
	d, err := e.Decide(context.Background(), request([]string{"cs_agent"}, "customers", "list"))
	if err != nil || d.MaxPageSize != 16 {
		t.Errorf("Decide() = %+v, %v; want MaxPageSize (1+7)*2 = 16", d, err)
	}
}
