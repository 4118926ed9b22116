package spike_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/spike"
)

// roundTrips counts what a go-redis client sends: one per command sent alone, one per
// pipeline.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkObserve measures detection on a loopback Redis, with the default rules and 1000
// users in 10 departments, each event 7 records with its budget use:
//
//   - call: what a request pays, Observe: a send on the queue;
//   - processing: Observe and the processing of every event, flushed every 5 ms (the
//     benchmark waits for the queue to drain), with store round trips per event;
//   - budgets, budgets+detection: limit's BenchmarkReserveSettle work (Reserve 10 against a
//     user and a department budget, Settle to 7) from parallel goroutines, alone and with
//     an Observe per request and the detector running on the same Redis and CPUs: the
//     difference in req/s is the throughput detection costs. redis-us/req is the Redis
//     server's command time per request (INFO commandstats), cpu-us/req this process's CPU
//     time per request: both less sensitive to a busy machine than req/s.
func BenchmarkObserve(b *testing.B) {
	url, prefix := redistest.URL(b)
	const users = 1000
	events := make([]spike.Event, users)
	for i := range events {
		events[i] = spike.Event{
			User: fmt.Sprintf("user%d", i), Department: fmt.Sprintf("dept%d", i%10), Roles: []string{"cs_agent"},
			Route: "livecrm", Resource: "customers", Action: "list", Records: 7, Decision: spike.DecisionAllow,
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", RequestID: "0123456789abcdef",
			Budgets: []spike.BudgetUse{{Name: "user-customers-hourly", Limit: 1 << 40, Remaining: 1 << 39}},
		}
	}
	rules := spike.DefaultRules()
	newDetector := func(b *testing.B, c redis.UniversalClient, queue int, flush time.Duration) (*spike.Detector, func()) {
		d, err := spike.New(spike.Options{Store: spike.NewRedisStore(c, prefix), Rules: func() spike.Rules { return rules }, Queue: queue, Flush: flush})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = d.Run(ctx); close(done) }()
		return d, func() { cancel(); <-done }
	}
	// waitDrained waits until n observed events are processed or dropped.
	waitDrained := func(b *testing.B, d *spike.Detector, n uint64) {
		deadline := time.Now().Add(time.Minute)
		for st := d.Stats(); st.Processed+st.Dropped < n; st = d.Stats() {
			if time.Now().After(deadline) {
				b.Fatalf("detector stuck: %+v, want %d events done", st, n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}

	b.Run("call", func(b *testing.B) {
		// no worker: a queue that is never full, replaced (off the clock) when it fills
		const queue = 1 << 16
		newQueue := func() *spike.Detector {
			d, err := spike.New(spike.Options{Store: nopStore{}, Queue: queue})
			if err != nil {
				b.Fatal(err)
			}
			return d
		}
		d := newQueue()
		n := 0
		for b.Loop() {
			if n == queue {
				b.StopTimer()
				d, n = newQueue(), 0
				b.StartTimer()
			}
			e := events[n%users]
			e.Time = t0
			d.Observe(e)
			n++
		}
		if st := d.Stats(); st.Dropped != 0 {
			b.Fatalf("dropped %d: the benchmark measures sends", st.Dropped)
		}
	})

	b.Run("processing", func(b *testing.B) {
		c := newClient(b, url)
		h := &roundTrips{}
		c.AddHook(h)
		const queue = 1 << 14
		d, stop := newDetector(b, c, queue, 5*time.Millisecond) // drained and flushed every 5 ms
		defer stop()
		d.Observe(events[0]) // connect, load the script
		waitDrained(b, d, 1)
		h.n.Store(0)
		start := time.Now()
		var n uint64
		for b.Loop() {
			for d.Stats().Queued > queue/2 { // keep pace: measure processing, not drops
				time.Sleep(20 * time.Microsecond)
			}
			e := events[n%users]
			e.Time = time.Now()
			d.Observe(e)
			n++
		}
		waitDrained(b, d, n+1)
		el := time.Since(start)
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
		b.ReportMetric(float64(h.n.Load())/float64(n), "roundtrips/event")
		b.ReportMetric(float64(d.Stats().Dropped), "dropped")
	})

	budgets := make([][]limit.Budget, users)
	for i := range budgets {
		budgets[i] = []limit.Budget{
			{Name: "user-customers-hourly", Key: fmt.Sprintf("user:%d", i), Window: time.Hour, Records: 1 << 40},
			{Name: "dept-customers-daily", Key: fmt.Sprintf("dept:%d", i%10), Window: 24 * time.Hour, Records: 1 << 40},
		}
	}
	parallel := func(b *testing.B, detect bool) {
		c := newClient(b, url)
		s := limit.NewRedis(c, limit.RedisOptions{Prefix: prefix})
		var d *spike.Detector
		if detect {
			var stop func()
			d, stop = newDetector(b, newClient(b, url), 0, 0) // the defaults: 10000 events, 2 s
			defer stop()
		}
		op := func(i int) {
			r, st, err := s.Reserve(context.Background(), budgets[i%users], 10)
			if err != nil || st[0].Rejected {
				b.Fatalf("Reserve = %+v, %v", st, err)
			}
			if _, err := s.Settle(context.Background(), r, 7); err != nil {
				b.Fatalf("Settle: %v", err)
			}
			if d != nil {
				e := events[i%users]
				e.Time = time.Now()
				d.Observe(e)
			}
		}
		op(0)
		if d != nil {
			waitDrained(b, d, 1)
		}
		admin := newClient(b, url)
		redis0 := redisUsec(b, admin)
		cpu0 := cpuTime()
		start := time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				op(i)
				i += 7
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		if d != nil {
			waitDrained(b, d, uint64(b.N)+1)
			time.Sleep(2100 * time.Millisecond) // the last flush
			b.ReportMetric(float64(d.Stats().Dropped)/float64(b.N), "dropped/req")
		}
		b.ReportMetric(float64(redisUsec(b, admin)-redis0)/float64(b.N), "redis-us/req")
		b.ReportMetric(float64((cpuTime()-cpu0)/time.Microsecond)/float64(b.N), "cpu-us/req")
	}
	b.Run("budgets", func(b *testing.B) { parallel(b, false) })
	b.Run("budgets+detection", func(b *testing.B) { parallel(b, true) })
}

// redisUsec is the time the Redis server spent executing commands, from INFO commandstats
// (the sum of every command's usec), in microseconds.
func redisUsec(b *testing.B, c redis.UniversalClient) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		_, stats, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSpace(stats), ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopStore answers at once, for measuring the detector without a store.
type nopStore struct{}

func (nopStore) Start(_ context.Context, now time.Time) (time.Time, error) { return now, nil }
func (nopStore) Observe(_ context.Context, ts []spike.Tally, _ spike.Params) ([]spike.State, error) {
	return make([]spike.State, len(ts)), nil
}
func (nopStore) Claim(_ context.Context, cs []spike.Cooldown) ([]bool, error) {
	return make([]bool, len(cs)), nil
}

// BenchmarkRestricted measures the hot-path containment check: a lookup in the local copy
// of 100 restrictions, from parallel goroutines.
func BenchmarkRestricted(b *testing.B) {
	url, prefix := redistest.URL(b)
	r := spike.NewRedisRestrictions(newClient(b, url), prefix, spike.RestrictionsOptions{}, nil)
	for i := range 100 {
		if err := r.Restrict(context.Background(), fmt.Sprintf("user%d", i*10), time.Now().Add(time.Hour), "bench", "bench"); err != nil {
			b.Fatal(err)
		}
	}
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("user%d", i)
	}
	if _, _, err := r.Restricted(context.Background(), names[0]); err != nil { // load the copy
		b.Fatal(err)
	}
	var hits atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if ok, _, _ := r.Restricted(context.Background(), names[i%len(names)]); ok {
				hits.Add(1)
			}
			i++
		}
	})
	b.StopTimer()
	if b.N >= 1000 && hits.Load() == 0 {
		b.Fatal("no lookup found a restricted user")
	}
}
