package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/policy"
)

// shipped is an engine on the shipped policy.
func shipped(t testing.TB) *policy.Engine {
	t.Helper()
	e, err := policy.New(context.Background(), policy.Options{FS: policies.FS})
	if err != nil {
		t.Fatalf("New(policies.FS) error: %v", err)
	}
	return e
}

// request is what the proxy asks for alice, holding roles, acting on a generic resource
// type; an update names the public field "tags".
func request(roles []string, typ, action string) policy.Input {
	in := policy.Input{
		User: policy.User{ID: "alice", Roles: roles, Department: "cs", Claims: map[string]any{}},
		Request: policy.Request{
			Method: "GET", Path: "/api/" + typ, Query: map[string][]string{}, Headers: map[string][]string{},
			ClientIP: "10.1.2.3", Time: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
		},
		Route:    "livecrm",
		Resource: policy.Resource{System: "generic", Type: typ, Action: action, PageSize: 100, Fields: []string{}},
	}
	if action == "update" {
		in.Resource.Fields = []string{"tags"}
	}
	return in
}

// TestDecideMatrix runs every role × resource × action of the demo system through the
// served policy (tables folded into data), the path the proxy takes; the Rego tests run
// the same matrix on the policy as written.
func TestDecideMatrix(t *testing.T) {
	e := shipped(t)
	tests := []struct {
		role, typ, action string
		deny              string // the reason; "" means allowed
	}{
		{"cs_agent", "customers", "list", ""},
		{"cs_agent", "customers", "read", ""},
		{"cs_agent", "customers", "export", "customer-service agents may not export data"},
		{"cs_agent", "customers", "update", ""},
		{"cs_agent", "customers", "create", "customer-service agents may not create records"},
		{"cs_agent", "customers", "delete", "customer-service agents may not delete records"},
		{"cs_agent", "orders", "list", ""},
		{"cs_agent", "orders", "read", ""},
		{"cs_agent", "orders", "export", "customer-service agents may not export data"},
		{"cs_agent", "orders", "update", ""},
		{"cs_agent", "orders", "create", "customer-service agents may not create records"},
		{"cs_agent", "orders", "delete", "customer-service agents may not delete records"},
		{"cs_agent", "products", "list", ""},
		{"cs_agent", "products", "read", ""},
		{"cs_agent", "products", "export", "customer-service agents may not export data"},
		{"cs_agent", "products", "update", ""},
		{"cs_agent", "products", "create", "customer-service agents may not create records"},
		{"cs_agent", "products", "delete", "customer-service agents may not delete records"},
		{"host", "customers", "list", ""},
		{"host", "customers", "read", ""},
		{"host", "customers", "export", "hosts may not export customer data"},
		{"host", "customers", "update", "your role may not update records"},
		{"host", "customers", "create", "your role may not create records"},
		{"host", "customers", "delete", "your role may not delete records"},
		{"host", "orders", "list", ""},
		{"host", "orders", "read", ""},
		{"host", "orders", "export", "hosts may not export customer data"},
		{"host", "orders", "update", "your role may not update records"},
		{"host", "orders", "create", "your role may not create records"},
		{"host", "orders", "delete", "your role may not delete records"},
		{"host", "products", "list", ""},
		{"host", "products", "read", ""},
		{"host", "products", "export", "hosts may not export customer data"},
		{"host", "products", "update", "your role may not update records"},
		{"host", "products", "create", "your role may not create records"},
		{"host", "products", "delete", "your role may not delete records"},
		{"contractor", "customers", "list", "your role may only read resources without personal data"},
		{"contractor", "customers", "read", "your role may only read resources without personal data"},
		{"contractor", "customers", "export", "contractors may not export data"},
		{"contractor", "customers", "update", "your role may not update records"},
		{"contractor", "customers", "create", "your role may not create records"},
		{"contractor", "customers", "delete", "your role may not delete records"},
		{"contractor", "orders", "list", ""},
		{"contractor", "orders", "read", ""},
		{"contractor", "orders", "export", "contractors may not export data"},
		{"contractor", "orders", "update", "your role may not update records"},
		{"contractor", "orders", "create", "your role may not create records"},
		{"contractor", "orders", "delete", "your role may not delete records"},
		{"contractor", "products", "list", ""},
		{"contractor", "products", "read", ""},
		{"contractor", "products", "export", "contractors may not export data"},
		{"contractor", "products", "update", "your role may not update records"},
		{"contractor", "products", "create", "your role may not create records"},
		{"contractor", "products", "delete", "your role may not delete records"},
		{"ops_manager", "customers", "list", ""},
		{"ops_manager", "customers", "read", ""},
		{"ops_manager", "customers", "export", ""},
		{"ops_manager", "customers", "update", "your role may not update records"},
		{"ops_manager", "customers", "create", "your role may not create records"},
		{"ops_manager", "customers", "delete", "your role may not delete records"},
		{"ops_manager", "orders", "list", ""},
		{"ops_manager", "orders", "read", ""},
		{"ops_manager", "orders", "export", ""},
		{"ops_manager", "orders", "update", "your role may not update records"},
		{"ops_manager", "orders", "create", "your role may not create records"},
		{"ops_manager", "orders", "delete", "your role may not delete records"},
		{"ops_manager", "products", "list", ""},
		{"ops_manager", "products", "read", ""},
		{"ops_manager", "products", "export", ""},
		{"ops_manager", "products", "update", "your role may not update records"},
		{"ops_manager", "products", "create", "your role may not create records"},
		{"ops_manager", "products", "delete", "your role may not delete records"},
		{"security_admin", "customers", "list", ""},
		{"security_admin", "customers", "read", ""},
		{"security_admin", "customers", "export", ""},
		{"security_admin", "customers", "update", "your role may not update records"},
		{"security_admin", "customers", "create", "your role may not create records"},
		{"security_admin", "customers", "delete", "your role may not delete records"},
		{"security_admin", "orders", "list", ""},
		{"security_admin", "orders", "read", ""},
		{"security_admin", "orders", "export", ""},
		{"security_admin", "orders", "update", "your role may not update records"},
		{"security_admin", "orders", "create", "your role may not create records"},
		{"security_admin", "orders", "delete", "your role may not delete records"},
		{"security_admin", "products", "list", ""},
		{"security_admin", "products", "read", ""},
		{"security_admin", "products", "export", ""},
		{"security_admin", "products", "update", "your role may not update records"},
		{"security_admin", "products", "create", "your role may not create records"},
		{"security_admin", "products", "delete", "your role may not delete records"},
	}
	for _, tt := range tests {
		t.Run(tt.role+"/"+tt.action+"/"+tt.typ, func(t *testing.T) {
			in := request([]string{tt.role}, tt.typ, tt.action)
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatalf("Decide(%s %s %s) error: %v", tt.role, tt.action, tt.typ, err)
			}
			if tt.deny == "" {
				if !d.Allow {
					t.Errorf("Decide(%s %s %s) = deny %q, want allow", tt.role, tt.action, tt.typ, d.Reason)
				}
				return
			}
			want := policy.Decision{Status: 403, Reason: tt.deny, Mode: "enforce", Revision: e.Revision()}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("Decide(%s %s %s) mismatch (-want +got):\n%s", tt.role, tt.action, tt.typ, diff)
			}
		})
	}
}

