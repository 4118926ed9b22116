package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", url, err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestURLAnswers(t *testing.T) {
	url, prefix := URL(t)
	c := client(t, url)
	ctx := context.Background()
	if err := c.Set(ctx, prefix+":k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET on %s: %v", url, err)
	}
	if got, err := c.Get(ctx, prefix+":k").Result(); err != nil || got != "v" {
		t.Errorf("GET = %q, %v, want \"v\", nil", got, err)
	}
}

func TestPrefixUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := Prefix(t)
		if strings.ContainsAny(p, "{}*?[]") {
			t.Fatalf("Prefix() = %q, holds a brace or glob character", p)
		}
		if seen[p] {
			t.Fatalf("Prefix() = %q twice", p)
		}
		seen[p] = true
	}
}

func TestEnvURLSharedAndCleaned(t *testing.T) {
	addr, _, _ := StartServer(t)
	shared := "redis://" + addr + "/0"
	t.Setenv(EnvURL, shared)
	var key string
	t.Run("user", func(t *testing.T) {
		url, prefix := URL(t)
		if url != shared {
			t.Errorf("URL() = %q, want %s's %q", url, EnvURL, shared)
		}
		key = prefix + ":{x}:y"
		if err := client(t, url).Set(context.Background(), key, "1", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	})
	n, err := client(t, shared).Exists(context.Background(), key).Result()
	if err != nil || n != 0 {
		t.Errorf("EXISTS %s after the test = %d, %v; want 0 (cleanup deletes the prefix)", key, n, err)
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEnvURLDownFails(t *testing.T) {
	addr, stop, _ := StartServer(t)
	stop()
	t.Setenv(EnvURL, "redis://"+addr+"/0")
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		URL(f)
	}()
	<-done
	if !strings.Contains(f.msg, "does not answer PING") {
		t.Errorf("URL with %s down: Fatalf(%q), want a PING failure", EnvURL, f.msg)
	}
}

func TestStartServerStopRestart(t *testing.T) {
	addr, stop, restart := StartServer(t)
	if err := ping(addr); err != nil {
		t.Fatalf("ping(%s) after start: %v", addr, err)
	}
	stop()
	if err := ping(addr); err == nil {
		t.Fatalf("ping(%s) after stop succeeded", addr)
	}
	restart()
	if err := ping(addr); err != nil {
		t.Fatalf("ping(%s) after restart: %v", addr, err)
	}
}

func TestStartServerArgs(t *testing.T) {
	addr, _, _ := StartServer(t, "--requirepass", "s3cret")
	err := client(t, "redis://"+addr).Ping(context.Background()).Err()
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without password = %v, want NOAUTH", err)
	}
	if err := client(t, "redis://:s3cret@"+addr).Ping(context.Background()).Err(); err != nil {
		t.Errorf("PING with password: %v", err)
	}
}

func TestMiniredisFallback(t *testing.T) {
	addr, stop, restart := startMiniredis(t, "--requirepass", "pw")
	if err := client(t, "redis://:pw@"+addr).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING miniredis: %v", err)
	}
	stop()
	if err := ping(addr); err == nil {
		t.Fatalf("ping(%s) after stop succeeded", addr)
	}
	restart()
	if err := client(t, "redis://:pw@"+addr).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING miniredis after restart: %v", err)
	}
}

func TestStartCluster(t *testing.T) {
	addrs := StartCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := c.Set(ctx, k, k, time.Minute).Err(); err != nil {
			t.Fatalf("cluster SET %s: %v", k, err)
		}
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil || len(shards) != 3 {
		t.Errorf("CLUSTER SHARDS = %d shards, %v; want 3", len(shards), err)
	}
}
