// Package spike notices export spikes as they happen — records per minute over a threshold or
// far above a user's own baseline, first exports, after-hours exports, budgets nearly spent,
// repeated denials — alerts once per spike across replicas, and restricts the user where the
// rules say so.
package spike

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilproxy/veil/proxy/notify"
)

// Event is one request's outcome, sent to Observe after the response.
type Event struct {
	// Time is when the request started; zero means when the detector processes the event.
	Time time.Time
	// User, Department and Roles are the requester's identity; events without a user are
	// ignored.
	User, Department string
	Roles            []string
	// Route, Resource and Action describe what was accessed (route name, resource type,
	// list|read|export|…).
	Route, Resource, Action string
	// Export is the audit record's export flag.
	Export bool
	// Records is the number of records returned (the audit record's records).
	Records int
	// Decision is allow, deny, limited or error.
	Decision string
	// TraceID and RequestID name the request in the traces and the audit log.
	TraceID, RequestID string
	// Budgets are the export budgets the request was charged to, after the charge.
	Budgets []BudgetUse
}

// BudgetUse is one export budget's state after a request.
type BudgetUse struct {
	// Name is the budget's name; Limit its records per window; Remaining what is left.
	Name             string
	Limit, Remaining int64
	// Key is what the budget counts ("user:alice", "dept:cs"): users whose requests charge
	// the same budget key share one alert and one cooldown. "" counts the budget per user.
	Key string
}

// Decisions of an Event.
const (
	DecisionAllow   = "allow"
	DecisionDeny    = "deny"
	DecisionLimited = "limited"
	DecisionError   = "error"
)

// Notifier sends alerts; a *notify.Dispatcher is one.
type Notifier interface {
	Notify(ctx context.Context, m notify.Message) error
}

// Restrictor restricts users: the part of Restrictions the detector uses.
type Restrictor interface {
	Restrict(ctx context.Context, user string, until time.Time, reason, by string) error
}

// Options configure a Detector.
type Options struct {
	// Store keeps the counters; required.
	Store Store
	// Rules returns the rules in force, called for every chunk of events drained and every
	// flush; nil means DefaultRules. The caller caches the parse per policy revision.
	Rules func() Rules
	// Notifier sends the alerts; nil means they are only logged.
	Notifier Notifier
	// Restrictions applies containment; nil means the rules' contain settings are ignored
	// (and the alert says containment failed).
	Restrictions Restrictor
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives every alert and the detector's failures; nil discards them.
	Logger *slog.Logger
	// Queue is the number of events waiting for processing; 0 means 10000. The queue is
	// drained every 50 ms (or every Flush, if shorter); Observe drops events when it is full.
	Queue int
	// Flush is how often the events summed since the last flush are judged, in one store
	// round trip: each active subject costs the store one script call per Flush, whatever
	// its request rate, and alerts wait up to Flush. 0 means 2s.
	Flush time.Duration
	// Workers is the number of goroutines summing and judging events; 0 means 1.
	Workers int
	// DrainTimeout bounds the processing of the events still queued when Run's context
	// ends; 0 means 2s.
	DrainTimeout time.Duration
	// OnAlert is called for every alert sent (veil_alerts_total{rule}); nil means none.
	OnAlert func(rule string)
}

// Detector judges request outcomes against the rules, in the background: Observe queues an
// event and returns; Run sums the queued events per subject and minute and judges the sums
// every Flush, in one store round trip.
type Detector struct {
	o     Options
	log   *slog.Logger
	q     chan Event
	start atomic.Int64 // detection start, Unix ms; 0 until the store answered

	dropped, processed, storeErrors, alerts atomic.Uint64
	lastErrLog                              atomic.Int64
}

// Stats are a detector's counters, for metrics and tests.
type Stats struct {
	// Queued is the number of events waiting now.
	Queued int
	// Processed counts events processed: judged, left out (exempt, no user) or lost to a
	// store error.
	Processed uint64
	// Dropped counts events Observe dropped because the queue was full.
	Dropped uint64
	// StoreErrors counts flushes lost because the store failed.
	StoreErrors uint64
	// Alerts counts alerts sent.
	Alerts uint64
}