// TestDecidePlans checks whole decisions of the shipped policy.
func TestDecidePlans(t *testing.T) {
	e := shipped(t)
	rev := e.Revision()
	csFields := map[string]string{
		"address": "mask:address", "bank_card": "mask:bank_card", "creditlimit": "mask:generic",
		"email": "mask:email", "id_card": "mask:id_card", "mobile": "mask:phone", "name": "mask:name",
		"national-id": "mask:id_card", "nationalid": "mask:id_card", "note": "mask", "phone": "mask:phone",
		"receiver": "mask:generic", "receiver_address": "mask:address", "receiver_name": "mask:name",
		"receiver_phone": "mask:phone", "taxid": "mask:id_card",
	}
	detect := []string{"phone", "id_card", "bank_card", "email", "address"}
	dept := policy.Limit{Name: "dept-hourly", Key: "dept:cs", Window: time.Hour, Records: 20000}
	restricted := request([]string{"cs_agent"}, "products", "list")
	restricted.User.Restricted = true
	writeMobile := request([]string{"cs_agent"}, "customers", "update")
	writeMobile.Resource.Fields = []string{"tags", "Mobile"}
	writeUnlisted := request([]string{"cs_agent"}, "invoices", "update")
	writeUnlisted.Resource.Fields = []string{"email"}
	salesforce := request([]string{"ops_manager"}, "Contact", "read")
	salesforce.Resource.System = "acme"
	export := request([]string{"cs_agent"}, "customers", "list")
	export.Resource.Export = true

	tests := []struct {
		name string
		in   policy.Input
		want policy.Decision
	}{
		{"cs_agent lists customers masked", request([]string{"cs_agent"}, "customers", "list"), policy.Decision{
			Allow: true, Fields: csFields, Rows: []policy.Row{}, Detect: detect,
			Limits: []policy.Limit{
				{Name: "user-customers-hourly", Key: "user:alice", Window: time.Hour, Records: 2000}, dept,
			},
			MaxPageSize: 500, Mode: "enforce",
		}},
		{"host reads own orders", request([]string{"host"}, "orders", "read"), policy.Decision{
			Allow: true,
			Fields: map[string]string{
				"address": "mask:address", "bank_card": "redact", "creditlimit": "mask:generic", "email": "mask:email",
				"id_card": "redact", "mobile": "mask:phone", "national-id": "redact", "nationalid": "redact",
				"phone": "mask:phone", "receiver": "mask:generic", "receiver_address": "mask:address",
				"receiver_name": "mask:name", "receiver_phone": "mask:phone", "taxid": "redact",
			},
			Rows:   []policy.Row{{Field: "owner_id", Op: "eq", Value: "alice"}},
			Detect: detect,
			Limits: []policy.Limit{
				{Name: "user-orders-hourly", Key: "user:alice", Window: time.Hour, Records: 500}, dept,
			},
			MaxPageSize: 500, Mode: "enforce",
		}},
		{"contractor lists orders without personal fields", request([]string{"contractor"}, "orders", "list"), policy.Decision{
			Allow: true,
			Fields: map[string]string{
				"address": "drop", "bank_card": "drop", "creditlimit": "drop", "email": "drop", "id_card": "drop",
				"mobile": "drop", "national-id": "drop", "nationalid": "drop", "phone": "drop", "receiver": "drop",
				"receiver_address": "drop", "receiver_name": "drop", "receiver_phone": "drop", "taxid": "drop",
			},
			Rows: []policy.Row{}, Detect: detect,
			Limits: []policy.Limit{
				{Name: "user-orders-hourly", Key: "user:alice", Window: time.Hour, Records: 200}, dept,
			},
			MaxPageSize: 500, Mode: "enforce",
		}},
		{"security_admin exports everything", request([]string{"security_admin"}, "customers", "export"), policy.Decision{
			Allow: true, Fields: map[string]string{}, Rows: []policy.Row{}, Detect: []string{},
			Limits: []policy.Limit{dept}, Mode: "enforce",
		}},
		{"contained user gets everything redacted and no budget", restricted, policy.Decision{
			Allow: true,
			Fields: map[string]string{
				"address": "redact", "bank_card": "redact", "category": "redact", "created_at": "redact",
				"creditlimit": "redact", "customerid": "redact", "description": "redact", "email": "redact",
				"id": "redact", "id_card": "redact", "mobile": "redact", "name": "redact", "national-id": "redact",
				"nationalid": "redact", "phone": "redact", "price": "redact", "sku": "redact", "stock": "redact",
				"taxid": "redact",
			},
			Rows: []policy.Row{}, Detect: detect,
			Limits: []policy.Limit{
				{Name: "user-products-hourly", Key: "user:alice", Window: time.Hour, Records: 0}, dept,
			},
			MaxPageSize: 500, Mode: "enforce",
		}},
		{"cs_agent may not write a sensitive field", writeMobile, policy.Decision{
			Status: 403, Reason: "you may not change sensitive fields", Mode: "enforce",
		}},
		{"writes to unlisted types check system-wide fields", writeUnlisted, policy.Decision{
			Status: 403, Reason: "you may not change sensitive fields", Mode: "enforce",
		}},
		{"export flag makes a list an export", export, policy.Decision{
			Status: 403, Reason: "customer-service agents may not export data", Mode: "enforce",
		}},
		{"unclassified system runs detectors only", salesforce, policy.Decision{
			Allow: true, Fields: map[string]string{}, Rows: []policy.Row{}, Detect: detect,
			Limits: []policy.Limit{
				{Name: "user-Contact-hourly", Key: "user:alice", Window: time.Hour, Records: 5000}, dept,
			},
			MaxPageSize: 1000, Mode: "enforce",
		}},
		{"no role", request(nil, "customers", "list"), policy.Decision{
			Status: 403, Reason: "you have no role; ask an administrator for access", Mode: "enforce",
		}},
		{"unknown role", request([]string{"intern"}, "customers", "list"), policy.Decision{
			Status: 403, Reason: "none of your roles grants access through Veil", Mode: "enforce",
		}},
		{"no resource", request([]string{"security_admin"}, "", "list"), policy.Decision{
			Status: 403, Reason: "this path is not a resource the data policy knows", Mode: "enforce",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Revision = rev
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Decide(%+v) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestDecideFromData changes only data.json of a copy of the shipped tree: off-boarding
// budgets, monitor routes, revocation.
func TestDecideFromData(t *testing.T) {
	dir := copyShipped(t, func(data map[string]any) {
		data["offboarding"] = []any{"alice"}
		data["monitor_routes"] = []any{"livecrm"}
		data["revoked"] = []any{"mallory"}
	})
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir})
	if err != nil {
		t.Fatalf("New(%s) error: %v", dir, err)
	}
	d, err := e.Decide(context.Background(), request([]string{"host"}, "customers", "list"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Limits[0].Records, int64(50); got != want {
		t.Errorf("Decide(off-boarding host).Limits[0].Records = %d, want %d", got, want)
	}
	if d.Mode != policy.ModeMonitor {
		t.Errorf("Decide(route in monitor_routes).Mode = %q, want %q", d.Mode, policy.ModeMonitor)
	}
	in := request([]string{"security_admin"}, "customers", "list")
	in.User.ID = "mallory"
	d, err = e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || d.Reason != "your access has been revoked" {
		t.Errorf("Decide(revoked user) = allow %v reason %q, want deny %q", d.Allow, d.Reason, "your access has been revoked")
	}
}

// copyShipped writes the shipped tree to a temporary directory, letting edit change its
// data.json, and returns the directory.
func copyShipped(t *testing.T, edit func(data map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		if path.Base(p) == "data.json" && edit != nil {
			var data map[string]any
			if err := json.Unmarshal(b, &data); err != nil {
				return err
			}
			edit(data)
			if b, err = json.Marshal(data); err != nil {
				return err
			}
		}
		return writeFile(filepath.Join(dir, filepath.FromSlash(p)), string(b))
	})
	if err != nil {
		t.Fatalf("copy shipped policy: %v", err)
	}
	return dir
}

// writeTree writes files (slash-separated path → contents) under dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(name)), content); err != nil {
			t.Fatal(err)
		}
	}
}

// writeFile writes a file the way an editor saving it atomically does: a temporary file
// renamed over the old one.
func writeFile(name, content string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// tree is a temporary policy directory with files in it.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	return dir
}

// decision is a one-file policy whose decision is the Rego term body.
func decision(body string) map[string]string {
	return map[string]string{"veil/decision.rego": "package veil\n\ndecision := " + body + "\n"}
}

// errorIs reports whether err wraps target, or, for a nil target, whether err is set.
func errorIs(err, target error) bool {
	if target == nil {
		return err != nil
	}
	return errors.Is(err, target)
}
