package redteam

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
)

// policyDir writes files (slash-separated path ⇒ contents) to a new directory.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shippedDir copies the shipped policy tree to a new directory.
func shippedDir(t *testing.T) string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return policyDir(t, files)
}

// case34 — a policy error, an undefined decision or no policy at all is a deny.
func case34(t *testing.T) {
	// Each failing decision is guarded by the resource type, so that it fails on the requests
	// below and not on whatever probe input the engine may evaluate when it loads a tree.
	guarded := func(expr string) string {
		return "decision := d if {\n\tinput.resource.type == \"customers\"\n\td := " + expr + "\n} else := {\"allow\": false}"
	}
	runtime := []struct{ name, rego string }{
		{"division_by_zero", guarded(`{"allow": true, "max_page_size": 1 / count(input.user.claims)}`)},
		{"builtin_type_error", guarded(`{"allow": true, "max_page_size": to_number(input.user.id)}`)},
		{"undefined", `decision := {"allow": true} if input.user.id == "nobody"`},
		{"conflict", "decision := {\"allow\": true} if input.user.id != \"\"\ndecision := {\"allow\": false} if input.user.id != \"x\""},
		{"not_an_object", guarded(`true`)},
		{"allow_is_a_string", guarded(`{"allow": "true"}`)},
		{"field_action_not_a_string", guarded(`{"allow": true, "fields": {"mobile": 5}}`)},
		{"unknown_field_action", guarded(`{"allow": true, "fields": {"mobile": "scramble"}}`)},
		{"unknown_mode", guarded(`{"allow": true, "mode": "shadow"}`)},
		{"bad_limit_window", guarded(`{"allow": true, "limits": [{"name": "x", "key": "u", "window": "forever", "records": 5}]}`)},
		{"negative_limit", guarded(`{"allow": true, "limits": [{"name": "x", "key": "u", "window": "1h", "records": -5}]}`)},
		{"unguarded_division_by_zero", `decision := {"allow": true, "max_page_size": 1 / count(input.user.claims)}`},
	}
	for _, tt := range runtime {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"veil/decision.rego": "package veil\n\n" + tt.rego + "\n"})
			eng, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir})
			if err != nil {
				// Refused at load: Veil does not start on it, which is a deny too.
				t.Logf("policy.New refused the tree: %v", err)
				return
			}
			e := newEnv(t, veiltest.Options{Policy: eng})
			resp, _ := e.as(t, "cs_agent", "GET", "/api/customers", nil)
			if resp.StatusCode < 400 {
				t.Errorf("status %d, want a deny", resp.StatusCode)
			}
			e.nothingForwarded(t)
			recs := e.AuditRecords()
			if len(recs) != 1 || recs[0].Decision == "allow" {
				t.Errorf("audit %+v, want one deny or error", recs)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		files map[string]string
	}{
		{"empty_tree", map[string]string{}},
		{"data_only", map[string]string{"veil/data.json": `{"roles": {}}`}},
		{"no_decision_rule", map[string]string{"veil/x.rego": "package veil\n\nallow := true\n"}},
		{"syntax_error", map[string]string{"veil/x.rego": "package veil\n\ndecision := {\n"}},
		{"compile_type_error", map[string]string{"veil/x.rego": "package veil\n\ndecision := {\"allow\": true} if 1 == \"a\" + 1\n"}},
		{"broken_test_file", map[string]string{"veil/x.rego": "package veil\n\ndecision := {\"allow\": true}\n", "veil/x_test.rego": "package veil\n\ntest_x if {\n"}},
	} {
		t.Run("load_"+tt.name, func(t *testing.T) {
			dir := policyDir(t, tt.files)
			if eng, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir}); err == nil {
				t.Errorf("policy.New = %v (revision %s), want an error: no policy means no Veil", eng, eng.Revision())
			}
		})
	}
}

// hammer runs n clients against Veil until stop is closed; each sends GET target as
// user-<i> with roles and reports every response, with the time it was sent, to check.
func hammer(t *testing.T, e *env, n int, roles, target string, stop <-chan struct{}, check func(start time.Time, code int, hdr http.Header, body []byte)) *sync.WaitGroup {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				req, _ := http.NewRequest("GET", e.Veil.URL+target, nil)
				req.Header.Set("X-Veil-User", fmt.Sprintf("user-%d", i))
				req.Header.Set("X-Veil-Roles", roles)
				resp, err := c.Do(req)
				if err != nil {
					check(start, 0, nil, []byte(err.Error()))
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				check(start, resp.StatusCode, resp.Header, b)
			}
		}()
	}
	return &wg
}

