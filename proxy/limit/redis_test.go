package limit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/limit"
)

// roundTrips counts what a go-redis client sends: one per command sent alone, one per
// pipeline (per node on a cluster).
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

func TestRedisKeysAndTTL(t *testing.T) {
	url, prefix := redistest.URL(t)
	c := newClient(t, url)
	s := limit.NewRedis(c, limit.RedisOptions{Prefix: prefix, Buckets: 10})
	b := budget("user-customers-hourly", "user:alice", time.Hour, 100, 5)
	key := s.Key(b)
	if want := prefix + ":{user:alice}:user-customers-hourly:1h0m0s:10"; key != want {
		t.Errorf("Key = %q, want %q", key, want)
	}
	if err := c.HSet(ctx, key, "r1", 50, "junk", 7).Err(); err != nil { // long gone, and foreign
		t.Fatal(err)
	}
	r, st, err := s.Reserve(ctx, []limit.Budget{b}, 10)
	if err != nil || st[0].Remaining != 90 {
		t.Fatalf("Reserve = %+v, %v; want 90 remaining (stale fields ignored)", st, err)
	}
	fields, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 {
		t.Errorf("HGETALL %s = %v, want one records and one requests field", key, fields)
	}
	// 10 buckets of 6 min; the window counts 11 of them.
	const ttl = 11 * 6 * time.Minute
	pttl, err := c.PTTL(ctx, key).Result()
	if err != nil || pttl <= ttl-time.Minute || pttl > ttl {
		t.Errorf("PTTL %s = %v, %v; want within (%v, %v]", key, pttl, err, ttl-time.Minute, ttl)
	}
	if err := c.Persist(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, r, 12); err != nil {
		t.Fatal(err)
	}
	if pttl, err := c.PTTL(ctx, key).Result(); err != nil || pttl <= 0 {
		t.Errorf("PTTL after a settle that charged = %v, %v; want > 0", pttl, err)
	}
}

func TestRedisTwoInstancesShareBudgets(t *testing.T) {
	url, prefix := redistest.URL(t)
	o := limit.RedisOptions{Prefix: prefix}
	a := limit.NewRedis(newClient(t, url), o)
	b := limit.NewRedis(newClient(t, url), o)
	bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}
	for i, want := range []int64{70, 40, 10} {
		s := []*limit.RedisStore{a, b}[i%2]
		if _, st, err := s.Reserve(ctx, bs, 30); err != nil || st[0].Remaining != want {
			t.Fatalf("Reserve(30) #%d = %+v, %v; want %d remaining", i, st, err, want)
		}
	}
	r, st, err := b.Reserve(ctx, bs, 10)
	if err != nil || st[0].Remaining != 0 {
		t.Fatalf("Reserve(10) on b = %+v, %v; want 0 remaining", st, err)
	}
	if _, st, err := a.Reserve(ctx, bs, 1); err != nil || !st[0].Rejected {
		t.Fatalf("Reserve(1) on a = %+v, %v; want rejected", st, err)
	}
	if st, err := b.Settle(ctx, r, 4); err != nil || st[0].Remaining != 6 {
		t.Fatalf("Settle(4) on b = %+v, %v; want 6 remaining", st, err)
	}
	if _, st, err := a.Reserve(ctx, bs, 6); err != nil || st[0].Rejected {
		t.Fatalf("Reserve(6) on a after b's refund = %+v, %v; want granted", st, err)
	}
}

