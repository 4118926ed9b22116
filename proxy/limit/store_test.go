package limit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/limit"
)

// t0 is the fake clocks' start: a whole hour, so 1 s buckets start on it.
var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// harness makes a fresh, empty store for one test and a way to let time pass.
type harness struct {
	name string
	// fake harnesses run on a clock that starts at t0 and moves only when told, so durations
	// can be compared exactly.
	fake bool
	new  func(t *testing.T) (limit.Store, func(time.Duration))
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var memoryHarness = harness{name: "memory", fake: true, new: func(t *testing.T) (limit.Store, func(time.Duration)) {
	c := &fakeClock{now: t0}
	return limit.NewMemory(c.Now), c.Add
}}

// miniredisHarness runs the Redis store's scripts on miniredis, whose TIME follows a fake
// clock: the scripts' arithmetic can then be checked exactly against the memory store's.
var miniredisHarness = harness{name: "miniredis", fake: true, new: func(t *testing.T) (limit.Store, func(time.Duration)) {
	m := miniredis.RunT(t)
	now := t0
	m.SetTime(now)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return limit.NewRedis(c, limit.RedisOptions{Timeout: time.Second}), func(d time.Duration) {
		now = now.Add(d)
		m.SetTime(now)
		m.FastForward(d)
	}
}}

// redisHarness runs on a real Redis (redistest.URL) in real time.
var redisHarness = harness{name: "redis", new: func(t *testing.T) (limit.Store, func(time.Duration)) {
	url, prefix := redistest.URL(t)
	return limit.NewRedis(newClient(t, url), limit.RedisOptions{Prefix: prefix, Timeout: time.Second}), time.Sleep
}}

func newClient(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	o, err := limit.ParseRedisURL(url)
	if err != nil {
		t.Fatalf("ParseRedisURL: %v", err)
	}
	c := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var ctx = context.Background()

func budget(name, key string, window time.Duration, records, requests int64) limit.Budget {
	return limit.Budget{Name: name, Key: key, Window: window, Records: records, Requests: requests}
}

// reserve reserves n and checks which budgets rejected and what remains.
func reserve(t *testing.T, s limit.Store, bs []limit.Budget, n int64, wantRejected []bool, wantRemaining []int64) (limit.Reservation, []limit.Status) {
	t.Helper()
	r, st, err := s.Reserve(ctx, bs, n)
	if err != nil {
		t.Fatalf("Reserve(%d) error: %v", n, err)
	}
	checkStatuses(t, "Reserve", n, bs, st, wantRejected, wantRemaining)
	return r, st
}

func settle(t *testing.T, s limit.Store, r limit.Reservation, actual int64, bs []limit.Budget, wantRemaining []int64) []limit.Status {
	t.Helper()
	st, err := s.Settle(ctx, r, actual)
	if err != nil {
		t.Fatalf("Settle(%d) error: %v", actual, err)
	}
	checkStatuses(t, "Settle", actual, bs, st, make([]bool, len(bs)), wantRemaining)
	return st
}

func checkStatuses(t *testing.T, op string, n int64, bs []limit.Budget, st []limit.Status, wantRejected []bool, wantRemaining []int64) {
	t.Helper()
	if len(st) != len(bs) {
		t.Fatalf("%s(%d) = %d statuses, want %d", op, n, len(st), len(bs))
	}
	for i, s := range st {
		if s.Name != bs[i].Name || s.Limit != bs[i].Records || s.Window != bs[i].Window {
			t.Errorf("%s(%d) status %d = %+v, want name %q, limit %d, window %v", op, n, i, s, bs[i].Name, bs[i].Records, bs[i].Window)
		}
		if s.Rejected != wantRejected[i] || s.Remaining != wantRemaining[i] {
			t.Errorf("%s(%d) %s = rejected %v, remaining %d; want rejected %v, remaining %d",
				op, n, s.Name, s.Rejected, s.Remaining, wantRejected[i], wantRemaining[i])
		}
		if s.Remaining < 0 || s.Reset < 0 || s.RetryAfter < 0 {
			t.Errorf("%s(%d) %s = %+v, has a negative field", op, n, s.Name, s)
		}
		if !s.Rejected && s.RetryAfter != 0 {
			t.Errorf("%s(%d) %s not rejected, RetryAfter = %v, want 0", op, n, s.Name, s.RetryAfter)
		}
	}
}

// between checks lo <= d <= hi.
func between(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want within [%v, %v]", what, d, lo, hi)
	}
}

// semanticTests hold for every store, in real or fake time. Durations are checked as ranges
// that hold wherever in a bucket the test starts.
var semanticTests = []struct {
	name string
	run  func(t *testing.T, s limit.Store, advance func(time.Duration))
}{
	{"exhausted at the budget's record count", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}
		f, r := []bool{false}, []bool{true}
		reserve(t, s, bs, 30, f, []int64{70})
		reserve(t, s, bs, 30, f, []int64{40})
		reserve(t, s, bs, 30, f, []int64{10})
		_, st := reserve(t, s, bs, 30, r, []int64{10})
		between(t, "RetryAfter of a full budget", st[0].RetryAfter, time.Hour-time.Minute, time.Hour+time.Minute)
		between(t, "Reset", st[0].Reset, time.Hour-time.Minute, time.Hour+time.Minute)
		reserve(t, s, bs, 10, f, []int64{0})
		reserve(t, s, bs, 1, r, []int64{0})
		reserve(t, s, bs, 0, r, []int64{0}) // a spent budget rejects even an empty page
	}},
	{"a zero budget rejects everything", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{budget("blocked", "user:mallory", time.Hour, 0, 0)}
		_, st := reserve(t, s, bs, 0, []bool{true}, []int64{0})
		between(t, "RetryAfter of a reservation that never fits", st[0].RetryAfter, time.Hour-time.Minute, time.Hour+time.Minute)
		if st[0].Reset != 0 {
			t.Errorf("Reset of an empty window = %v, want 0", st[0].Reset)
		}
	}},
	{"a page larger than the budget never fits", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{budget("small", "user:bob", time.Hour, 100, 0)}
		_, st := reserve(t, s, bs, 101, []bool{true}, []int64{100})
		between(t, "RetryAfter", st[0].RetryAfter, time.Hour-time.Minute, time.Hour+time.Minute)
		reserve(t, s, bs, 100, []bool{false}, []int64{0})
	}},
	{"requests budget", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{budget("calls", "user:carol", time.Hour, 1000, 3)}
		for _, want := range []int64{999, 998, 997} {
			reserve(t, s, bs, 1, []bool{false}, []int64{want})
		}
		_, st := reserve(t, s, bs, 1, []bool{true}, []int64{997})
		between(t, "RetryAfter of a spent request budget", st[0].RetryAfter, time.Hour-time.Minute, time.Hour+time.Minute)
	}},
	{"settle refunds and charges", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{budget("hourly", "user:dave", time.Hour, 100, 0)}
		r, _ := reserve(t, s, bs, 50, []bool{false}, []int64{50})
		if r.Records() != 50 {
			t.Errorf("Reservation.Records() = %d, want 50", r.Records())
		}
		settle(t, s, r, 20, bs, []int64{80})
		r, _ = reserve(t, s, bs, 30, []bool{false}, []int64{50})
		settle(t, s, r, 45, bs, []int64{35})
		r, _ = reserve(t, s, bs, 35, []bool{false}, []int64{0})
		st := settle(t, s, r, 60, bs, []int64{0}) // 25 over: never negative
		between(t, "Reset after a charge", st[0].Reset, time.Hour-time.Minute, time.Hour+time.Minute)
		reserve(t, s, bs, 0, []bool{true}, []int64{0})
	}},
	{"a rejection takes nothing from any budget", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		bs := []limit.Budget{
			budget("user-hourly", "user:erin", time.Hour, 100, 0),
			budget("dept-hourly", "dept:cs", time.Hour, 50, 0),
		}
		reserve(t, s, bs, 40, []bool{false, false}, []int64{60, 10})
		reserve(t, s, bs, 20, []bool{false, true}, []int64{60, 10})
		reserve(t, s, bs[:1], 60, []bool{false}, []int64{0}) // the user budget was not charged
	}},
	{"budgets with the same name and different keys are separate", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		a := []limit.Budget{budget("hourly", "user:{frank}", time.Hour, 10, 0)}
		b := []limit.Budget{budget("hourly", "user:", time.Hour, 10, 0)}
		c := []limit.Budget{budget("hourly", "user:{frank}", 2*time.Hour, 10, 0)}
		reserve(t, s, a, 10, []bool{false}, []int64{0})
		reserve(t, s, b, 3, []bool{false}, []int64{7})
		reserve(t, s, c, 4, []bool{false}, []int64{6})
		reserve(t, s, a, 1, []bool{true}, []int64{0})
	}},
	{"nothing to reserve or settle", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		r, st, err := s.Reserve(ctx, nil, 10)
		if err != nil || st != nil {
			t.Errorf("Reserve(no budgets) = %v, %v; want nil, nil", st, err)
		}
		if st, err := s.Settle(ctx, r, 5); err != nil || st != nil {
			t.Errorf("Settle(empty reservation) = %v, %v; want nil, nil", st, err)
		}
	}},
	{"invalid budgets", func(t *testing.T, s limit.Store, _ func(time.Duration)) {
		for _, bs := range [][]limit.Budget{
			{budget("", "user:a", time.Hour, 1, 0)},
			{budget("n", "", time.Hour, 1, 0)},
			{budget("n", "user:a", 0, 1, 0)},
			{budget("n", "user:a", time.Hour, -1, 0)},
			{budget("n", "user:a", time.Hour, 1, -1)},
			{budget("n", "user:a", time.Hour, 1, 0), budget("n", "user:a", time.Hour, 5, 0)},
		} {
			_, _, err := s.Reserve(ctx, bs, 1)
			var se *limit.StoreError
			if !errors.Is(err, limit.ErrInvalidBudget) || errors.As(err, &se) {
				t.Errorf("Reserve(%+v) error = %v, want ErrInvalidBudget and no StoreError", bs, err)
			}
		}
		bs := []limit.Budget{budget("n", "user:a", time.Hour, 1, 0)}
		if _, _, err := s.Reserve(ctx, bs, -1); !errors.Is(err, limit.ErrInvalidBudget) {
			t.Errorf("Reserve(-1) error = %v, want ErrInvalidBudget", err)
		}
		r, _, _ := s.Reserve(ctx, bs, 1)
		if _, err := s.Settle(ctx, r, -1); !errors.Is(err, limit.ErrInvalidBudget) {
			t.Errorf("Settle(-1) error = %v, want ErrInvalidBudget", err)
		}
	}},
	{"window rolls over", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		// 2 s window, 60 buckets of 34 ms: the window counts 61 buckets, 2.074 s.
		bs := []limit.Budget{budget("short", "user:gina", 2*time.Second, 100, 0)}
		reserve(t, s, bs, 60, []bool{false}, []int64{40})
		advance(time.Second)
		reserve(t, s, bs, 40, []bool{false}, []int64{0})
		_, st := reserve(t, s, bs, 60, []bool{true}, []int64{0})
		// The first 60 leave 2.04-2.074 s after they were taken, so 1.04-1.074 s from now.
		between(t, "RetryAfter", st[0].RetryAfter, 900*time.Millisecond, 1074*time.Millisecond)
		advance(st[0].RetryAfter + 10*time.Millisecond)
		reserve(t, s, bs, 60, []bool{false}, []int64{0})
		_, st = reserve(t, s, bs, 1, []bool{true}, []int64{0})
		advance(st[0].Reset + 10*time.Millisecond)
		reserve(t, s, bs, 100, []bool{false}, []int64{0})
	}},
	{"no double budget at a window edge", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("short", "user:hank", 2*time.Second, 100, 0)}
		reserve(t, s, bs, 100, []bool{false}, []int64{0})
		for range 4 { // across the whole window, nothing comes back
			advance(450 * time.Millisecond)
			reserve(t, s, bs, 1, []bool{true}, []int64{0})
		}
	}},
}

