package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the demo's goroutines to write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoScript plays `veil demo --script`: the departing host's paging trips the budget
// alert, printed by the console notifier, and containment refuses her next request.
func TestDemoScript(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--script", "--proxy", "127.0.0.1:0", "--admin", "127.0.0.1:0",
			"--upstream", "127.0.0.1:0", "--audit", t.TempDir() + "/audit.jsonl"}, &out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	deadline := time.Now().Add(40 * time.Second)
	for !strings.Contains(out.String(), "[script] after the") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	s := out.String()
	for _, want := range []string{"导出额度即将用尽", "已自动限制账户", "[script] after the alert: HTTP 429"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo --script output lacks %q:\n%s", want, s)
		}
	}
}