func TestRedisRoundTrips(t *testing.T) {
	addr, _, _ := redistest.StartServer(t) // of its own: it flushes the script cache
	c := newClient(t, "redis://"+addr)
	h := &roundTrips{}
	c.AddHook(h)
	s := limit.NewRedis(c, limit.RedisOptions{})
	bs := []limit.Budget{
		budget("user-hourly", "user:alice", time.Hour, 1000, 100),
		budget("dept-hourly", "dept:cs", time.Hour, 5000, 0),
	}
	// Warm up: connections cost round trips of their own (HELLO, CLIENT SETINFO) once.
	r, _, err := s.Reserve(ctx, bs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	h.n.Store(0)
	if r, _, err = s.Reserve(ctx, bs, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, r, 10); err != nil {
		t.Fatal(err)
	}
	if got := h.n.Load(); got != 4 {
		t.Errorf("round trips of the first Reserve and Settle after SCRIPT FLUSH = %d, want 4 (EVALSHA, then EVAL, each)", got)
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Reserve", func() error { var err error; r, _, err = s.Reserve(ctx, bs, 10); return err }},
		{"Settle", func() error { _, err := s.Settle(ctx, r, 3); return err }},
		{"rejected Reserve", func() error { _, _, err := s.Reserve(ctx, bs, 5000); return err }},
	} {
		h.n.Store(0)
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := h.n.Load(); got != 1 {
			t.Errorf("round trips of %s with two budgets on different keys = %d, want 1", tc.name, got)
		}
	}
}

// storeErr checks that err is a *StoreError whose text holds want.
func storeErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	var se *limit.StoreError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s error = %v, want a *limit.StoreError mentioning %q", what, err, want)
	}
}

func TestRedisKilledBreakerRecovers(t *testing.T) {
	addr, stop, restart := redistest.StartServer(t)
	c := newClient(t, "redis://"+addr)
	h := &roundTrips{}
	c.AddHook(h)
	s := limit.NewRedis(c, limit.RedisOptions{Timeout: 100 * time.Millisecond, BreakerFailures: 3, BreakerCooldown: 300 * time.Millisecond})
	bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}
	if _, _, err := s.Reserve(ctx, bs, 1); err != nil {
		t.Fatalf("Reserve with Redis up: %v", err)
	}

	stop()
	for i := range 3 {
		start := time.Now()
		_, _, err := s.Reserve(ctx, bs, 1)
		storeErr(t, fmt.Sprintf("Reserve #%d with Redis down", i), err, "reserve")
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("Reserve #%d with Redis down took %v, want at most the 100ms timeout and change", i, d)
		}
	}
	if !s.BreakerOpen() {
		t.Fatal("BreakerOpen() = false after 3 failures, want true")
	}
	h.n.Store(0)
	start := time.Now()
	_, _, err := s.Reserve(ctx, bs, 1)
	if !errors.Is(err, limit.ErrBreakerOpen) {
		t.Errorf("Reserve with the breaker open = %v, want ErrBreakerOpen", err)
	}
	storeErr(t, "Reserve with the breaker open", err, "circuit breaker open")
	if d := time.Since(start); d > 10*time.Millisecond || h.n.Load() != 0 {
		t.Errorf("Reserve with the breaker open took %v and %d round trips, want fast and none", d, h.n.Load())
	}
	if _, err := s.Settle(ctx, limit.Reservation{}, 0); err != nil {
		t.Errorf("Settle of an empty reservation with the breaker open = %v, want nil", err)
	}

	restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, st, err := s.Reserve(ctx, bs, 1)
		if err == nil {
			// 99 from a restarted, empty redis-server; 98 from miniredis, which keeps its data.
			if st[0].Rejected || st[0].Remaining != 99 && st[0].Remaining != 98 {
				t.Errorf("Reserve after recovery = %+v, want granted with 99 (or 98) remaining", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Reserve still failing 5s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.BreakerOpen() {
		t.Error("BreakerOpen() = true after recovery, want false")
	}
}

// TestRedisHungBounded points the store at a server that accepts connections and never
// answers: every call must end within the timeout, the breaker must open, and no goroutine
// may be left behind.
func TestRedisHungBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})

	before := runtime.NumGoroutine()
	o, err := limit.ParseRedisURL("redis://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewUniversalClient(o)
	s := limit.NewRedis(c, limit.RedisOptions{Timeout: 100 * time.Millisecond, BreakerFailures: 5, BreakerCooldown: time.Minute})
	bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}

	const callers = 100
	var wg sync.WaitGroup
	var slow atomic.Int64
	for range callers {
		wg.Go(func() {
			start := time.Now()
			_, _, err := s.Reserve(ctx, bs, 1)
			var se *limit.StoreError
			if !errors.As(err, &se) {
				t.Errorf("Reserve against a hung Redis = %v, want a *StoreError", err)
			}
			if time.Since(start) > 600*time.Millisecond {
				slow.Add(1)
			}
		})
	}
	wg.Wait()
	if n := slow.Load(); n > 0 {
		t.Errorf("%d of %d Reserves against a hung Redis took over 600ms (timeout 100ms)", n, callers)
	}
	if !s.BreakerOpen() {
		t.Error("BreakerOpen() = false after a burst of timeouts, want true")
	}
	start := time.Now()
	if _, _, err := s.Reserve(ctx, bs, 1); !errors.Is(err, limit.ErrBreakerOpen) || time.Since(start) > 10*time.Millisecond {
		t.Errorf("Reserve with the breaker open = %v after %v, want ErrBreakerOpen at once", err, time.Since(start))
	}
	_ = c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines = %d, %d before the burst: calls left goroutines behind", runtime.NumGoroutine(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisNoAuth(t *testing.T) {
	addr, _, _ := redistest.StartServer(t, "--requirepass", "s3cret")
	bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}
	s := limit.NewRedis(newClient(t, "redis://"+addr), limit.RedisOptions{})
	_, _, err := s.Reserve(ctx, bs, 1)
	storeErr(t, "Reserve without the password", err, "NOAUTH")

	s = limit.NewRedis(newClient(t, "redis://:s3cret@"+addr), limit.RedisOptions{})
	if _, _, err := s.Reserve(ctx, bs, 1); err != nil {
		t.Errorf("Reserve with the password: %v", err)
	}
}

