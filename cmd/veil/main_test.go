package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veilproxy/veil/internal/democrm"
)

// startVeil builds and serves the demo configuration against a sample CRM, on free ports.
func startVeil(t *testing.T) (proxyURL, adminURL, auditFile string, crm *democrm.CRM) {
	t.Helper()
	crm = democrm.New(40, 1)
	up := httptest.NewServer(crm.Handler())
	t.Cleanup(up.Close)
	dir := t.TempDir()
	auditFile = filepath.Join(dir, "audit.jsonl")
	cfg, err := demoConfigFor(demoAddrs{Proxy: "127.0.0.1:0", Admin: "127.0.0.1:0", Upstream: strings.TrimPrefix(up.URL, "http://"), Audit: auditFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := build(ctx, cfg, buildOptions{logOut: io.Discard, getenv: envOf(map[string]string{"VEIL_HASH_KEY": "k"})})
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, pl, al) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return "http://" + pl.Addr().String(), "http://" + al.Addr().String(), auditFile, crm
}

func get(t *testing.T, url string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestServeEndToEnd(t *testing.T) {
	p, admin, auditFile, crm := startVeil(t)
	c := crm.Customers()[0]
	code, body := get(t, p+"/api/customers/"+c.ID, "X-Veil-User", "alice", "X-Veil-Roles", "cs_agent")
	if code != 200 || bytes.Contains(body, []byte(c.Mobile)) {
		t.Fatalf("cs_agent read = %d %s", code, body)
	}
	code, _ = get(t, p+"/api/customers/export", "X-Veil-User", "vendor", "X-Veil-Roles", "contractor")
	if code != 403 {
		t.Fatalf("contractor export = %d, want 403", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, admin+path); code != 200 {
			t.Errorf("%s = %d %s", path, code, body)
		}
	}
	code, body = get(t, admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	sum := func(name string, labels map[string]string) float64 {
		var total float64
		f := fams[name]
		if f == nil {
			return -1
		}
	metrics:
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			if m.Counter != nil {
				total += m.Counter.GetValue()
			}
		}
		return total
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"veil_requests_total", map[string]string{"route": "livecrm", "decision": "allow"}, 1},
		{"veil_requests_total", map[string]string{"route": "livecrm", "decision": "deny"}, 1},
		{"veil_records_total", map[string]string{"resource": "customers", "action": "read"}, 1},
		{"veil_user_records_total", map[string]string{"user": "alice"}, 1},
		{"veil_policy_reloads_total", map[string]string{"result": "success"}, 1},
	}
	for _, c := range checks {
		if got := sum(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"veil_policy_eval_seconds", "veil_upstream_seconds", "veil_rewrite_seconds", "veil_build_info", "veil_fields_masked_total"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}

	// The audit CLI reads what serve wrote.
	var out, errb bytes.Buffer
	deadline := time.Now().Add(3 * time.Second)
	for {
		out.Reset()
		errb.Reset()
		err = run(context.Background(), []string{"audit", "who", "--record", c.ID, auditFile}, &out, &errb)
		if (err == nil && strings.Contains(out.String(), "alice")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out.String(), "alice") {
		t.Fatalf("audit who --record %s = %v\n%s%s", c.ID, err, out.String(), errb.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"audit", "verify", auditFile}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "OK") {
		t.Fatalf("audit verify = %v %s", err, out.String())
	}
}

func TestCheckShippedConfig(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"check", "-c", "../../deploy/veil.yaml"}, &out, &errb)
	if err != nil {
		t.Fatalf("veil check = %v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "policy tests:") || !strings.Contains(out.String(), "0 failed") {
		t.Fatalf("check output = %s", out.String())
	}
}

func TestCheckFindsProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "veil.yaml")
	os.WriteFile(bad, []byte("listen: :1\nroutes:\n  - name: x\n    path_prefix: /\n    upstream: http://a\n    upstreem: b\n"), 0o644)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"check", "-c", bad}, &out, &errb)
	if code := exitCode(err, io.Discard); code != 1 {
		t.Fatalf("check on a bad config exits %d (%v), want 1", code, err)
	}
	if !strings.Contains(err.Error(), "veil.yaml:6: routes[0].upstreem: unknown key") {
		t.Errorf("error = %v, want the line of the unknown key", err)
	}
	if code := exitCode(run(context.Background(), []string{"check", "-x"}, &out, &errb), io.Discard); code != 2 {
		t.Errorf("check -x exits %d, want 2", code)
	}
}

func TestExplain(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"explain", "-c", "../../deploy/veil.yaml", "--user", "alice", "--roles", "cs_agent", "GET", "/api/customers?pageSize=10"}, &out, &errb)
	if err != nil {
		t.Fatalf("explain = %v %s", err, errb.String())
	}
	for _, want := range []string{"route:     livecrm", "action=list", "decision:  ALLOW", "mobile", "mask"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"explain", "-c", "../../deploy/veil.yaml", "--user", "v", "--roles", "contractor", "GET", "/api/customers/export"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "DENY") {
		t.Errorf("contractor export explain:\n%s", out.String())
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.jsonl")
	lines := []string{}
	for i := range 3 {
		lines = append(lines, fmt.Sprintf(`{"i":%d}`, i))
	}
	os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"audit", "verify", f}, &out, &errb)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(out.String(), "a.jsonl:1") {
		t.Fatalf("verify on an unchained file = exit %d, %s", code, out.String())
	}
}