// leaky reports whether a response leaks a planted secret in its body or a header value.
func leaky(hdr http.Header, body []byte) bool {
	if len(veiltest.Leaks(body, secrets())) > 0 {
		return true
	}
	for _, vs := range hdr {
		if len(veiltest.Leaks([]byte(strings.Join(vs, ",")), secrets())) > 0 {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// case35 — a broken policy pushed during hot reload, under 50 clients: the last good policy
// keeps serving, the failure is counted, no request errors and nothing leaks.
func case35(t *testing.T) {
	dir := shippedDir(t)
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg, "redteam", false)
	eng, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir, OnReload: func(rev string, err error) {
		if err != nil {
			m.PolicyReloads.WithLabelValues("error").Inc()
		} else {
			m.PolicyReloads.WithLabelValues("success").Inc()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- eng.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-watched
	})
	good := eng.Revision()
	e := newEnv(t, veiltest.Options{Policy: eng, Metrics: m})
	var total, failed, leaked atomic.Int64
	stop := make(chan struct{})
	wg := hammer(t, e, 50, "cs_agent", "/api/customers?pageSize=3", stop, func(_ time.Time, code int, hdr http.Header, body []byte) {
		total.Add(1)
		if code != http.StatusOK {
			if failed.Add(1) == 1 {
				t.Errorf("response %d: %.200s", code, body)
			}
		}
		if leaky(hdr, body) {
			leaked.Add(1)
		}
	})
	reloadErrors := func() float64 { return value(m.PolicyReloads.WithLabelValues("error")) }
	time.Sleep(200 * time.Millisecond)
	broken := []string{
		"package veil\n\ndecision := {\n",                                        // syntax
		"package veil\n\ndecision := {\"allow\": true}\n",                        // conflicts with the shipped rule
		"package veil\n\nimport data.nowhere\n\nx := nowhere.y + \"a\" + 1\n",    // type error
		"package other\n\ndefault allow := false\n\nallow if input.user.id ==\n", // syntax in another package
	}
	for i, src := range broken {
		before := reloadErrors()
		if err := os.WriteFile(filepath.Join(dir, "veil", "zz_broken.rego"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if !waitFor(20*time.Second, func() bool { return reloadErrors() > before }) {
			t.Errorf("broken policy %d: no failed reload counted", i)
		}
		if eng.Revision() != good {
			t.Errorf("broken policy %d: revision %s, want the last good %s", i, eng.Revision(), good)
		}
	}
	os.Remove(filepath.Join(dir, "veil", "zz_broken.rego"))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests, %d failed, %d leaked, %v failed reloads", total.Load(), failed.Load(), leaked.Load(), reloadErrors())
	if total.Load() < 100 || failed.Load() > 0 || leaked.Load() > 0 {
		t.Errorf("%d requests: %d failed, %d leaked; want none", total.Load(), failed.Load(), leaked.Load())
	}
}

// case36 — Redis down under load: the route's on_store_error decides, and every fail-open is
// counted.
func case36(t *testing.T) {
	for _, mode := range []string{"deny", "allow"} {
		t.Run(mode, func(t *testing.T) {
			addr, stopRedis, restart := redistest.StartServer(t)
			rc := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
			t.Cleanup(func() { rc.Close() })
			store := limit.NewRedis(rc, limit.RedisOptions{Prefix: redistest.Prefix(t), Timeout: 200 * time.Millisecond, BreakerCooldown: 100 * time.Millisecond})
			reg := prometheus.NewRegistry()
			m := proxy.NewMetrics(reg, "redteam", false)
			e := newEnv(t, veiltest.Options{Budgets: store, OnStoreError: mode, Metrics: m})
			// A request counts in the phase it started and ended in: 0 Redis up, 1 down, 2
			// restarted; requests that straddle a change (odd phases) are not counted.
			var mu sync.Mutex
			var bounds []time.Time // phase changes: up ends, down starts, down ends, restarted starts
			codes := map[int]map[int]int{0: {}, 1: {}, 2: {}}
			phaseOf := func(at time.Time) int {
				mu.Lock()
				defer mu.Unlock()
				p := 0
				for _, b := range bounds {
					if at.After(b) {
						p++
					}
				}
				return p
			}
			var leaked atomic.Int64
			stop := make(chan struct{})
			wg := hammer(t, e, 10, "cs_agent", "/api/customers?pageSize=1", stop, func(start time.Time, code int, hdr http.Header, body []byte) {
				if p := phaseOf(start); p == phaseOf(time.Now()) && p%2 == 0 {
					mu.Lock()
					codes[p/2][code]++
					mu.Unlock()
				}
				if leaky(hdr, body) {
					leaked.Add(1)
				}
			})
			mark := func() {
				mu.Lock()
				bounds = append(bounds, time.Now())
				mu.Unlock()
			}
			time.Sleep(300 * time.Millisecond)
			mark() // phase 0 ends
			stopRedis()
			mark() // phase 1 (down) starts
			time.Sleep(600 * time.Millisecond)
			mark() // phase 1 ends
			restart()
			time.Sleep(1200 * time.Millisecond) // the breaker lets a probe through and closes
			mark()                              // phase 2 (restarted) starts
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Logf("statuses up %v, down %v, restarted %v", codes[0], codes[1], codes[2])
			if leaked.Load() > 0 {
				t.Errorf("%d responses leaked", leaked.Load())
			}
			if len(codes[0]) != 1 || codes[0][200] == 0 {
				t.Errorf("with Redis up: %v, want only 200", codes[0])
			}
			if len(codes[2]) != 1 || codes[2][200] == 0 {
				t.Errorf("after restart: %v, want only 200", codes[2])
			}
			failOpen := value(m.FailOpen.WithLabelValues("crm"))
			switch mode {
			case "deny":
				if len(codes[1]) != 1 || codes[1][http.StatusServiceUnavailable] == 0 {
					t.Errorf("with Redis down and on_store_error deny: %v, want only 503", codes[1])
				}
				if failOpen != 0 {
					t.Errorf("veil_limit_fail_open_total = %v, want 0", failOpen)
				}
			case "allow":
				if len(codes[1]) != 1 || codes[1][200] == 0 {
					t.Errorf("with Redis down and on_store_error allow: %v, want only 200", codes[1])
				}
				if failOpen < float64(codes[1][200]) {
					t.Errorf("veil_limit_fail_open_total = %v, want at least the %d requests let through", failOpen, codes[1][200])
				}
			}
		})
	}
}

// case37 — the upstream dies mid-body: 502 and nothing of the half body, or a stream cut off.
func case37(t *testing.T) {
	var many []customer
	for len(many)*300 < 64<<10 {
		many = append(many, planted...)
	}
	manyJSON := mustJSON(map[string]any{"data": many})
	for _, tt := range []struct {
		name  string
		write func(w *bufio.ReadWriter)
		want  int
	}{
		{"before_headers", func(w *bufio.ReadWriter) {}, http.StatusBadGateway},
		{"half_body", func(w *bufio.ReadWriter) {
			b := listJSON()
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(b))
			w.Write(b[:len(b)/2])
		}, http.StatusBadGateway},
		{"half_chunk", func(w *bufio.ReadWriter) {
			b := listJSON()
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(b))
			w.Write(b[:len(b)/2])
		}, http.StatusBadGateway},
		{"half_gzip", func(w *bufio.ReadWriter) {
			b := encode(t, listJSON(), "gzip")
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(b))
			w.Write(b[:len(b)/2])
		}, http.StatusBadGateway},
		{"streamed", func(w *bufio.ReadWriter) {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(manyJSON)-100)
			w.Write(manyJSON[:len(manyJSON)-100])
			io.WriteString(w, "\r\n")
		}, http.StatusBadGateway},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Upstream: hijack(tt.write), Limits: proxy.Limits{StreamThreshold: 4 << 10}})
			code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
			refusedOrAborted(t, code, cut, tt.want)
			if tt.name == "streamed" && !cut && code == http.StatusOK {
				t.Errorf("a cut stream ended like a whole one")
			}
		})
	}
	t.Run("reset", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		})})
		code, cut := bodyOrAbort(t, e, "cs_agent", "/api/customers")
		refusedOrAborted(t, code, cut, http.StatusBadGateway)
	})
}

