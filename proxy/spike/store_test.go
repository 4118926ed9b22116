package spike_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/spike"
)

var ctx = context.Background()

// t0 is a Monday 09:00 in Beijing (01:00 UTC): working hours under the default rules.
var t0 = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

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

// harness makes an empty store for one test; wait lets TTLs run out (the memory store's
// clock, or real time for Redis, whose TTLs are the server's).
type harness struct {
	name string
	new  func(t *testing.T) (s spike.Store, wait func(time.Duration))
}

var harnesses = []harness{
	{"memory", func(t *testing.T) (spike.Store, func(time.Duration)) {
		c := newClock()
		return spike.NewMemoryStore(c.Now), c.Add
	}},
	{"redis", func(t *testing.T) (spike.Store, func(time.Duration)) {
		url, prefix := redistest.URL(t)
		return spike.NewRedisStore(newClient(t, url), prefix), time.Sleep
	}},
}

var params = spike.Params{Alpha: 0.2, K: 2, MinSamples: 3, DenyWindow: 5 * time.Minute}

// tally builds a tally at t.
func tally(subject string, t time.Time, records int64) spike.Tally {
	return spike.Tally{Subject: subject, Time: t, Minute: t.UnixMilli() / 60000, Slot: int(t.Weekday())*24 + t.Hour(), Records: records, Floor: 10}
}

func observe(t *testing.T, s spike.Store, ts ...spike.Tally) []spike.State {
	t.Helper()
	st, err := s.Observe(ctx, ts, params)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if len(st) != len(ts) {
		t.Fatalf("Observe returned %d states for %d tallies", len(st), len(ts))
	}
	return st
}

func TestStoreMinutesAndSlidingWindow(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
			st := observe(t, s, tally("user:alice", sec(12), 100))[0]
			if st.Minute != 100 || !st.MinuteStart.Equal(t0) || st.Sliding != 100 || !st.SlidingSince.Equal(sec(10)) || !st.FirstSeen.Equal(t0) || st.Samples != 0 {
				t.Errorf("first records: %+v, want 100 this minute (since %v) and in the last 60 s (since %v), no baseline", st, t0, sec(10))
			}
			st = observe(t, s, tally("user:alice", sec(40), 20))[0]
			if st.Minute != 120 || st.Sliding != 120 {
				t.Errorf("same minute: Minute %d, Sliding %d; want 120, 120", st.Minute, st.Sliding)
			}
			// at 1:15 the window (0:15, 1:15] holds half of the 0:10 bucket, the 0:40 one and
			// the new records; the minute is new
			st = observe(t, s, tally("user:alice", sec(75), 50))[0]
			if st.Minute != 50 || !st.MinuteStart.Equal(sec(60)) || st.Sliding != 50+20+50 || !st.SlidingSince.Equal(sec(10)) {
				t.Errorf("at 1:15: Minute %d since %v, Sliding %d since %v; want 50 since %v, 120 since %v",
					st.Minute, st.MinuteStart, st.Sliding, st.SlidingSince, sec(60), sec(10))
			}
			// the finished minute (120) is in the baseline of its slot, this minute's slot too
			if st.Samples != 1 || st.Mean != 120 || st.Variance != 0 {
				t.Errorf("baseline after one finished minute: %d samples, mean %v, variance %v; want 1, 120, 0", st.Samples, st.Mean, st.Variance)
			}
			// two minutes later: only the new records are within 60 s
			st = observe(t, s, tally("user:alice", sec(190), 5))[0]
			if st.Sliding != 5 || !st.SlidingSince.Equal(sec(190)) || !st.MinuteStart.Equal(sec(180)) {
				t.Errorf("after a gap: Sliding %d since %v, minute since %v; want 5 since %v, minute since %v", st.Sliding, st.SlidingSince, st.MinuteStart, sec(190), sec(180))
			}
			// a late tally (a replica's clock behind) counts in the open minute
			st = observe(t, s, tally("user:alice", sec(100), 7))[0]
			if st.Minute != 12 || !st.MinuteStart.Equal(sec(180)) {
				t.Errorf("late tally: Minute %d since %v, want 12 since %v", st.Minute, st.MinuteStart, sec(180))
			}
			// another subject is separate
			if st := observe(t, s, tally("dept:cs", sec(190), 7))[0]; st.Sliding != 7 || st.Samples != 0 {
				t.Errorf("dept:cs = %+v, want its own counters", st)
			}
			// denials alone do not open a minute
			d := tally("user:alice", sec(300), 0)
			d.Denials = 1
			if st := observe(t, s, d)[0]; st.Minute != 0 || st.Sliding != 0 {
				t.Errorf("a denial in a new minute: Minute %d, Sliding %d; want 0, 0", st.Minute, st.Sliding)
			}
		})
	}
}