// New returns a detector; call Run to start processing.
func New(o Options) (*Detector, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("spike: a store is required")
	}
	if o.Rules == nil {
		r := DefaultRules()
		o.Rules = func() Rules { return r }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Queue <= 0 {
		o.Queue = 10000
	}
	if o.Flush <= 0 {
		o.Flush = 2 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 2 * time.Second
	}
	d := &Detector{o: o, log: o.Logger, q: make(chan Event, o.Queue)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// Observe queues e for judging and returns at once; when the queue is full e is dropped and
// counted. It is safe for concurrent use and never blocks a request.
func (d *Detector) Observe(e Event) {
	select {
	case d.q <- e:
	default:
		d.dropped.Add(1)
	}
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats {
	return Stats{
		Queued: len(d.q), Processed: d.processed.Load(), Dropped: d.dropped.Load(),
		StoreErrors: d.storeErrors.Load(), Alerts: d.alerts.Load(),
	}
}

// Run processes queued events until ctx ends, then processes what is still queued within
// DrainTimeout. It returns nil.
func (d *Detector) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range d.o.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	return nil
}

// drainChunk is the most events taken from the queue at once; maxPending the most tallies
// held before a flush is due; maxDrainEvery the longest the queue waits to be drained.
const (
	drainChunk    = 512
	maxPending    = 20000
	maxDrainEvery = 50 * time.Millisecond
)

// work drains the queue on a ticker rather than waking for each event: a request's Observe
// is then a send on a buffered channel that wakes nobody.
func (d *Detector) work(ctx context.Context) {
	var p pending
	tick := time.NewTicker(min(d.o.Flush, maxDrainEvery))
	defer tick.Stop()
	buf := make([]Event, 0, drainChunk)
	lastFlush := time.Now()
	for {
		select {
		case <-tick.C:
			// at most what was queued at the tick: under a flood, flushes still happen
			for left := len(d.q); left > 0; left -= len(buf) {
				if buf = d.fill(buf[:0]); len(buf) == 0 {
					break
				}
				d.collect(&p, buf)
				if len(p.ts) >= maxPending {
					d.flush(ctx, &p)
					lastFlush = time.Now()
				}
			}
			if time.Since(lastFlush) >= d.o.Flush {
				d.flush(ctx, &p)
				lastFlush = time.Now()
			}
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.DrainTimeout)
			defer cancel()
			for dctx.Err() == nil {
				if buf = d.fill(buf[:0]); len(buf) == 0 {
					break
				}
				d.collect(&p, buf)
			}
			d.flush(dctx, &p)
			return
		}
	}
}

// fill adds queued events to buf, without waiting, up to drainChunk.
func (d *Detector) fill(buf []Event) []Event {
	for len(buf) < drainChunk {
		select {
		case e := <-d.q:
			buf = append(buf, e)
		default:
			return buf
		}
	}
	return buf
}

// collect sums events into p.
func (d *Detector) collect(p *pending, events []Event) {
	rules := d.o.Rules()
	now := d.o.Now()
	for _, e := range events {
		p.add(rules, e, now)
	}
}

// flush judges what p summed: add the tallies to the store, judge the states, claim the
// cooldowns of what fired and send what was claimed.
func (d *Detector) flush(ctx context.Context, p *pending) {
	ts, n := p.take()
	if n == 0 {
		return
	}
	defer d.processed.Add(uint64(n))
	if len(ts) == 0 {
		return
	}
	rules := d.o.Rules()
	now := d.o.Now()
	states, err := d.o.Store.Observe(ctx, ts, Params{
		Alpha: rules.Baseline.Alpha, K: rules.Baseline.K, MinSamples: rules.Baseline.MinSamples,
		DenyWindow: rules.Probing.Window,
	})
	if err != nil {
		d.storeErrors.Add(1)
		d.logStoreError(ctx, "spike: events lost: the store failed", n, err)
		return
	}
	start, known := d.started(ctx, now)
	var fired []alert
	for i := range ts {
		fired = append(fired, judge(rules, &ts[i], states[i], start, known)...)
	}
	if len(fired) == 0 {
		return
	}
	cs := make([]Cooldown, len(fired))
	for i, a := range fired {
		subject := a.tally.Subject
		if a.cooldownSubject != "" {
			subject = a.cooldownSubject
		}
		cs[i] = Cooldown{Subject: subject, Name: a.cooldown, TTL: a.rule.Cooldown}
	}
	claimed, err := d.o.Store.Claim(ctx, cs)
	if err != nil {
		// Without the cooldown another replica may send the same alert: err on the side of
		// telling the security team twice rather than never.
		d.logStoreError(ctx, "spike: cooldowns unavailable; alerting anyway", len(fired), err)
		claimed = make([]bool, len(fired))
		for i := range claimed {
			claimed[i] = true
		}
	}
	for i, a := range fired {
		if claimed[i] {
			d.fire(ctx, rules, now, a)
		}
	}
}

// started returns when detection began, asking the store until it answers once.
func (d *Detector) started(ctx context.Context, now time.Time) (time.Time, bool) {
	if ms := d.start.Load(); ms != 0 {
		return time.UnixMilli(ms), true
	}
	t, err := d.o.Store.Start(ctx, now)
	if err != nil {
		d.logStoreError(ctx, "spike: detection start unknown; first-export alerts wait", 0, err)
		return time.Time{}, false
	}
	d.start.Store(t.UnixMilli())
	return t, true
}

// logStoreError logs store failures at most once every 10 s: a Redis outage must not flood
// the log once per flush.
func (d *Detector) logStoreError(ctx context.Context, msg string, n int, err error) {
	now := time.Now().UnixMilli()
	last := d.lastErrLog.Load()
	if now-last < 10_000 || !d.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	d.log.LogAttrs(ctx, slog.LevelWarn, msg, slog.Int("count", n), slog.Any("err", err),
		slog.Uint64("store_errors", d.storeErrors.Load()))
}

// fire contains the user if the rule says so and sends the alert.
func (d *Detector) fire(ctx context.Context, rules Rules, now time.Time, a alert) {
	loc := rules.Location
	if loc == nil {
		loc = time.UTC
	}
	t := a.tally
	m := notify.Message{
		Rule: a.name, Severity: a.rule.Severity, Department: t.department, Resource: t.resource,
		Records: int(a.records), Threshold: a.threshold, Window: a.window, Budget: a.budget,
		Since: a.since.In(loc), Time: now.In(loc), Lang: rules.Lang,
	}
	if a.user != "" {
		m.User = a.user
	}
	for _, r := range a.state.Refs {
		if r.TraceID != "" {
			m.TraceIDs = append(m.TraceIDs, r.TraceID)
		}
		if r.RequestID != "" {
			m.RequestIDs = append(m.RequestIDs, r.RequestID)
		}
	}
	if a.user != "" && a.rule.Contain > 0 {
		until := now.Add(a.rule.Contain)
		reason := fmt.Sprintf("alert %s: %d records (threshold %.0f)", a.name, a.records, a.threshold)
		switch {
		case d.o.Restrictions == nil:
			m.ContainFailed = true
			d.log.Warn("spike: rule asks for containment but no restrictions are configured", "rule", a.name, "user", a.user)
		default:
			if err := d.o.Restrictions.Restrict(ctx, a.user, until, reason, "veil:"+a.name); err != nil {
				m.ContainFailed = true
				d.log.Error("spike: containment failed", "rule", a.name, "user", a.user, "err", err)
			} else {
				m.Restricted, m.RestrictedUntil = true, until.In(loc)
			}
		}
	}
	d.alerts.Add(1)
	if d.o.OnAlert != nil {
		d.o.OnAlert(a.name)
	}
	d.log.LogAttrs(ctx, slog.LevelWarn, "spike: alert",
		slog.String("rule", m.Rule), slog.String("severity", m.Severity), slog.String("user", m.User),
		slog.String("department", m.Department), slog.String("resource", m.Resource),
		slog.Int("records", m.Records), slog.Float64("threshold", m.Threshold),
		slog.Bool("restricted", m.Restricted), slog.Any("request_ids", m.RequestIDs))
	if d.o.Notifier != nil {
		if err := d.o.Notifier.Notify(ctx, m); err != nil {
			d.log.Warn("spike: alert not queued for every notifier", "rule", m.Rule, "user", m.User, "err", err)
		}
	}
}
