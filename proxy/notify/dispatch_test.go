package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/proxy/notify"
)

// fakeNotifier records messages and fails with the next error of errs (nil: success; the
// last one repeats).
type fakeNotifier struct {
	mu    sync.Mutex
	errs  []error
	got   []notify.Message
	block chan struct{} // when set, Notify waits on it
	calls chan struct{} // when set, each call is announced
}

func (f *fakeNotifier) Notify(ctx context.Context, m notify.Message) error {
	if f.calls != nil {
		f.calls <- struct{}{}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, m)
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[min(len(f.got), len(f.errs))-1]
	return err
}

func (f *fakeNotifier) messages() []notify.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]notify.Message(nil), f.got...)
}

// deliveries records OnDelivery calls and the waits the dispatcher asked for.
type deliveries struct {
	mu     sync.Mutex
	got    []string
	sleeps []time.Duration
	done   chan struct{}
}

func newDeliveries() *deliveries { return &deliveries{done: make(chan struct{}, 100)} }

func (d *deliveries) on(target string, ok bool) {
	d.mu.Lock()
	d.got = append(d.got, fmt.Sprintf("%s:%v", target, ok))
	d.mu.Unlock()
	d.done <- struct{}{}
}

func (d *deliveries) sleep(ctx context.Context, w time.Duration) error {
	d.mu.Lock()
	d.sleeps = append(d.sleeps, w)
	d.mu.Unlock()
	return ctx.Err()
}

func (d *deliveries) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited 5s for %d deliveries; got %v", n, d.got)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.got...)
}

func run(t *testing.T, d *notify.Dispatcher) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

var (
	retryable = &notify.DeliveryError{Status: 503, Retry: true}
	permanent = &notify.DeliveryError{Status: 200, Code: 310000, Msg: "sign not match"}
)

func TestDispatcherRetries(t *testing.T) {
	for _, tc := range []struct {
		name         string
		errs         []error
		wantAttempts int
		want         string
	}{
		{"first try", nil, 1, "chat:true"},
		{"after two failures", []error{retryable, retryable, nil}, 3, "chat:true"},
		{"permanent error", []error{permanent}, 1, "chat:false"},
		{"plain error is permanent", []error{errors.New("boom")}, 1, "chat:false"},
		{"gives up after max attempts", []error{retryable}, 4, "chat:false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNotifier{errs: tc.errs}
			dl := newDeliveries()
			d, err := notify.NewDispatcher([]notify.Target{{Name: "chat", Notifier: f}}, notify.DispatcherOptions{
				MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 10 * time.Second,
				OnDelivery: dl.on, Sleep: dl.sleep,
			})
			if err != nil {
				t.Fatal(err)
			}
			run(t, d)
			if err := d.Notify(ctx, sample(notify.LangEN)); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			if got := dl.wait(t, 1); !cmp.Equal(got, []string{tc.want}) {
				t.Errorf("deliveries = %v, want [%s]", got, tc.want)
			}
			if got := len(f.messages()); got != tc.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tc.wantAttempts)
			}
			// exponential backoff with equal jitter: the n-th wait is in [b/2, b], b = 1s·2^(n-1)
			dl.mu.Lock()
			defer dl.mu.Unlock()
			if len(dl.sleeps) != tc.wantAttempts-1 {
				t.Fatalf("waits = %v, want %d", dl.sleeps, tc.wantAttempts-1)
			}
			for i, w := range dl.sleeps {
				b := time.Second << i
				if w < b/2 || w > b {
					t.Errorf("wait %d = %v, want within [%v, %v]", i+1, w, b/2, b)
				}
			}
		})
	}
}

func TestDispatcherHonoursRetryAfter(t *testing.T) {
	f := &fakeNotifier{errs: []error{&notify.DeliveryError{Status: 429, Retry: true, RetryAfter: 7 * time.Second}, nil}}
	dl := newDeliveries()
	d, _ := notify.NewDispatcher([]notify.Target{{Name: "slack", Notifier: f}}, notify.DispatcherOptions{
		BaseDelay: time.Second, MaxDelay: 5 * time.Second, OnDelivery: dl.on, Sleep: dl.sleep,
	})
	run(t, d)
	_ = d.Notify(ctx, sample(notify.LangEN))
	dl.wait(t, 1)
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if !cmp.Equal(dl.sleeps, []time.Duration{5 * time.Second}) {
		t.Errorf("waits = %v, want [5s]: Retry-After 7s capped by MaxDelay", dl.sleeps)
	}
}

