package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one destination of a Dispatcher and the alerts it wants.
type Target struct {
	// Name identifies the target in metrics and logs ("security-dingtalk").
	Name string
	// Notifier delivers to it.
	Notifier Notifier
	// Lang overrides the message's language for this target; "" keeps it.
	Lang string
	// MinSeverity drops messages below it; "" means every severity.
	MinSeverity string
	// Rules, when not empty, are the only rules whose alerts the target gets.
	Rules []string
	// Departments, when not empty, are the only departments whose alerts the target gets:
	// each team's chat hears about its own staff.
	Departments []string
}

// wants reports whether t takes m.
func (t *Target) wants(m Message) bool {
	if severityRank(m.Severity) < severityRank(t.MinSeverity) {
		return false
	}
	if len(t.Rules) > 0 && !slices.Contains(t.Rules, m.Rule) {
		return false
	}
	if len(t.Departments) > 0 && !slices.Contains(t.Departments, m.Department) {
		return false
	}
	return true
}

func severityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 2
	case SeverityWarning:
		return 1
	}
	return 0
}

// ValidSeverity reports whether s is a severity ("" is not).
func ValidSeverity(s string) bool {
	return s == SeverityInfo || s == SeverityWarning || s == SeverityCritical
}

// DispatcherOptions configure a Dispatcher. The zero value is usable.
type DispatcherOptions struct {
	// Queue is the number of messages each target holds while it is busy; 0 means 100. A
	// message for a full queue is dropped and counted as a failed delivery.
	Queue int
	// MaxAttempts is the number of tries per message and target; 0 means 5.
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled for each one after; 0 means 1s.
	BaseDelay time.Duration
	// MaxDelay caps a wait between tries (a Retry-After too); 0 means 1m.
	MaxDelay time.Duration
	// AttemptTimeout bounds one try; 0 means 10s.
	AttemptTimeout time.Duration
	// DrainTimeout bounds the last try of the messages still queued when Run's context
	// ends; 0 means 5s.
	DrainTimeout time.Duration
	// OnDelivery is called once per message and target after the last try, ok reporting
	// success (veil_alert_deliveries_total{notifier,result}); nil means no metrics.
	OnDelivery func(target string, ok bool)
	// Logger receives failed deliveries; nil discards them.
	Logger *slog.Logger
	// Sleep waits d or until ctx ends, for tests; nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Dispatcher is a Notifier that hands each message to the targets that want it, each with
// its own bounded queue and worker, retrying failures with exponential backoff and jitter.
// Notify never blocks and never waits for a delivery.
type Dispatcher struct {
	o       DispatcherOptions
	log     *slog.Logger
	targets []*target
	dropped atomic.Uint64
}

type target struct {
	Target
	q chan Message
}

// ErrQueueFull is returned by Notify when a target's queue had no room; the message was
// dropped for that target.
var ErrQueueFull = errors.New("notify: queue full")

// NewDispatcher returns a dispatcher to targets. Deliveries start when Run is called;
// messages sent before wait in the queues.
func NewDispatcher(targets []Target, o DispatcherOptions) (*Dispatcher, error) {
	d := &Dispatcher{o: o, log: o.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.o.Queue <= 0 {
		d.o.Queue = 100
	}
	if d.o.MaxAttempts <= 0 {
		d.o.MaxAttempts = 5
	}
	if d.o.BaseDelay <= 0 {
		d.o.BaseDelay = time.Second
	}
	if d.o.MaxDelay <= 0 {
		d.o.MaxDelay = time.Minute
	}
	if d.o.AttemptTimeout <= 0 {
		d.o.AttemptTimeout = 10 * time.Second
	}
	if d.o.DrainTimeout <= 0 {
		d.o.DrainTimeout = 5 * time.Second
	}
	if d.o.Sleep == nil {
		d.o.Sleep = sleep
	}
	seen := map[string]bool{}
	for _, t := range targets {
		switch {
		case t.Name == "":
			return nil, errors.New("notify: a target has no name")
		case seen[t.Name]:
			return nil, fmt.Errorf("notify: target %q listed twice", t.Name)
		case t.Notifier == nil:
			return nil, fmt.Errorf("notify: target %q has no notifier", t.Name)
		case t.MinSeverity != "" && !ValidSeverity(t.MinSeverity):
			return nil, fmt.Errorf("notify: target %q: unknown severity %q", t.Name, t.MinSeverity)
		}
		seen[t.Name] = true
		d.targets = append(d.targets, &target{Target: t, q: make(chan Message, d.o.Queue)})
	}
	return d, nil
}

// Notify implements Notifier: it queues m for every target that wants it and returns at
// once. The error, if any, wraps ErrQueueFull and names the targets that dropped m.
func (d *Dispatcher) Notify(_ context.Context, m Message) error {
	var full []string
	for _, t := range d.targets {
		if !t.wants(m) {
			continue
		}
		tm := m
		if t.Lang != "" {
			tm.Lang = t.Lang
		}
		select {
		case t.q <- tm:
		default:
			full = append(full, t.Name)
			d.dropped.Add(1)
			d.report(t.Name, false)
			d.log.Warn("alert dropped: notifier queue full", "notifier", t.Name, "rule", m.Rule, "user", m.User)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("%w: %s", ErrQueueFull, strings.Join(full, ", "))
	}
	return nil
}

// Dropped is the number of messages dropped because a target's queue was full.
func (d *Dispatcher) Dropped() uint64 { return d.dropped.Load() }

// Run delivers queued messages until ctx ends, then makes one last try, bounded by
// DrainTimeout, for the messages still queued. It returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, t := range d.targets {
		wg.Go(func() { d.work(ctx, t) })
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) work(ctx context.Context, t *target) {
	for {
		select {
		case m := <-t.q:
			d.deliver(ctx, t, m)
		case <-ctx.Done():
			d.drain(t)
			return
		}
	}
}

// drain tries each message still queued once, within DrainTimeout in all.
func (d *Dispatcher) drain(t *target) {
	ctx, cancel := context.WithTimeout(context.Background(), d.o.DrainTimeout)
	defer cancel()
	for {
		select {
		case m := <-t.q:
			err := d.attempt(ctx, t, m)
			d.finish(t, m, err, 1)
		default:
			return
		}
	}
}

// deliver tries m until it is delivered, the error is permanent, MaxAttempts is reached or
// ctx ends.
func (d *Dispatcher) deliver(ctx context.Context, t *target, m Message) {
	var err error
	attempts := 0
	for attempts < d.o.MaxAttempts {
		attempts++
		if err = d.attempt(ctx, t, m); err == nil || attempts == d.o.MaxAttempts {
			break
		}
		var de *DeliveryError
		if !errors.As(err, &de) || !de.Retry {
			break
		}
		if d.o.Sleep(ctx, d.backoff(attempts, de.RetryAfter)) != nil {
			break
		}
	}
	d.finish(t, m, err, attempts)
}

func (d *Dispatcher) attempt(ctx context.Context, t *target, m Message) error {
	ctx, cancel := context.WithTimeout(ctx, d.o.AttemptTimeout)
	defer cancel()
	return t.Notifier.Notify(ctx, m)
}

func (d *Dispatcher) finish(t *target, m Message, err error, attempts int) {
	d.report(t.Name, err == nil)
	if err != nil {
		d.log.Warn("alert delivery failed", "notifier", t.Name, "rule", m.Rule, "user", m.User,
			"department", m.Department, "attempts", attempts, "err", err)
	}
}

func (d *Dispatcher) report(name string, ok bool) {
	if d.o.OnDelivery != nil {
		d.o.OnDelivery(name, ok)
	}
}

// backoff is the wait after the n-th failed try: BaseDelay·2^(n-1), capped at MaxDelay, with
// "equal jitter" (half fixed, half random) so that replicas retrying the same service spread
// out; at least what the service asked for in Retry-After, capped at MaxDelay.
func (d *Dispatcher) backoff(n int, after time.Duration) time.Duration {
	w := d.o.BaseDelay << min(n-1, 30)
	if w <= 0 || w > d.o.MaxDelay {
		w = d.o.MaxDelay
	}
	w = w/2 + rand.N(w/2+1)
	return min(max(w, after), d.o.MaxDelay)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
