// Command bench measures Veil against a bare httputil.ReverseProxy in one run on one machine:
// requests per second, latency percentiles at half the bare proxy's maximum rate, CPU time per
// request and peak RSS of each proxy process, and the ratios to the bare proxy; and the peak RSS
// of 200 MB JSON and CSV exports through the masked route. docs/performance.md shows how to run
// it and what it printed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"
)

func main() {
	role := flag.String("role", "", "internal: run as a proxy process (bare, pass, mask, full)")
	up := flag.String("upstream", "", "internal: upstream URL for -role")
	redisURL := flag.String("redis", os.Getenv("VEIL_REDIS_URL"), "Redis URL for scenario (c); empty = start none and skip (c)")
	duration := flag.Duration("duration", 10*time.Second, "how long each throughput and latency run lasts")
	conns := flag.Int("conns", 32, "concurrent connections for the throughput run")
	exportMB := flag.Int("export-mb", 200, "size of the streamed export runs (0 = skip)")
	only := flag.String("only", "", "comma-separated scenarios to run (bare,pass,mask,full,export)")
	rate := flag.Float64("rate", 0, "open-loop rate of the latency runs in req/s (0 = half the bare proxy's maximum)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *role != "" {
		err = serveRole(ctx, *role, *up, *redisURL)
	} else {
		err = runAll(ctx, benchConfig{duration: *duration, conns: *conns, exportMB: *exportMB, redisURL: *redisURL, only: *only, rate: *rate})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// proc is a proxy under test running in its own process, so its CPU time and RSS are its own.
type proc struct {
	cmd  *exec.Cmd
	addr string
	in   io.WriteCloser
}

func startProc(role, upstreamURL, redisURL string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-role", role, "-upstream", upstreamURL, "-redis", redisURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start: %w", role, err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if !ok {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s: unexpected %q", role, line)
	}
	return &proc{cmd: cmd, addr: addr, in: in}, nil
}

func (p *proc) stop() {
	p.in.Close() // the child exits when its stdin closes
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// serveRole is the child side: serve the proxy of the role until stdin closes.
func serveRole(ctx context.Context, role, upstreamURL, redisURL string) error {
	h, closeFn, err := proxyFor(ctx, role, upstreamURL, redisURL)
	if err != nil {
		return err
	}
	defer closeFn()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("LISTEN %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