func TestDispatcherRoutes(t *testing.T) {
	cs, ops, all := &fakeNotifier{}, &fakeNotifier{}, &fakeNotifier{}
	dl := newDeliveries()
	d, err := notify.NewDispatcher([]notify.Target{
		{Name: "cs-chat", Notifier: cs, Departments: []string{"cs"}, Lang: notify.LangZH},
		{Name: "ops-critical", Notifier: ops, MinSeverity: notify.SeverityCritical, Rules: []string{notify.RuleVolume, notify.RuleProbing}},
		{Name: "security", Notifier: all},
	}, notify.DispatcherOptions{OnDelivery: dl.on})
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)
	msgs := []notify.Message{
		{Rule: notify.RuleVolume, Severity: notify.SeverityCritical, User: "alice", Department: "cs", Lang: notify.LangEN},
		{Rule: notify.RuleBaseline, Severity: notify.SeverityCritical, User: "bob", Department: "live", Lang: notify.LangEN},
		{Rule: notify.RuleProbing, Severity: notify.SeverityWarning, User: "carol", Department: "cs", Lang: notify.LangEN},
	}
	for _, m := range msgs {
		if err := d.Notify(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dl.wait(t, 6)
	users := func(f *fakeNotifier) (out []string) {
		for _, m := range f.messages() {
			out = append(out, m.User+"/"+m.Lang)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    *fakeNotifier
		want []string
	}{
		{"cs-chat (department cs, in Chinese)", cs, []string{"alice/zh-CN", "carol/zh-CN"}},
		{"ops-critical (critical volume or probing)", ops, []string{"alice/en"}},
		{"security (everything)", all, []string{"alice/en", "bob/en", "carol/en"}},
	} {
		if got := users(tc.f); !cmp.Equal(got, tc.want) {
			t.Errorf("%s got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDispatcherNeverBlocks(t *testing.T) {
	f := &fakeNotifier{block: make(chan struct{}), calls: make(chan struct{}, 10)}
	dl := newDeliveries()
	d, _ := notify.NewDispatcher([]notify.Target{{Name: "slow", Notifier: f}}, notify.DispatcherOptions{Queue: 2, OnDelivery: dl.on})
	run(t, d)
	_ = d.Notify(ctx, sample(notify.LangEN))
	<-f.calls // the worker holds the first message; the queue is empty
	start := time.Now()
	var errs []error
	for range 5 {
		errs = append(errs, d.Notify(ctx, sample(notify.LangEN)))
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("5 Notify calls on a stuck notifier took %v", el)
	}
	var full int
	for _, err := range errs {
		if errors.Is(err, notify.ErrQueueFull) {
			full++
			if !strings.Contains(err.Error(), "slow") {
				t.Errorf("error %q does not name the target", err)
			}
		}
	}
	if full != 3 || d.Dropped() != 3 {
		t.Errorf("dropped %d (Dropped() = %d), want 3: a queue of 2 behind a stuck delivery", full, d.Dropped())
	}
	if got := dl.wait(t, 3); !cmp.Equal(got, []string{"slow:false", "slow:false", "slow:false"}) {
		t.Errorf("deliveries = %v, want three failures for the drops", got)
	}
	close(f.block)
	if got := dl.wait(t, 3); len(got) != 6 {
		t.Errorf("deliveries = %v, want the 3 queued messages delivered", got)
	}
}

func TestDispatcherDrainsOnShutdown(t *testing.T) {
	f := &fakeNotifier{}
	dl := newDeliveries()
	d, _ := notify.NewDispatcher([]notify.Target{{Name: "chat", Notifier: f}}, notify.DispatcherOptions{OnDelivery: dl.on})
	for range 3 { // queued before Run
		_ = d.Notify(ctx, sample(notify.LangEN))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(f.messages()); got != 3 {
		t.Errorf("delivered %d messages queued at shutdown, want 3", got)
	}
}

func TestNewDispatcherValidates(t *testing.T) {
	n := &fakeNotifier{}
	for _, tc := range []struct {
		targets []notify.Target
		want    string
	}{
		{[]notify.Target{{Notifier: n}}, "no name"},
		{[]notify.Target{{Name: "a", Notifier: n}, {Name: "a", Notifier: n}}, "twice"},
		{[]notify.Target{{Name: "a"}}, "no notifier"},
		{[]notify.Target{{Name: "a", Notifier: n, MinSeverity: "loud"}}, "unknown severity"},
	} {
		if _, err := notify.NewDispatcher(tc.targets, notify.DispatcherOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDispatcher(%+v) = %v, want an error containing %q", tc.targets, err, tc.want)
		}
	}
}