func TestStoreBaseline(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			// Mondays 09:xx, one active minute per week (same slot): 10, 20, 30, then a 100
			var st spike.State
			for w, n := range []int64{10, 20, 30, 100, 1} {
				st = observe(t, s, tally("user:bob", t0.Add(time.Duration(w)*7*24*time.Hour), n))[0]
			}
			// warm-up: the first three average plainly (mean 20, population variance 200/3);
			// the fourth (100) is above the bound max(10, 20+2·8.16) = 36.3 once 3 samples are
			// in, so it counts as 36.3, with weight max(alpha 0.2, 1/4).
			mean, variance := 20.0, 200.0/3
			bound := max(10, mean+2*math.Sqrt(variance))
			d := bound - mean
			inc := 0.25 * d
			mean, variance = mean+inc, 0.75*(variance+d*inc)
			if st.Samples != 4 || math.Abs(st.Mean-mean) > 1e-9 || math.Abs(st.Variance-variance) > 1e-9 {
				t.Errorf("baseline = %d samples, mean %v, variance %v; want 4, %v, %v", st.Samples, st.Mean, st.Variance, mean, variance)
			}
			if math.Abs(st.StdDev()-math.Sqrt(variance)) > 1e-9 {
				t.Errorf("StdDev = %v, want %v", st.StdDev(), math.Sqrt(variance))
			}
			// another hour of the week has no baseline
			if st := observe(t, s, tally("user:bob", t0.Add(5*7*24*time.Hour+2*time.Hour), 1))[0]; st.Samples != 0 {
				t.Errorf("slot two hours later has %d samples, want 0", st.Samples)
			}
		})
	}
}

func TestStoreExportMarker(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			x := tally("user:carol", t0, 10)
			x.Export, x.ExportRecords = true, 10
			if st := observe(t, s, x)[0]; !st.FirstExport {
				t.Errorf("first export: FirstExport false")
			}
			if st := observe(t, s, x)[0]; st.FirstExport {
				t.Errorf("second export: FirstExport true")
			}
			y := x
			y.Subject = "user:dave"
			if st := observe(t, s, tally("user:dave", t0, 10), y); !st[1].FirstExport || st[0].FirstExport {
				t.Errorf("dave: a list then an export = %v, %v; want false, true", st[0].FirstExport, st[1].FirstExport)
			}
		})
	}
}

func TestStoreDenials(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			deny := func(at time.Duration, n int64) spike.State {
				d := tally("user:eve", t0.Add(at), 0)
				d.Denials = n
				return observe(t, s, d)[0]
			}
			deny(0, 3)
			if st := deny(4*time.Minute, 2); st.Denials != 5 || !st.DenialsSince.Equal(t0) {
				t.Errorf("within the 5 min window: %d denials since %v, want 5 since %v", st.Denials, st.DenialsSince, t0)
			}
			if st := deny(6*time.Minute, 1); st.Denials != 3 || !st.DenialsSince.Equal(t0.Add(4*time.Minute)) {
				t.Errorf("minute 0 left the window: %d denials since %v, want 3 since %v", st.Denials, st.DenialsSince, t0.Add(4*time.Minute))
			}
			if st := observe(t, s, tally("user:eve", t0.Add(6*time.Minute), 5))[0]; st.Denials != 0 {
				t.Errorf("a tally without denials reports %d denials, want 0 (not read)", st.Denials)
			}
		})
	}
}

