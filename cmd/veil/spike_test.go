package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/veilproxy/veil/internal/democrm"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/config"
)

const testAdminToken = "0123456789abcdef-spike-admin"

// TestSpikeAlertsContainsAndReleases runs the demo configuration with a webhook notifier and
// a 50-records-a-minute volume rule that contains for 30 minutes: a user listing 200 records
// is reported once, restricted, and free again after `veil users release`.
func TestSpikeAlertsContainsAndReleases(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	if err := os.CopyFS(pdir, policies.FS); err != nil {
		t.Fatal(err)
	}
	rules := `{"volume": {"user_per_minute": 50, "department_per_minute": 0, "contain": "30m"},
	           "first_export": {"enabled": false}, "after_hours": {"enabled": false}}`
	// The rules live at data.veil.alerts in veil/data.json: replace them there.
	dataFile := filepath.Join(pdir, "veil", "data.json")
	raw, err := os.ReadFile(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["alerts"] = json.RawMessage(rules)
	if raw, err = json.Marshal(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dataFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	hooks := make(chan map[string]any, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		hooks <- m
	}))
	defer hook.Close()

	crm := democrm.New(300, 1)
	up := httptest.NewServer(crm.Handler())
	defer up.Close()
	auditFile := filepath.Join(dir, "audit.jsonl")
	var yaml strings.Builder
	if err := template.Must(template.New("demo").Parse(demoConfig)).Execute(&yaml, demoAddrs{Proxy: "127.0.0.1:0", Admin: "127.0.0.1:0",
		Upstream: strings.TrimPrefix(up.URL, "http://"), Audit: auditFile}); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(yaml.String(), "alerts:\n  notifiers:\n    - {name: console, type: console}\n",
		"alerts:\n  flush: 200ms\n  notifiers:\n    - {name: security, type: webhook, url_env: HOOK_URL}\n", 1)
	if src == yaml.String() {
		t.Fatal("the demo configuration has no console notifier to replace")
	}
	cfg, err := config.Parse("spike.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := build(ctx, cfg, buildOptions{logOut: io.Discard, policyFS: os.DirFS(pdir), getenv: envOf(map[string]string{
		"VEIL_HASH_KEY": "k", "HOOK_URL": hook.URL, "VEIL_ADMIN_TOKEN": testAdminToken,
	})})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, pl, al) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	}()
	proxyURL, adminURL := "http://"+pl.Addr().String(), "http://"+al.Addr().String()
	as := func(user string) []string { return []string{"X-Veil-User", user, "X-Veil-Roles", "ops_manager"} }

	one := proxyURL + "/api/customers/" + crm.Customers()[0].ID
	code, normal := get(t, one, as("olivia")...)
	if code != 200 {
		t.Fatalf("olivia's read = %d %s", code, normal)
	}
	code, body := get(t, proxyURL+"/api/customers?pageSize=200", as("mallory")...)
	var page struct{ Data []json.RawMessage }
	if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Data) != 200 {
		t.Fatalf("mallory's list = %d, %d records, want 200 and 200 records", code, len(page.Data))
	}

	select {
	case m := <-hooks:
		if m["rule"] != "volume" || m["user"] != "mallory" || m["restricted"] != true {
			t.Errorf("alert = rule %v user %v restricted %v, want volume mallory true", m["rule"], m["user"], m["restricted"])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert reached the webhook within 5s")
	}

	code, body = get(t, one, as("mallory")...)
	if code == 200 && bytes.Equal(body, normal) {
		t.Errorf("restricted mallory's read = 200 %s, the same as an unrestricted user's: want refused or redacted", body)
	}

	var out, errOut bytes.Buffer
	t.Setenv("VEIL_ADMIN_TOKEN", testAdminToken)
	users := func(args ...string) error {
		out.Reset()
		errOut.Reset()
		return run(context.Background(), append([]string{"users", "--admin", adminURL, "--as", "zhang.wei"}, args...), &out, &errOut)
	}
	if err := users("list"); err != nil || !strings.Contains(out.String(), "mallory") || !strings.Contains(out.String(), "veil:volume") {
		t.Fatalf("veil users list = %v, %q; want mallory restricted by veil:volume", err, out.String())
	}
	if err := users("release", "mallory"); err != nil || !strings.Contains(out.String(), "mallory released") {
		t.Fatalf("veil users release mallory = %v, %q", err, out.String())
	}
	if err := users("release", "mallory"); err == nil {
		t.Errorf("veil users release mallory twice = nil error, want not restricted")
	}
	if code, body = get(t, one, as("mallory")...); code != 200 || !bytes.Equal(body, normal) {
		t.Errorf("released mallory's read = %d %s, want 200 %s", code, body, normal)
	}
	if err := users("list"); err != nil || !strings.Contains(out.String(), "no user is restricted") {
		t.Errorf("veil users list after release = %v, %q, want nobody", err, out.String())
	}

	got := map[string]string{} // action -> "by" of mallory's containment records
	f, err := os.Open(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Bytes(), err)
		}
		if rec.Resource == "restrictions" && rec.User == "mallory" {
			got[rec.Action] = rec.Extra["by"]
		}
	}
	want := map[string]string{"restrict": "veil:volume", "release": "zhang.wei"}
	for action, by := range want {
		if got[action] != by {
			t.Errorf("audit %s record of mallory by %q, want by %q (all: %v)", action, got[action], by, got)
		}
	}
	select {
	case m := <-hooks:
		t.Errorf("second alert %v, want one alert for the spike", m["title"])
	default:
	}
}

func TestUsersCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no subcommand", nil, map[string]string{"VEIL_ADMIN_TOKEN": testAdminToken}, "usage: veil users"},
		{"no token", []string{"list"}, nil, "set VEIL_ADMIN_TOKEN"},
		{"restrict without duration", []string{"restrict", "bob", "--reason", "x"}, map[string]string{"VEIL_ADMIN_TOKEN": testAdminToken}, "--for 2h --reason R"},
		{"unknown subcommand", []string{"ban", "bob"}, map[string]string{"VEIL_ADMIN_TOKEN": testAdminToken}, "usage: veil users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := usersCommand(context.Background(), append([]string{"--as", "a"}, tt.args...), io.Discard, io.Discard, envOf(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err, io.Discard) != 2 {
				t.Errorf("veil users %v = %v, want a usage error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
