package policy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilproxy/veil/proxy/policy"
)

// version is a policy whose decision allows with reason v and masks phone.
func version(v string) string {
	return fmt.Sprintf("package veil\n\ndecision := {\"allow\": true, \"reason\": %q, \"fields\": {\"phone\": \"mask:phone\"}}\n", v)
}

const broken = "package veil\n\ndecision := {\"allow\": \n"

// reloads records OnReload calls.
type reloads struct {
	mu    sync.Mutex
	calls []reload
	ch    chan reload
}

type reload struct {
	revision string
	err      error
}

func newReloads() *reloads { return &reloads{ch: make(chan reload, 64)} }

func (r *reloads) record(rev string, err error) {
	r.mu.Lock()
	r.calls = append(r.calls, reload{rev, err})
	r.mu.Unlock()
	select {
	case r.ch <- reload{rev, err}:
	default:
	}
}

// next waits for the next OnReload call.
func (r *reloads) next(t *testing.T) reload {
	t.Helper()
	select {
	case got := <-r.ch:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
		return reload{}
	}
}

func reasonOf(t *testing.T, e *policy.Engine) string {
	t.Helper()
	d, err := e.Decide(context.Background(), request([]string{"cs_agent"}, "customers", "list"))
	if err != nil {
		t.Fatalf("Decide error: %v", err)
	}
	return d.Reason
}

func TestReload(t *testing.T) {
	dir := tree(t, map[string]string{"veil/decision.rego": version("v1")})
	var logs bytes.Buffer
	r := newReloads()
	e, err := policy.New(context.Background(), policy.Options{
		FS: os.DirFS(dir), Dir: dir, OnReload: r.record,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); got.err != nil || got.revision != e.Revision() {
		t.Errorf("OnReload after New = %+v, want revision %s and no error", got, e.Revision())
	}
	v1 := e.Revision()

	// Unchanged tree: same revision, reported.
	if err := e.Reload(context.Background()); err != nil || e.Revision() != v1 {
		t.Fatalf("Reload(unchanged) = %v, revision %s; want nil, %s", err, e.Revision(), v1)
	}
	if got := r.next(t); got.err != nil || got.revision != v1 {
		t.Errorf("OnReload after unchanged Reload = %+v, want %s", got, v1)
	}

	writeTree(t, dir, map[string]string{"veil/decision.rego": version("v2")})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload(v2) error: %v", err)
	}
	v2 := e.Revision()
	if v2 == v1 || reasonOf(t, e) != "v2" {
		t.Errorf("after Reload(v2): revision %s (was %s), reason %q; want a new revision and v2", v2, v1, reasonOf(t, e))
	}
	if got := r.next(t); got.err != nil || got.revision != v2 {
		t.Errorf("OnReload after Reload(v2) = %+v, want %s", got, v2)
	}

	for name, files := range map[string]map[string]string{
		"syntax error":  {"veil/decision.rego": broken},
		"bad data":      {"veil/decision.rego": version("v3"), "veil/data.json": "{"},
		"rule missing":  {"veil/decision.rego": "package veil\n\nallow := true\n"},
		"compile error": {"veil/decision.rego": "package veil\n\ndecision := {\"allow\": y}\n"},
	} {
		t.Run(name, func(t *testing.T) {
			writeTree(t, dir, files)
			if err := e.Reload(context.Background()); err == nil {
				t.Errorf("Reload(%s) = nil, want an error", name)
			}
			if got := r.next(t); got.err == nil || got.revision != "" {
				t.Errorf("OnReload after Reload(%s) = %+v, want an error and no revision", name, got)
			}
			if e.Revision() != v2 || reasonOf(t, e) != "v2" {
				t.Errorf("after Reload(%s): revision %s, reason %q; want %s still serving v2", name, e.Revision(), reasonOf(t, e), v2)
			}
			os.Remove(dir + "/veil/data.json")
		})
	}
	if !strings.Contains(logs.String(), `"msg":"policy reload refused"`) || !strings.Contains(logs.String(), `"serving":"`+v2+`"`) {
		t.Errorf("log = %s, want refused reloads logged with the serving revision", logs.String())
	}
	if strings.Contains(logs.String(), "alice") {
		t.Errorf("log = %s, want no input values", logs.String())
	}
}

func TestWatch(t *testing.T) {
	dir := tree(t, map[string]string{"veil/decision.rego": version("v1")})
	r := newReloads()
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir, OnReload: r.record})
	if err != nil {
		t.Fatal(err)
	}
	r.next(t) // New
	v1 := e.Revision()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	time.Sleep(100 * time.Millisecond) // let the watcher register before the first write

	writeTree(t, dir, map[string]string{"veil/decision.rego": version("v2")})
	got := r.next(t)
	for got.err == nil && got.revision == v1 { // an early event may reload the old tree
		got = r.next(t)
	}
	if got.err != nil || got.revision != e.Revision() || reasonOf(t, e) != "v2" {
		t.Fatalf("after writing v2: OnReload %+v, revision %s, reason %q; want the new revision serving v2", got, e.Revision(), reasonOf(t, e))
	}
	v2 := e.Revision()

	// A file in a directory created after Watch started.
	writeTree(t, dir, map[string]string{"veil/lib/helpers.rego": "package veil.lib\n\nx := 1\n"})
	if got := r.next(t); got.err != nil || got.revision == v2 {
		t.Fatalf("after adding veil/lib/helpers.rego: OnReload %+v, want a new revision", got)
	}
	v3 := e.Revision()

	writeTree(t, dir, map[string]string{"veil/decision.rego": broken})
	if got := r.next(t); got.err == nil {
		t.Fatalf("after writing a broken file: OnReload %+v, want the error", got)
	}
	if e.Revision() != v3 || reasonOf(t, e) != "v2" {
		t.Errorf("after a broken file: revision %s, reason %q; want %s still serving v2", e.Revision(), reasonOf(t, e), v3)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch() after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchNeedsDir(t *testing.T) {
	e := shipped(t)
	if err := e.Watch(context.Background()); err == nil {
		t.Error("Watch() on an embedded policy = nil, want an error")
	}
}

// TestDecideDuringReloads: 20 goroutines decide while the policy is reloaded 20 times;
// every decision comes whole from one policy revision (run with -race).
func TestDecideDuringReloads(t *testing.T) {
	dir := tree(t, map[string]string{"veil/decision.rego": version("v0")})
	revisions := map[string]string{} // revision -> reason
	for _, v := range []string{"v0", "v1"} {
		d := tree(t, map[string]string{"veil/decision.rego": version(v)})
		e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(d)})
		if err != nil {
			t.Fatal(err)
		}
		revisions[e.Revision()] = v
	}
	e, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var decided atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.Decide(context.Background(), request([]string{"cs_agent"}, "customers", "list"))
				if err != nil {
					errs <- err
					return
				}
				if want, ok := revisions[d.Revision]; !ok || d.Reason != want || d.Fields["phone"] != "mask:phone" {
					errs <- fmt.Errorf("Decide() = reason %q revision %s, want the reason of that revision (%q)", d.Reason, d.Revision, want)
					return
				}
				decided.Add(1)
			}
		})
	}
	for i := range 20 {
		content := version(fmt.Sprintf("v%d", i%2))
		if i%5 == 4 {
			content = broken
		}
		writeTree(t, dir, map[string]string{"veil/decision.rego": content})
		err := e.Reload(context.Background())
		if (err != nil) != (content == broken) {
			t.Errorf("Reload #%d = %v, want error only for the broken tree", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if decided.Load() == 0 {
		t.Error("no decisions were made during the reloads")
	}
}