func TestStoreRefs(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			a := tally("user:fay", t0, 1)
			a.Refs = []spike.Ref{{TraceID: "t2", RequestID: "r2"}, {TraceID: "", RequestID: "r1"}}
			b := tally("user:fay", t0.Add(time.Second), 1)
			b.Refs = []spike.Ref{{"t6", "r6"}, {"t5", "r5"}, {"t4 x\ny", "r4"}, {"t3", ""}}
			observe(t, s, a)
			st := observe(t, s, b)[0]
			want := []spike.Ref{{"t6", "r6"}, {"t5", "r5"}, {"t4xy", "r4"}, {"t3", ""}, {"t2", "r2"}}
			if diff := cmp.Diff(want, st.Refs); diff != "" {
				t.Errorf("Refs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreClaim(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, wait := h.new(t)
			cs := []spike.Cooldown{
				{Subject: "user:alice", Name: "volume", TTL: 300 * time.Millisecond},
				{Subject: "user:alice", Name: "budget:{x}", TTL: time.Hour},
				{Subject: "user:alice", Name: "volume", TTL: 300 * time.Millisecond}, // the same, in one batch
			}
			got, err := s.Claim(ctx, cs)
			if err != nil || !cmp.Equal(got, []bool{true, true, false}) {
				t.Fatalf("Claim = %v, %v; want [true true false]", got, err)
			}
			if got, _ := s.Claim(ctx, cs[:2]); !cmp.Equal(got, []bool{false, false}) {
				t.Errorf("Claim again = %v, want [false false]", got)
			}
			wait(400 * time.Millisecond)
			if got, _ := s.Claim(ctx, cs[:2]); !cmp.Equal(got, []bool{true, false}) {
				t.Errorf("Claim after the short cooldown = %v, want [true false]", got)
			}
		})
	}
}

func TestStoreStart(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			s, _ := h.new(t)
			first, err := s.Start(ctx, t0)
			if err != nil || !first.Equal(t0) {
				t.Fatalf("Start = %v, %v; want %v", first, err, t0)
			}
			if again, err := s.Start(ctx, t0.Add(time.Hour)); err != nil || !again.Equal(t0) {
				t.Errorf("Start later = %v, %v; want the first %v", again, err, t0)
			}
		})
	}
}

// TestStoresAgree runs one random sequence of tallies through both stores: observe.lua and
// memory.go must agree exactly, baselines included.
func TestStoresAgree(t *testing.T) {
	mem := spike.NewMemoryStore(newClock().Now)
	url, prefix := redistest.URL(t)
	rs := spike.NewRedisStore(newClient(t, url), prefix)
	rnd := rand.New(rand.NewPCG(1, 2))
	subjects := []string{"user:a", "user:b", "dept:x"}
	at := t0
	for i := range 400 {
		at = at.Add(time.Duration(rnd.IntN(100)) * time.Second)
		var batch []spike.Tally
		for range 1 + rnd.IntN(3) {
			tl := tally(subjects[rnd.IntN(len(subjects))], at, int64(rnd.IntN(4)*rnd.IntN(40)))
			tl.Denials = int64(rnd.IntN(3) / 2)
			tl.Export = rnd.IntN(5) == 0
			tl.Floor = float64(rnd.IntN(30))
			if rnd.IntN(2) == 0 {
				tl.Refs = []spike.Ref{{TraceID: "t", RequestID: string(rune('a' + i%26))}}
			}
			batch = append(batch, tl)
		}
		want, err := mem.Observe(ctx, batch, params)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rs.Observe(ctx, batch, params)
		if err != nil {
			t.Fatalf("step %d: redis Observe: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d (%v): memory and redis disagree (-memory +redis):\n%s", i, batch, diff)
		}
	}
}

func TestRedisStoreKeysAndTTLs(t *testing.T) {
	url, prefix := redistest.URL(t)
	c := newClient(t, url)
	s := spike.NewRedisStore(c, prefix+"{x}")
	x := tally("user:a{b}", t0, 5)
	x.Export, x.Denials = true, 1
	observe(t, s, x)
	base := prefix + "x:{user:a%7Bb%7D}:spike"
	for key, ttl := range map[string]time.Duration{base: 30 * 24 * time.Hour, base + ":export": 400 * 24 * time.Hour, base + ":deny": 6 * time.Minute} {
		got, err := c.PTTL(ctx, key).Result()
		if err != nil || got <= ttl-time.Minute || got > ttl {
			t.Errorf("PTTL %s = %v, %v; want about %v", key, got, err, ttl)
		}
	}
}

