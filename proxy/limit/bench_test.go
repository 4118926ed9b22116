package limit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/limit"
)

// BenchmarkReserveSettle measures one request's limit work on a loopback Redis: Reserve a
// page of 10 against a user and a department budget, then Settle to 7 records. It reports
// requests per second and Redis round trips per request (counted by a go-redis hook).
func BenchmarkReserveSettle(b *testing.B) {
	url, prefix := redistest.URL(b)
	c := newClient(b, url)
	h := &roundTrips{}
	c.AddHook(h)
	s := limit.NewRedis(c, limit.RedisOptions{Prefix: prefix})
	const users = 1000
	budgets := make([][]limit.Budget, users)
	for i := range budgets {
		budgets[i] = []limit.Budget{
			budget("user-customers-hourly", fmt.Sprintf("user:%d", i), time.Hour, 1<<40, 0),
			budget("dept-customers-daily", fmt.Sprintf("dept:%d", i%10), 24*time.Hour, 1<<40, 0),
		}
	}
	op := func(i int) {
		r, st, err := s.Reserve(ctx, budgets[i%users], 10)
		if err != nil || st[0].Rejected || st[1].Rejected {
			b.Fatalf("Reserve = %+v, %v", st, err)
		}
		if _, err := s.Settle(ctx, r, 7); err != nil {
			b.Fatalf("Settle: %v", err)
		}
	}
	op(0) // load the scripts, open a connection
	b.Run("serial", func(b *testing.B) {
		h.n.Store(0)
		i := 0
		for b.Loop() {
			op(i)
			i++
		}
		b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/req")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("parallel", func(b *testing.B) {
		h.n.Store(0)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				op(i)
				i += 7
			}
		})
		b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/req")
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
}