// case38 — an unwritable audit log fails exports closed; reads follow audit.on_error.
func case38(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	for _, mode := range []string{"", "allow"} {
		t.Run("on_error_"+map[string]string{"": "deny", "allow": "allow"}[mode], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.Symlink("/dev/full", path); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			m := proxy.NewMetrics(reg, "redteam", false)
			e := newEnv(t, veiltest.Options{AuditPath: path, AuditOnError: mode, Metrics: m})
			resp, _ := e.as(t, "ops_manager", "GET", "/api/customers/export", nil)
			status(t, "export", resp.StatusCode, http.StatusServiceUnavailable)
			if !waitFor(3*time.Second, func() bool { return e.Audit.Healthy() != nil }) {
				t.Fatalf("the audit log still reports healthy on /dev/full")
			}
			resp, _ = e.as(t, "ops_manager", "GET", "/api/customers/export", nil)
			status(t, "export after the failure", resp.StatusCode, http.StatusServiceUnavailable)
			resp, _ = e.as(t, "cs_agent", "GET", "/api/customers", nil)
			want := http.StatusServiceUnavailable
			if mode == "allow" {
				want = http.StatusOK
			}
			status(t, "read", resp.StatusCode, want)
			if n := value(m.AuditErrors); n == 0 {
				t.Errorf("veil_audit_errors_total = 0, want the failures counted")
			}
		})
	}
}