func TestRedisStoreDown(t *testing.T) {
	addr, stop, _ := redistest.StartServer(t)
	s := spike.NewRedisStore(downClient(t, addr), "")
	stop()
	if _, err := s.Observe(ctx, []spike.Tally{tally("user:a", t0, 1)}, params); err == nil {
		t.Error("Observe with Redis down succeeded")
	}
	if _, err := s.Claim(ctx, []spike.Cooldown{{Subject: "user:a", Name: "volume", TTL: time.Minute}}); err == nil {
		t.Error("Claim with Redis down succeeded")
	}
	if _, err := s.Start(ctx, t0); err == nil {
		t.Error("Start with Redis down succeeded")
	}
}

// downClient is a client that gives up at once on a Redis the test stopped.
func downClient(t testing.TB, addr string) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestMemoryStoreForgets: the memory store drops what Redis would let expire.
func TestMemoryStoreForgets(t *testing.T) {
	clk := newClock()
	s := spike.NewMemoryStore(clk.Now)
	x := tally("user:a", t0, 5)
	x.Export = true
	observe(t, s, x, tally("user:b", t0, 5))
	clk.Add(31 * 24 * time.Hour)
	later := t0.Add(31 * 24 * time.Hour)
	y := tally("user:a", later, 5)
	y.Export = true
	st := observe(t, s, y)[0]
	if st.FirstExport || !st.FirstSeen.Equal(later) || s.Len() != 1 {
		t.Errorf("after 31 days: FirstExport %v, FirstSeen %v, %d subjects; want the export remembered, the counters new, user:b gone",
			st.FirstExport, st.FirstSeen, s.Len())
	}
	clk.Add(401 * 24 * time.Hour)
	y.Time, y.Minute = clk.Now(), clk.Now().UnixMilli()/60000
	if st := observe(t, s, y)[0]; !st.FirstExport {
		t.Errorf("after 400 days without an export: FirstExport false, want true")
	}
}

// TestRedisCluster runs the store and the restrictions on a three-node Redis Cluster:
// subjects in different slots in one batch, cooldowns, and a restriction announced across
// replicas.
func TestRedisCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	newCluster := func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	s := spike.NewRedisStore(newCluster(), "veil")
	var batch []spike.Tally
	for i := range 20 {
		batch = append(batch, tally(fmt.Sprintf("user:u%d", i), t0, int64(i+1)))
	}
	for k := int64(1); k <= 2; k++ {
		st := observe(t, s, batch...)
		for i := range st {
			if want := k * int64(i+1); st[i].Sliding != want {
				t.Fatalf("batch %d, user u%d: Sliding %d, want %d", k, i, st[i].Sliding, want)
			}
		}
	}
	got, err := s.Claim(ctx, []spike.Cooldown{{Subject: "user:u1", Name: "volume", TTL: time.Minute}, {Subject: "user:u2", Name: "volume", TTL: time.Minute}})
	if err != nil || !cmp.Equal(got, []bool{true, true}) {
		t.Errorf("Claim on a cluster = %v, %v", got, err)
	}
	if _, err := s.Start(ctx, t0); err != nil {
		t.Errorf("Start on a cluster: %v", err)
	}

	a := spike.NewRedisRestrictions(newCluster(), "veil", spike.RestrictionsOptions{Refresh: time.Hour}, nil)
	b := spike.NewRedisRestrictions(newCluster(), "veil", spike.RestrictionsOptions{Refresh: time.Hour}, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = b.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 3*time.Second, "b's first load", func() bool { _, _, err := b.Restricted(ctx, "x"); return err == nil })
	time.Sleep(100 * time.Millisecond) // subscribed
	if err := a.Restrict(ctx, "alice", time.Now().Add(time.Hour), "test", "sec"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "b sees the restriction through the cluster's pub/sub", func() bool {
		ok, _, _ := b.Restricted(ctx, "alice")
		return ok
	})
}