func TestSemantics(t *testing.T) {
	for _, h := range []harness{memoryHarness, miniredisHarness, redisHarness} {
		t.Run(h.name, func(t *testing.T) {
			for _, tc := range semanticTests {
				t.Run(tc.name, func(t *testing.T) {
					s, advance := h.new(t)
					tc.run(t, s, advance)
				})
			}
		})
	}
}

// exactTests check durations to the millisecond on the fake-clock stores: the memory store
// and the Redis scripts on miniredis must agree exactly. The budget's window is 60 s in
// 60 buckets of 1 s; the window counts the current bucket and the 60 before it.
var exactTests = []struct {
	name string
	run  func(t *testing.T, s limit.Store, advance func(time.Duration))
}{
	{"records leave 61 buckets after the one they were taken in", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:a", time.Minute, 100, 0)}
		_, st := reserve(t, s, bs, 100, []bool{false}, []int64{0})
		want := limit.Status{Name: "m", Limit: 100, Window: time.Minute, Reset: 61 * time.Second}
		if diff := cmp.Diff(want, st[0]); diff != "" {
			t.Errorf("Reserve(100) status (-want +got):\n%s", diff)
		}
		advance(30 * time.Second)
		_, st = reserve(t, s, bs, 1, []bool{true}, []int64{0})
		want = limit.Status{Name: "m", Limit: 100, Window: time.Minute, Reset: 31 * time.Second, RetryAfter: 31 * time.Second, Rejected: true}
		if diff := cmp.Diff(want, st[0]); diff != "" {
			t.Errorf("Reserve(1) at +30s status (-want +got):\n%s", diff)
		}
		advance(31*time.Second - time.Millisecond)
		reserve(t, s, bs, 1, []bool{true}, []int64{0})
		advance(time.Millisecond)
		reserve(t, s, bs, 100, []bool{false}, []int64{0})
	}},
	{"a take at a fixed window's end still counts after it", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:b", time.Minute, 100, 0)}
		advance(59500 * time.Millisecond)
		reserve(t, s, bs, 100, []bool{false}, []int64{0})
		advance(time.Second) // a fixed 60 s window would have reset here
		_, st := reserve(t, s, bs, 1, []bool{true}, []int64{0})
		if want := 59500 * time.Millisecond; st[0].RetryAfter != want {
			t.Errorf("RetryAfter = %v, want %v", st[0].RetryAfter, want)
		}
	}},
	{"older records free first", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:c", time.Minute, 100, 0)}
		reserve(t, s, bs, 60, []bool{false}, []int64{40})
		advance(30 * time.Second)
		reserve(t, s, bs, 40, []bool{false}, []int64{0})
		_, st := reserve(t, s, bs, 61, []bool{true}, []int64{0})
		if want := 61 * time.Second; st[0].RetryAfter != want { // needs both buckets gone
			t.Errorf("RetryAfter(61) = %v, want %v", st[0].RetryAfter, want)
		}
		_, st = reserve(t, s, bs, 60, []bool{true}, []int64{0})
		if want := 31 * time.Second; st[0].RetryAfter != want {
			t.Errorf("RetryAfter(60) = %v, want %v", st[0].RetryAfter, want)
		}
		advance(31 * time.Second)
		reserve(t, s, bs, 60, []bool{false}, []int64{0})
		_, st = reserve(t, s, bs, 1, []bool{true}, []int64{0})
		if want := 30 * time.Second; st[0].RetryAfter != want || st[0].Reset != 61*time.Second {
			t.Errorf("RetryAfter, Reset = %v, %v; want %v, 61s", st[0].RetryAfter, st[0].Reset, want)
		}
	}},
	{"request budget frees by bucket", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:d", time.Minute, 100, 2)}
		reserve(t, s, bs, 1, []bool{false}, []int64{99})
		advance(10 * time.Second)
		reserve(t, s, bs, 1, []bool{false}, []int64{98})
		advance(10 * time.Second)
		_, st := reserve(t, s, bs, 1, []bool{true}, []int64{98})
		if want := 41 * time.Second; st[0].RetryAfter != want {
			t.Errorf("RetryAfter = %v, want %v", st[0].RetryAfter, want)
		}
	}},
	{"the longest wait of two rejections wins", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:e", time.Minute, 10, 1), budget("h", "user:e", time.Hour, 10, 0)}
		reserve(t, s, bs, 10, []bool{false, false}, []int64{0, 0})
		_, st := reserve(t, s, bs, 1, []bool{true, true}, []int64{0, 0})
		r, ok := limit.Rejection(st)
		if !ok || r.Name != "h" || r.RetryAfter != 3660*time.Second {
			t.Errorf("Rejection = %+v, %v; want h with RetryAfter 3660s", r, ok)
		}
		if st[0].RetryAfter != 61*time.Second {
			t.Errorf("m RetryAfter = %v, want 61s", st[0].RetryAfter)
		}
	}},
	{"refund to a bucket that left the window gives nothing back", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:f", time.Minute, 100, 0)}
		old, _ := reserve(t, s, bs, 50, []bool{false}, []int64{50})
		advance(61 * time.Second)
		reserve(t, s, bs, 30, []bool{false}, []int64{70})
		settle(t, s, old, 0, bs, []int64{70})
	}},
	{"extra records are charged when settled", func(t *testing.T, s limit.Store, advance func(time.Duration)) {
		bs := []limit.Budget{budget("m", "user:g", time.Minute, 100, 0)}
		r, _ := reserve(t, s, bs, 10, []bool{false}, []int64{90})
		advance(30 * time.Second)
		st := settle(t, s, r, 30, bs, []int64{70})
		if st[0].Reset != 61*time.Second { // the charge sits in the current bucket
			t.Errorf("Reset after the charge = %v, want 61s", st[0].Reset)
		}
		advance(31 * time.Second)
		reserve(t, s, bs, 0, []bool{false}, []int64{80})
	}},
}

