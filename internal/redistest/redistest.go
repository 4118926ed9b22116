// Package redistest gives tests an isolated Redis: the shared one VEIL_REDIS_URL names, a
// redis-server of their own, or miniredis when there is no redis-server.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EnvURL names the environment variable holding the Redis URL tests share (CI sets it). When
// it is set and that Redis does not answer, tests fail: in CI a missing Redis is a failure.
const EnvURL = "VEIL_REDIS_URL"

// startTimeout bounds how long a redis-server may take to answer its first PING.
const startTimeout = 10 * time.Second

// URL returns the URL of a Redis the test may use and a key prefix unique to the test. Keep
// every key under prefix: other tests, in this process and others, share the server. The
// Redis is, in order: the one VEIL_REDIS_URL names (redis:// or rediss://; the test fails
// if it does not answer PING, and the prefix's keys are deleted when the test ends); a
// redis-server started for the test on a free port, when one is on PATH; else miniredis.
func URL(t testing.TB) (url, prefix string) {
	t.Helper()
	prefix = Prefix(t)
	if env := os.Getenv(EnvURL); env != "" {
		opts, err := redis.ParseURL(env)
		if err != nil {
			t.Fatalf("redistest: %s: %v", EnvURL, err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("redistest: %s does not answer PING: %v", EnvURL, err)
		}
		t.Cleanup(func() { deletePrefix(t, c, prefix) })
		return env, prefix
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		addr, _, _ := StartServer(t)
		return "redis://" + addr + "/0", prefix
	}
	m := miniredis.RunT(t)
	return "redis://" + m.Addr() + "/0", prefix
}

// Prefix returns a key prefix unique to the test: "veiltest:<test name>:<random>", without
// braces or glob characters.
func Prefix(t testing.TB) string {
	name := []byte(t.Name())
	for i, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			name[i] = '_'
		}
	}
	if len(name) > 40 {
		name = name[:40]
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	return "veiltest:" + string(name) + ":" + hex.EncodeToString(r[:])
}

func deletePrefix(t testing.TB, c *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("redistest: scan %s: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("redistest: delete %d keys under %s: %v", len(keys), prefix, err)
		}
	}
}

// StartServer starts a Redis of the test's own, for tests that kill it: a redis-server on a
// free port with no persistence (args are added to its command line, e.g. "--requirepass",
// "secret"), or, when redis-server is not on PATH, miniredis, which understands
// "--requirepass" only. stop kills it as a crash would; restart starts it again, empty, on
// the same address. The server is killed when the test ends.
func StartServer(t testing.TB, args ...string) (addr string, stop, restart func()) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		return startMiniredis(t, args...)
	}
	s := &server{t: t, dir: t.TempDir(), args: args}
	var err error
	for range 5 { // another process may take the free port before redis-server binds it
		s.port, err = freePort(false)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.stop)
	return s.addr(), s.stop, func() {
		if err := s.start(); err != nil {
			t.Fatalf("redistest: restart redis-server: %v", err)
		}
	}
}

func startMiniredis(t testing.TB, args ...string) (addr string, stop, restart func()) {
	m := miniredis.RunT(t)
	for i := 0; i < len(args); i++ {
		if args[i] == "--requirepass" && i+1 < len(args) {
			m.RequireAuth(args[i+1])
			i++
			continue
		}
		t.Fatalf("redistest: miniredis (no redis-server on PATH) cannot take %q", args[i])
	}
	return m.Addr(), m.Close, func() {
		if err := m.Restart(); err != nil {
			t.Fatalf("redistest: restart miniredis: %v", err)
		}
	}
}

// server is a redis-server process.
type server struct {
	t    testing.TB
	dir  string
	port int
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := waitUp(s.addr(), done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(s.dir, "redis.log")))
	}
	s.cmd, s.done = cmd, done
	return nil
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// waitUp waits until addr answers PING (any reply: a server that wants a password answers
// NOAUTH) or the process ends.
func waitUp(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("redis-server exited")
		default:
		}
		if ping(addr) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer PING within %v", addr, startTimeout)
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " | ")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago; with bus set, one
// whose cluster bus port (port+10000) is free too.
func freePort(bus bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !bus {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		if lb, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000))); err == nil {
			_ = lb.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// StartCluster starts a three-node Redis Cluster (three masters, no replicas) for the test
// and returns the nodes' addresses once every node reports cluster_state:ok. The nodes are
// killed when the test ends.
//
// Without redis-server and redis-cli on PATH there is no cluster to test against: the test
// fails when CI=true and is skipped otherwise. That is the one skip the project allows: a
// developer's machine may lack Redis, CI's may not.
func StartCluster(t testing.TB) []string {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("redistest: %s not on PATH: the cluster test needs it in CI", bin)
			}
			t.Skipf("redistest: %s not on PATH: cannot start a Redis Cluster (install redis-server and redis-tools)", bin)
		}
	}
	addrs := make([]string, 3)
	for i := range addrs {
		s := &server{t: t, dir: t.TempDir(), args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
		}}
		var err error
		for range 5 {
			if s.port, err = freePort(true); err != nil {
				t.Fatalf("redistest: %v", err)
			}
			if err = s.start(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("redistest: start cluster node: %v", err)
		}
		t.Cleanup(s.stop)
		addrs[i] = s.addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if ctx.Err() != nil {
				_ = c.Close()
				t.Fatalf("redistest: node %s did not reach cluster_state:ok: %v", a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Close()
	}
	return addrs
}
