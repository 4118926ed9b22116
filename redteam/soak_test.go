package redteam

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
)

// TestSoak mixes reads, exports, denied requests, policy reloads (good and broken) and Redis
// restarts against one Veil for VEIL_SOAK_DURATION (default 2m), with the leak oracle on every
// response. It runs only when VEIL_SOAK=1:
//
//	VEIL_SOAK=1 VEIL_SOAK_DURATION=10m go test ./redteam -run Soak -timeout 30m -v
func TestSoak(t *testing.T) {
	if os.Getenv("VEIL_SOAK") != "1" {
		t.Log("soak test not run: set VEIL_SOAK=1 (and VEIL_SOAK_DURATION, default 2m) to run it")
		return
	}
	dur := 2 * time.Minute
	if s := os.Getenv("VEIL_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("VEIL_SOAK_DURATION=%q: want a positive duration", s)
		}
		dur = d
	}

	dir := shippedDir(t)
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg, "soak", false)
	eng, err := policy.New(context.Background(), policy.Options{FS: os.DirFS(dir), Dir: dir, OnReload: func(_ string, err error) {
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
	defer cancel()
	go eng.Watch(ctx)

	addr, stopRedis, restartRedis := redistest.StartServer(t)
	rc := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	store := limit.NewRedis(rc, limit.RedisOptions{Prefix: redistest.Prefix(t), Timeout: 200 * time.Millisecond, BreakerCooldown: 200 * time.Millisecond})
	e := newEnv(t, veiltest.Options{Policy: eng, Budgets: store, Metrics: m})

	type load struct {
		roles, target string
		ok            []int // statuses that are not failures
	}
	loads := []load{
		{"cs_agent", "/api/customers?pageSize=3", []int{200, 429, 503}},
		{"cs_agent", "/api/customers/C10002", []int{200, 429, 503}},
		{"host", "/api/customers", []int{200, 429, 503}},
		{"ops_manager", "/api/customers/export", []int{200, 429, 503}},
		{"cs_agent", "/api/customers/export", []int{403}},
		{"contractor", "/api/customers", []int{403}},
	}
	var total, leaked, failed atomic.Int64
	var mu sync.Mutex
	statuses := map[string]map[int]int{}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(end); n++ {
				l := loads[(i+n)%len(loads)]
				req, _ := http.NewRequest("GET", e.Veil.URL+l.target, nil)
				req.Header.Set("X-Veil-User", fmt.Sprintf("soak-%d", i))
				req.Header.Set("X-Veil-Roles", l.roles)
				total.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("%s %s: %v", l.roles, l.target, err)
					}
					continue
				}
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if leaky(resp.Header, b) && l.roles != "security_admin" {
					if leaked.Add(1) <= 5 {
						t.Errorf("%s %s leaked: %.200s", l.roles, l.target, b)
					}
				}
				good := rerr == nil
				if good {
					good = false
					for _, s := range l.ok {
						good = good || resp.StatusCode == s
					}
				}
				if !good && failed.Add(1) <= 5 {
					t.Errorf("%s %s = %d (%v): %.200s", l.roles, l.target, resp.StatusCode, rerr, b)
				}
				mu.Lock()
				k := l.roles + " " + l.target
				if statuses[k] == nil {
					statuses[k] = map[int]int{}
				}
				statuses[k][resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Add(2)
	go func() { // policy pushes: a good change, then a broken one, every few seconds
		defer wg.Done()
		rego := filepath.Join(dir, "veil", "zz_soak.rego")
		for n := 0; time.Now().Before(end); n++ {
			src := fmt.Sprintf("package veil\n\nsoak_marker := %d\n", n)
			if n%2 == 1 {
				src = "package veil\n\nsoak_marker := {\n"
			}
			os.WriteFile(rego, []byte(src), 0o644)
			time.Sleep(3 * time.Second)
		}
		os.Remove(rego)
	}()
	go func() { // Redis crashes and comes back
		defer wg.Done()
		for time.Now().Add(12 * time.Second).Before(end) {
			time.Sleep(10 * time.Second)
			stopRedis()
			time.Sleep(time.Second)
			restartRedis()
		}
	}()
	wg.Wait()
	t.Logf("%d requests, %d failed, %d leaked; reloads ok %v, refused %v; store errors %v; statuses %v",
		total.Load(), failed.Load(), leaked.Load(), value(m.PolicyReloads.WithLabelValues("success")),
		value(m.PolicyReloads.WithLabelValues("error")), value(m.StoreErrors), statuses)
	if leaked.Load() > 0 || failed.Load() > 0 {
		t.Errorf("%d of %d requests failed and %d leaked; want none", failed.Load(), total.Load(), leaked.Load())
	}
	if value(m.PolicyReloads.WithLabelValues("error")) == 0 && dur >= 10*time.Second {
		t.Errorf("no broken policy push was refused")
	}
}
