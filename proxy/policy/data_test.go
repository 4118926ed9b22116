package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/proxy/policy"
)

func TestData(t *testing.T) {
	dir := tree(t, map[string]string{
		"veil/decision.rego": "package veil\n\ndecision := {\"allow\": false}\n",
		"veil/data.json":     `{"directory": {"0055g00000AbCdEAAV": {"roles": ["cs_agent"], "department": "cs"}}, "revoked": ["bob"], "limit": 500}`,
		"veil/tables.rego":   "package veil.tables\n\nrevoked[u] := true if some u in data.veil.revoked\n",
	})
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"veil", "directory"}, map[string]any{"0055g00000AbCdEAAV": map[string]any{"roles": []any{"cs_agent"}, "department": "cs"}}},
		{[]string{"veil", "revoked"}, []any{"bob"}},
		{[]string{"veil", "limit"}, json.Number("500")},
		{[]string{"veil", "tables", "revoked"}, map[string]any{"bob": true}}, // a table is data once loaded
		{[]string{"veil", "nothing"}, nil},
		{[]string{"veil", "limit", "deeper"}, nil},
		{[]string{"elsewhere"}, nil},
	}
	for _, tt := range tests {
		got, err := e.Data(tt.path...)
		if err != nil {
			t.Errorf("Data(%q) error: %v", tt.path, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Data(%q) mismatch (-want +got):\n%s", tt.path, diff)
		}
	}

	// The caller owns the copy.
	v, _ := e.Data("veil", "revoked")
	v.([]any)[0] = "changed"
	if again, _ := e.Data("veil", "revoked"); cmp.Diff([]any{"bob"}, again) != "" {
		t.Errorf("Data after the caller changed its copy = %v, want [bob]", again)
	}
}

// TestDataFollowsReload reads data from OnReload, the way cmd/veil refreshes the staff
// directory: each successful load shows its own data, and a refused load leaves the data of
// the policy still serving.
func TestDataFollowsReload(t *testing.T) {
	dir := tree(t, map[string]string{
		"veil/decision.rego": "package veil\n\ndecision := {\"allow\": false}\n",
		"veil/data.json":     `{"revoked": ["v1"]}`,
	})
	var (
		e    *policy.Engine
		seen []any
	)
	onReload := func(_ string, err error) {
		if err != nil || e == nil {
			return
		}
		v, derr := e.Data("veil", "revoked")
		if derr != nil {
			t.Errorf("Data in OnReload error: %v", derr)
		}
		seen = append(seen, v)
	}
	var err error
	e, err = policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir, OnReload: onReload})
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{"veil/data.json": `{"revoked": ["v2"]}`})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	writeTree(t, dir, map[string]string{"veil/data.json": `{"revoked": `})
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("Reload of a broken data.json succeeded")
	}
	if diff := cmp.Diff([]any{[]any{"v2"}}, seen); diff != "" {
		t.Errorf("data seen in OnReload mismatch (-want +got):\n%s", diff)
	}
	if got, _ := e.Data("veil", "revoked"); cmp.Diff([]any{"v2"}, got) != "" {
		t.Errorf("Data after a refused reload = %v, want [v2]", got)
	}
}
