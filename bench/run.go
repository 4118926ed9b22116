package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

type benchConfig struct {
	duration time.Duration
	conns    int
	exportMB int
	redisURL string
	only     string
	rate     float64 // open-loop rate of the latency runs; 0 = half the bare proxy's maximum
}

func (c benchConfig) wants(s string) bool {
	return c.only == "" || slices.Contains(strings.Split(c.only, ","), s)
}

type result struct {
	name               string
	rps                float64
	p50, p99, p999     time.Duration
	cpuPerReq          time.Duration
	peakRSS            int64
	errors             int64
	latRate            float64
	latencyRunRequests int
}

// scenario is a proxy role and the request that exercises it.
type scenario struct {
	name, role, path, user, roles string
}

var scenarios = []scenario{
	{"bare httputil.ReverseProxy", "bare", "/api/customers", "", ""},
	{"(a) veil pass-through", "pass", "/api/customers", "sam", "security_admin"},
	{"(b) veil masked list", "mask", "/api/customers", "alice", "cs_agent"},
	{"(b') masked + tracing 100%", "trace", "/api/customers", "alice", "cs_agent"},
	{"(c) masked + tracing 100% + Redis budgets", "full", "/api/customers", "alice", "cs_agent"},
}

func runAll(ctx context.Context, c benchConfig) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upSrv := &http.Server{Handler: upstream()}
	go upSrv.Serve(ln)
	defer upSrv.Close()
	upURL := "http://" + ln.Addr().String()
	fmt.Printf("veil bench: %d connections, %s per run, GOMAXPROCS from %d CPUs, upstream %s\n\n", c.conns, c.duration, numCPU(), upURL)

	var results []result
	var bareRPS float64
	for _, s := range scenarios {
		if !c.wants(s.role) {
			continue
		}
		if s.role == "full" && c.redisURL == "" {
			fmt.Println("skipping (c): no -redis / VEIL_REDIS_URL")
			continue
		}
		r, err := measure(ctx, s, upURL, c, bareRPS)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if s.role == "bare" {
			bareRPS = r.rps
		}
		results = append(results, r)
	}
	printResults(results)
	if c.exportMB > 0 && c.wants("export") {
		fmt.Println()
		for _, path := range []string{"/api/export.json", "/api/export.csv"} {
			if err := measureExport(ctx, upURL, c, path); err != nil {
				return err
			}
		}
	}
	return nil
}

func numCPU() int { return runtime.NumCPU() }

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}, Timeout: time.Minute}
}

func doReq(client *http.Client, url, user, roles string) error {
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.Header.Set("X-Veil-User", user)
		req.Header.Set("X-Veil-Roles", roles)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

func measure(ctx context.Context, s scenario, upURL string, c benchConfig, bareRPS float64) (result, error) {
	p, err := startProc(s.role, upURL, c.redisURL)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	url := "http://" + p.addr + s.path
	client := newClient(c.conns)
	if err := doReq(client, url, s.user, s.roles); err != nil {
		return result{}, fmt.Errorf("first request: %w", err)
	}
	// Warm up, then the closed-loop throughput run.
	closedLoop(ctx, client, url, s, c.conns, time.Second)
	cpu0 := procCPU(p.cmd.Process.Pid)
	n, errs, _ := closedLoop(ctx, client, url, s, c.conns, c.duration)
	cpu1 := procCPU(p.cmd.Process.Pid)
	r := result{name: s.name, rps: float64(n) / c.duration.Seconds(), errors: errs}
	if n > 0 {
		r.cpuPerReq = (cpu1 - cpu0) / time.Duration(n)
	}
	// The latency run: open loop at half the bare proxy's maximum rate, or at -rate.
	rate := c.rate
	if rate == 0 {
		rate = bareRPS / 2
	}
	if rate == 0 {
		rate = r.rps / 2
	}
	lats, lerrs := openLoop(ctx, client, url, s, rate, c.duration)
	r.errors += lerrs
	r.latRate = rate
	r.latencyRunRequests = len(lats)
	slices.Sort(lats)
	r.p50, r.p99, r.p999 = pct(lats, 0.50), pct(lats, 0.99), pct(lats, 0.999)
	r.peakRSS = procHWM(p.cmd.Process.Pid)
	return r, nil
}

func closedLoop(ctx context.Context, client *http.Client, url string, s scenario, conns int, d time.Duration) (n, errs int64, lats []time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := doReq(client, url, s.user, s.roles); err != nil {
					if ctx.Err() == nil {
						atomic.AddInt64(&errs, 1)
					}
					continue
				}
				if ctx.Err() == nil {
					atomic.AddInt64(&n, 1)
				}
			}
		}()
	}
	wg.Wait()
	return n, errs, nil
}

// openLoop sends requests at a fixed rate and measures each from its scheduled start, so a
// stall shows in the percentiles instead of slowing the sender (no coordinated omission).
func openLoop(ctx context.Context, client *http.Client, url string, s scenario, rate float64, d time.Duration) ([]time.Duration, int64) {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d / interval)
	lats := make([]time.Duration, total)
	var errs int64
	sem := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := doReq(client, url, s.user, s.roles); err != nil {
				atomic.AddInt64(&errs, 1)
			}
			lats[i] = time.Since(at)
		}()
	}
	wg.Wait()
	return lats, errs
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// procCPU is a process's user+system CPU time from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procHWM is a process's peak resident set size in bytes.
func procHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func printResults(rs []result) {
	if len(rs) == 0 {
		return
	}
	bare := rs[0]
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq/s\t× bare\tp50\tp99\tp99.9\tadded p99\tCPU/req\tpeak RSS\terrors\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%.1f MB\t%d\t\n", r.name, r.rps, r.rps/bare.rps,
			us(r.p50), us(r.p99), us(r.p999), us(r.p99-bare.p99), us(r.cpuPerReq), float64(r.peakRSS)/(1<<20), r.errors)
	}
	tw.Flush()
	how := "half the bare proxy's maximum"
	if rs[0].latRate != rs[0].rps/2 {
		how = "set by -rate"
	}
	fmt.Printf("\nlatency runs: open loop at %.0f req/s (%s), %d requests each\n", rs[0].latRate, how, rs[0].latencyRunRequests)
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// measureExport streams one large export through the masked route (ops_manager may export)
// in a fresh Veil process and reports its peak RSS.
func measureExport(ctx context.Context, upURL string, c benchConfig, path string) error {
	p, err := startProc("mask", upURL, "")
	if err != nil {
		return err
	}
	defer p.stop()
	before := procHWM(p.cmd.Process.Pid)
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s%s?mb=%d", p.addr, path, c.exportMB), nil)
	req.Header.Set("X-Veil-User", "olivia")
	req.Header.Set("X-Veil-Roles", "ops_manager")
	start := time.Now()
	resp, err := newClient(1).Do(req)
	if err != nil {
		return err
	}
	var first time.Duration
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 && first == 0 {
			first = time.Since(start)
		}
		n += int64(k)
		if err != nil {
			if err != io.EOF {
				return fmt.Errorf("%s: after %d bytes: %w", path, n, err)
			}
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", path, resp.StatusCode)
	}
	fmt.Printf("export %-18s %d MB upstream → %.1f MB masked in %s (first byte after %s); Veil peak RSS %.1f MB (%.1f MB before)\n",
		path, c.exportMB, float64(n)/(1<<20), time.Since(start).Round(time.Millisecond), first.Round(time.Microsecond),
		float64(procHWM(p.cmd.Process.Pid))/(1<<20), float64(before)/(1<<20))
	return nil
}