// TestRedisReadOnly turns the server into a replica, as a failover does to an old master,
// then promotes it again. Without redis-server (miniredis has no replication) a fake server
// answers READONLY to everything instead, and the promotion is not tested.
func TestRedisReadOnly(t *testing.T) {
	bs := []limit.Budget{budget("hourly", "user:alice", time.Hour, 100, 0)}
	if _, err := exec.LookPath("redis-server"); err != nil {
		s := limit.NewRedis(newClient(t, "redis://"+readOnlyServer(t)), limit.RedisOptions{Timeout: time.Second})
		_, _, err := s.Reserve(ctx, bs, 1)
		storeErr(t, "Reserve on a read-only server", err, "READONLY")
		return
	}
	addr, _, _ := redistest.StartServer(t)
	c := newClient(t, "redis://"+addr)
	// go-redis retries READONLY (a failover may be under way) with backoff; a second lets the
	// retries run out, so the error is READONLY rather than the deadline.
	s := limit.NewRedis(c, limit.RedisOptions{BreakerFailures: -1, Timeout: time.Second})
	r, _, err := s.Reserve(ctx, bs, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: the replica never syncs, and refuses writes all along.
	if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Reserve(ctx, bs, 1)
	storeErr(t, "Reserve on a replica", err, "READONLY")
	_, err = s.Settle(ctx, r, 3)
	storeErr(t, "Settle on a replica", err, "READONLY")

	if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(ctx, bs, 1); err != nil {
		t.Errorf("Reserve once promoted: %v", err)
	}
}

// readOnlyServer answers every RESP command with the error a read-only replica gives writes
// (HELLO with the error of a server that does not know it).
func readOnlyServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := bufio.NewReader(c)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					if !strings.HasPrefix(line, "*") {
						continue // a bulk string's header or body: skip to the next command
					}
					n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
					var args []string
					for i := range 2 * n {
						arg, err := rd.ReadString('\n')
						if err != nil {
							return
						}
						if i%2 == 1 {
							args = append(args, strings.ToUpper(strings.TrimSpace(arg)))
						}
					}
					reply := "-READONLY You can't write against a read only replica.\r\n"
					if len(args) > 0 && args[0] == "HELLO" { // as Redis 5 does: the client falls back to RESP2
						reply = "-ERR unknown command 'HELLO'\r\n"
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestRedisCluster reserves budgets whose keys live on different cluster nodes: one script
// per slot, and a rejection on one gives back what the other took.
func TestRedisCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	c := newClient(t, "redis+cluster://"+strings.Join(addrs, ","))
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("redis+cluster:// gave a %T, want *redis.ClusterClient", c)
	}
	h := &roundTrips{}
	c.AddHook(h)
	s := limit.NewRedis(c, limit.RedisOptions{Timeout: 2 * time.Second})

	user := budget("user-hourly", "user:alice", time.Hour, 100, 0)
	dept := budget("dept-hourly", "", time.Hour, 50, 0)
	master := func(key string) string {
		t.Helper()
		n, err := c.(*redis.ClusterClient).MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return n.String()
	}
	for i := 0; dept.Key == ""; i++ {
		k := fmt.Sprintf("dept:%d", i)
		if master(s.Key(budget(dept.Name, k, dept.Window, 0, 0))) != master(s.Key(user)) {
			dept.Key = k
		}
	}
	us, err1 := c.ClusterKeySlot(ctx, s.Key(user)).Result()
	ds, err2 := c.ClusterKeySlot(ctx, s.Key(dept)).Result()
	if err1 != nil || err2 != nil || us == ds {
		t.Fatalf("CLUSTER KEYSLOT of the two budgets = %d, %d (%v, %v); want two slots", us, ds, err1, err2)
	}
	if want, err := c.ClusterKeySlot(ctx, "user:alice").Result(); err != nil || us != want {
		t.Errorf("CLUSTER KEYSLOT %s = %d, want the slot of its hash tag user:alice, %d (%v)", s.Key(user), us, want, err)
	}
	bs := []limit.Budget{user, dept}

	r, st, err := s.Reserve(ctx, bs, 40)
	if err != nil || st[0].Remaining != 60 || st[1].Remaining != 10 {
		t.Fatalf("Reserve(40) = %+v, %v; want 60 and 10 remaining", st, err)
	}
	if _, err := s.Settle(ctx, r, 30); err != nil {
		t.Fatal(err)
	}
	_, st, err = s.Reserve(ctx, bs, 25)
	if err != nil || st[0].Rejected || !st[1].Rejected || st[0].Remaining != 70 || st[1].Remaining != 20 {
		t.Fatalf("Reserve(25) = %+v, %v; want the dept budget rejected, the user budget refunded to 70", st, err)
	}
	if _, st, err := s.Reserve(ctx, bs[:1], 70); err != nil || st[0].Rejected {
		t.Fatalf("Reserve(70) of the user budget alone = %+v, %v; want granted (nothing kept from the rejection)", st, err)
	}
	for _, k := range []string{s.Key(user), s.Key(dept)} {
		if pttl, err := c.PTTL(ctx, k).Result(); err != nil || pttl <= 0 {
			t.Errorf("PTTL %s = %v, %v; want > 0", k, pttl, err)
		}
	}
	// Scripts are loaded on both nodes now: a Reserve that both slots grant is one pipeline.
	fresh := []limit.Budget{budget("user-daily", user.Key, 24*time.Hour, 100, 0), budget("dept-daily", dept.Key, 24*time.Hour, 100, 0)}
	h.n.Store(0)
	if _, st, err := s.Reserve(ctx, fresh, 1); err != nil || st[0].Rejected || st[1].Rejected {
		t.Fatalf("Reserve(1) of fresh budgets = %+v, %v; want granted", st, err)
	}
	if n := h.n.Load(); n != 1 {
		t.Errorf("pipelines of a Reserve on two nodes = %d, want 1 (one round trip per node, in parallel)", n)
	}
}
