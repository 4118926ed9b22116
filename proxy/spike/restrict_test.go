package spike_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/spike"
)

// auditLog records the restrictions' audit hook.
type auditLog struct {
	mu  sync.Mutex
	got []string
}

func (a *auditLog) hook(kind, user, detail string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, kind+" "+user+" "+detail)
}

func (a *auditLog) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

type restrictionsHarness struct {
	name string
	new  func(t *testing.T, o spike.RestrictionsOptions) spike.Restrictions
}

var restrictionsHarnesses = []restrictionsHarness{
	{"memory", func(t *testing.T, o spike.RestrictionsOptions) spike.Restrictions {
		return spike.NewMemoryRestrictions(o)
	}},
	{"redis", func(t *testing.T, o spike.RestrictionsOptions) spike.Restrictions {
		url, prefix := redistest.URL(t)
		return spike.NewRedisRestrictions(newClient(t, url), prefix, o, nil)
	}},
}

func TestRestrictions(t *testing.T) {
	for _, h := range restrictionsHarnesses {
		t.Run(h.name, func(t *testing.T) {
			clk := newClock()
			audit := &auditLog{}
			r := h.new(t, spike.RestrictionsOptions{Now: clk.Now, Audit: audit.hook})
			restricted := func(user string) (bool, time.Time) {
				t.Helper()
				ok, until, err := r.Restricted(ctx, user)
				if err != nil {
					t.Fatalf("Restricted(%s): %v", user, err)
				}
				return ok, until
			}
			if ok, _ := restricted("alice"); ok {
				t.Fatal("alice restricted before anything happened")
			}
			hour := t0.Add(time.Hour)
			if err := r.Restrict(ctx, "alice", hour, "alert volume: 2350 records", "veil:volume"); err != nil {
				t.Fatal(err)
			}
			if ok, until := restricted("alice"); !ok || !until.Equal(hour) {
				t.Errorf("Restricted(alice) = %v until %v, want true until %v", ok, until, hour)
			}
			if ok, _ := restricted("bob"); ok {
				t.Error("bob restricted")
			}
			// a shorter restriction does not cut a longer one; a longer one extends it
			clk.Add(time.Minute)
			_ = r.Restrict(ctx, "alice", t0.Add(30*time.Minute), "again", "veil:probing")
			if _, until := restricted("alice"); !until.Equal(hour) {
				t.Errorf("after a shorter restriction: until %v, want %v", until, hour)
			}
			_ = r.Restrict(ctx, "alice", t0.Add(2*time.Hour), "manual: leak review", "sec-lead")
			list, err := r.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []spike.Restriction{{User: "alice", Until: t0.Add(2 * time.Hour), Since: t0, Reason: "manual: leak review", By: "sec-lead"}}
			if diff := cmp.Diff(want, list, cmpTimes); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			// release, then releasing again says so
			if err := r.Release(ctx, "alice", "sec-lead"); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if ok, _ := restricted("alice"); ok {
				t.Error("alice still restricted after release")
			}
			if err := r.Release(ctx, "alice", "sec-lead"); !errors.Is(err, spike.ErrNotRestricted) {
				t.Errorf("second Release = %v, want ErrNotRestricted", err)
			}
			// expiry by the clock
			_ = r.Restrict(ctx, "bob", clk.Now().Add(10*time.Minute), "alert probing", "veil:probing")
			clk.Add(10 * time.Minute)
			if ok, _ := restricted("bob"); ok {
				t.Error("bob restricted after his restriction ended")
			}
			if list, _ := r.List(ctx); len(list) != 0 {
				t.Errorf("List after expiry = %v, want none", list)
			}
			if err := r.Release(ctx, "bob", "x"); !errors.Is(err, spike.ErrNotRestricted) {
				t.Errorf("Release of an expired restriction = %v, want ErrNotRestricted", err)
			}
			wantAudit := []string{
				`restrict alice until=2026-11-30T02:00:00Z reason="alert volume: 2350 records" by="veil:volume"`,
				`restrict alice until=2026-11-30T02:00:00Z reason="again" by="veil:probing"`,
				`restrict alice until=2026-11-30T03:00:00Z reason="manual: leak review" by="sec-lead"`,
				`release alice by="sec-lead"`,
				`restrict bob until=2026-11-30T01:11:00Z reason="alert probing" by="veil:probing"`,
			}
			if diff := cmp.Diff(wantAudit, audit.lines()); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpTimes = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestRestrictValidates(t *testing.T) {
	for _, h := range restrictionsHarnesses {
		t.Run(h.name, func(t *testing.T) {
			clk := newClock()
			r := h.new(t, spike.RestrictionsOptions{Now: clk.Now})
			for _, tc := range []struct {
				user  string
				until time.Time
				by    string
				want  string
			}{
				{"", t0.Add(time.Hour), "x", "no user"},
				{"alice", t0.Add(time.Hour), "", "author"},
				{"alice", t0, "x", "not in the future"},
			} {
				if err := r.Restrict(ctx, tc.user, tc.until, "r", tc.by); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Restrict(%q, %v, by %q) = %v, want an error containing %q", tc.user, tc.until, tc.by, err, tc.want)
				}
			}
		})
	}
}

// TestRedisRestrictionsAcrossReplicas: a restriction made on one replica is in force on
// another within seconds — through pub/sub (Refresh is an hour here) — and so is its release.
func TestRedisRestrictionsAcrossReplicas(t *testing.T) {
	url, prefix := redistest.URL(t)
	clk := newClock()
	o := spike.RestrictionsOptions{Now: clk.Now, Refresh: time.Hour, StaleAfter: 2 * time.Hour}
	a := spike.NewRedisRestrictions(newClient(t, url), prefix, o, nil)
	b := spike.NewRedisRestrictions(newClient(t, url), prefix, o, nil)
	for _, r := range []*spike.RedisRestrictions{a, b} {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = r.Run(runCtx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	if ok, _, err := b.Restricted(ctx, "alice"); ok || err != nil {
		t.Fatalf("b: Restricted(alice) = %v, %v before any restriction", ok, err)
	}
	time.Sleep(100 * time.Millisecond) // both subscribed
	if err := a.Restrict(ctx, "alice", t0.Add(time.Hour), "test", "sec"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "b sees alice restricted", func() bool {
		ok, _, _ := b.Restricted(ctx, "alice")
		return ok
	})
	if n := b.Len(); n != 1 {
		t.Errorf("b.Len() = %d, want 1", n)
	}
	if err := b.Release(ctx, "alice", "sec"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "a sees alice released", func() bool {
		ok, _, _ := a.Restricted(ctx, "alice")
		return !ok
	})
}

// TestRedisRestrictionsRefresh: without an announcement (a lost message) a replica still
// picks a change up within Refresh.
func TestRedisRestrictionsRefresh(t *testing.T) {
	url, prefix := redistest.URL(t)
	c := newClient(t, url)
	r := spike.NewRedisRestrictions(c, prefix, spike.RestrictionsOptions{Refresh: 100 * time.Millisecond}, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	until := time.Now().Add(time.Hour).UnixMilli()
	if err := c.ZAdd(ctx, prefix+":{restrictions}:until", redis.Z{Score: float64(until), Member: "carol"}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "carol restricted without an announcement", func() bool {
		ok, _, _ := r.Restricted(ctx, "carol")
		return ok
	})
}

// TestRedisRestrictionsStale: with Redis gone, Restricted keeps answering from its copy and
// says the copy is stale once it is older than StaleAfter.
func TestRedisRestrictionsStale(t *testing.T) {
	addr, stop, _ := redistest.StartServer(t)
	r := spike.NewRedisRestrictions(downClient(t, addr), "", spike.RestrictionsOptions{
		Refresh: 50 * time.Millisecond, StaleAfter: 300 * time.Millisecond,
	}, nil)
	if err := r.Restrict(ctx, "dave", time.Now().Add(time.Hour), "test", "sec"); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	stop()
	waitFor(t, 3*time.Second, "a stale answer", func() bool {
		ok, _, err := r.Restricted(ctx, "dave")
		return ok && errors.Is(err, spike.ErrStale)
	})
}

func TestRedisRestrictionsFirstLoadFails(t *testing.T) {
	addr, stop, _ := redistest.StartServer(t)
	stop()
	r := spike.NewRedisRestrictions(downClient(t, addr), "", spike.RestrictionsOptions{}, nil)
	if ok, _, err := r.Restricted(ctx, "alice"); ok || err == nil {
		t.Errorf("Restricted with Redis down and no copy = %v, %v; want false and an error", ok, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ExampleRestrictions() {
	clk := func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) }
	r := spike.NewMemoryRestrictions(spike.RestrictionsOptions{
		Now:   clk,
		Audit: func(kind, user, detail string) { fmt.Println("audit:", kind, user, detail) },
	})
	_ = r.Restrict(context.Background(), "alice", clk().Add(time.Hour), "alert volume", "veil:volume")
	ok, until, _ := r.Restricted(context.Background(), "alice")
	fmt.Println(ok, until.Format(time.Kitchen))
	_ = r.Release(context.Background(), "alice", "sec-lead")
	ok, _, _ = r.Restricted(context.Background(), "alice")
	fmt.Println(ok)
	// Output:
	// audit: restrict alice until=2026-11-28T10:00:00Z reason="alert volume" by="veil:volume"
	// true 10:00AM
	// audit: release alice by="sec-lead"
	// false
}