func TestExactTiming(t *testing.T) {
	for _, h := range []harness{memoryHarness, miniredisHarness} {
		t.Run(h.name, func(t *testing.T) {
			for _, tc := range exactTests {
				t.Run(tc.name, func(t *testing.T) {
					s, advance := h.new(t)
					tc.run(t, s, advance)
				})
			}
		})
	}
}

// TestConcurrentPages has 50 goroutines (two Veil instances' worth: two stores on two
// clients for Redis) reserve pages of 10 against a budget of 1000 until rejected: they are
// granted the budget exactly, never a page more.
func TestConcurrentPages(t *testing.T) {
	const page, records, workers = 10, 1000, 50
	stores := map[string]func(t *testing.T) []limit.Store{
		"memory": func(t *testing.T) []limit.Store { return []limit.Store{limit.NewMemory(nil)} },
		"redis": func(t *testing.T) []limit.Store {
			url, prefix := redistest.URL(t)
			o := limit.RedisOptions{Prefix: prefix, Timeout: 5 * time.Second}
			return []limit.Store{limit.NewRedis(newClient(t, url), o), limit.NewRedis(newClient(t, url), o)}
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			ss := mk(t)
			bs := []limit.Budget{budget("hourly", "user:ivan", time.Hour, records, 0)}
			var granted, charged atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				s := ss[w%len(ss)]
				wg.Go(func() {
					for {
						r, st, err := s.Reserve(ctx, bs, page)
						if err != nil {
							t.Errorf("Reserve: %v", err)
							return
						}
						if st[0].Rejected {
							return
						}
						granted.Add(page)
						if _, err := s.Settle(ctx, r, page); err != nil {
							t.Errorf("Settle: %v", err)
							return
						}
						charged.Add(page)
					}
				})
			}
			wg.Wait()
			if g := granted.Load(); g > records+page || g != records {
				t.Errorf("%d goroutines granted %d records of a %d budget, want exactly %d (never more than %d)",
					workers, g, records, records, records+page)
			}
			_, st, err := ss[0].Reserve(ctx, bs, 0)
			if err != nil || !st[0].Rejected || st[0].Remaining != 0 {
				t.Errorf("Reserve after the run = %+v, %v; want rejected with nothing remaining", st, err)
			}
		})
	}
}
