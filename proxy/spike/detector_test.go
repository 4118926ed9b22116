package spike_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/proxy/notify"
	"github.com/veilproxy/veil/proxy/spike"
)

// recorder is a Notifier that keeps what it is sent.
type recorder struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (r *recorder) Notify(_ context.Context, m notify.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

// take returns the messages sent since the last take.
func (r *recorder) take() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

// summary is what a test compares of a message.
func summary(ms []notify.Message) []string {
	var out []string
	for _, m := range ms {
		s := fmt.Sprintf("%s %s user=%s dept=%s records=%d threshold=%.0f", m.Rule, m.Severity, m.User, m.Department, m.Records, m.Threshold)
		if m.Budget != "" {
			s += " budget=" + m.Budget
		}
		if m.Restricted {
			s += " restricted"
		}
		if m.ContainFailed {
			s += " contain-failed"
		}
		out = append(out, s)
	}
	return out
}

func mustRules(t testing.TB, js string) spike.Rules {
	t.Helper()
	r, err := spike.ParseRules([]byte(js))
	if err != nil {
		t.Fatalf("ParseRules(%s): %v", js, err)
	}
	return r
}

// env is one Veil instance's detector, running, with a fake clock and a recorder.
type env struct {
	d     *spike.Detector
	clk   *fakeClock
	rec   *recorder
	rules atomic.Pointer[spike.Rules]
}

type envOptions struct {
	store    spike.Store
	restrict spike.Restrictor
	clk      *fakeClock
	queue    int
}

func newEnv(t *testing.T, rules spike.Rules, o envOptions) *env {
	t.Helper()
	e := &env{clk: o.clk, rec: &recorder{}}
	if e.clk == nil {
		e.clk = newClock()
	}
	if o.store == nil {
		o.store = spike.NewMemoryStore(e.clk.Now)
	}
	e.rules.Store(&rules)
	d, err := spike.New(spike.Options{
		Store: o.store, Rules: func() spike.Rules { return *e.rules.Load() }, Notifier: e.rec,
		Restrictions: o.restrict, Now: e.clk.Now, Queue: o.queue, Flush: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// send observes events and waits until the detector has processed them.
func (e *env) send(t *testing.T, events ...spike.Event) {
	t.Helper()
	want := e.d.Stats().Processed + uint64(len(events))
	for _, ev := range events {
		e.d.Observe(ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.d.Stats().Processed < want {
		if time.Now().After(deadline) {
			t.Fatalf("detector processed %d events, want %d", e.d.Stats().Processed, want)
		}
		time.Sleep(time.Millisecond)
	}
}

var seq atomic.Int64

// ev is an allowed list of n customers records by user (department cs) at t.
func ev(user string, t time.Time, n int) spike.Event {
	i := seq.Add(1)
	return spike.Event{
		Time: t, User: user, Department: "cs", Roles: []string{"cs_agent"}, Route: "livecrm",
		Resource: "customers", Action: "list", Records: n, Decision: spike.DecisionAllow,
		TraceID: fmt.Sprintf("trace%04d", i), RequestID: fmt.Sprintf("req%04d", i),
	}
}

func export(user string, t time.Time, n int) spike.Event {
	e := ev(user, t, n)
	e.Action, e.Export = "export", true
	return e
}

func denied(user string, t time.Time) spike.Event {
	e := ev(user, t, 0)
	e.Decision = spike.DecisionDeny
	return e
}

// quiet turns off the rules a test is not about.
const quiet = `"first_export": {"enabled": false}, "after_hours": {"enabled": false}, "budget": {"enabled": false}, "probing": {"enabled": false}`

func TestVolumeThresholdAndCooldown(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"volume": {"user_per_minute": 1000, "department_per_minute": 5000, "cooldown": "30m"}, "baseline": {"enabled": false}, `+quiet+`}`), envOptions{})
	at := t0.Add(10 * time.Second)
	e.send(t, ev("alice", at, 600))
	if got := e.rec.take(); len(got) != 0 {
		t.Fatalf("600 records: alerts %v, want none", summary(got))
	}
	e.send(t, ev("alice", at.Add(10*time.Second), 500))
	got := e.rec.take()
	if diff := cmp.Diff([]string{"volume critical user=alice dept=cs records=1100 threshold=1000"}, summary(got)); diff != "" {
		t.Fatalf("1100 records in a minute (-want +got):\n%s", diff)
	}
	m := got[0]
	if m.Resource != "customers" || !m.Since.Equal(at) || !m.Time.Equal(t0) || m.Window != time.Minute || m.Lang != "zh-CN" {
		t.Errorf("message = %+v, want customers since %v, at the clock's %v, window 1m, zh-CN", m, at, t0)
	}
	if m.Since.Location().String() != "Asia/Shanghai" {
		t.Errorf("Since is in %v, want the team's time zone Asia/Shanghai", m.Since.Location())
	}
	if len(m.RequestIDs) != 2 || len(m.TraceIDs) != 2 || m.RequestIDs[0] <= m.RequestIDs[1] {
		t.Errorf("RequestIDs %v, TraceIDs %v; want the two requests, newest first", m.RequestIDs, m.TraceIDs)
	}
	// the spike goes on: the cooldown holds
	for i := range 5 {
		e.send(t, ev("alice", at.Add(time.Duration(20+i)*time.Second), 500))
	}
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("during the cooldown: %v, want nothing", summary(got))
	}
	// after the cooldown, a new spike is a new message
	e.clk.Add(31 * time.Minute)
	later := at.Add(31 * time.Minute)
	e.send(t, ev("alice", later, 1200))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"volume critical user=alice dept=cs records=1200 threshold=1000"}) {
		t.Errorf("after the cooldown: %v, want one volume alert", got)
	}
	// a department over its threshold, no user over theirs
	var evs []spike.Event
	for _, u := range []string{"bob", "carol", "dan", "erin", "fay", "gus"} {
		x := ev(u, later.Add(time.Second), 900)
		x.Department = "live"
		evs = append(evs, x)
	}
	e.send(t, evs...)
	got = e.rec.take()
	if !cmp.Equal(summary(got), []string{"volume critical user= dept=live records=5400 threshold=5000"}) {
		t.Errorf("department live at 5400 records/min: %v, want one department alert", summary(got))
	}
	if len(got) == 1 && len(got[0].RequestIDs) != 5 {
		t.Errorf("department alert names %d requests, want the 5 newest", len(got[0].RequestIDs))
	}
}

func TestVolumeSlidingMinute(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"volume": {"user_per_minute": 1000}, "baseline": {"enabled": false}, `+quiet+`}`), envOptions{})
	// 800 at the end of one minute, 400 just after: 1200 within 60 s across the boundary
	e.send(t, ev("alice", t0.Add(55*time.Second), 800))
	e.send(t, ev("alice", t0.Add(65*time.Second), 400))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"volume critical user=alice dept=cs records=1200 threshold=1000"}) {
		t.Errorf("800 at 0:55 and 400 at 1:05 = %v, want an alert on 1200 within 60 s", got)
	}
	// a steady 600 a minute, each minute's records in one request, is not 1000 within 60 s
	for i := range 5 {
		e.send(t, ev("bob", t0.Add(time.Duration(i)*time.Minute+7*time.Second), 600))
	}
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("600 a minute in bursts: %v, want nothing", summary(got))
	}
}

// workday is a day's usual work for a user: every minute of [from, from+minutes) in
// Beijing time, records drawn from [lo, hi].
func workday(rnd *rand.Rand, user string, day time.Time, from time.Duration, minutes, lo, hi int) []spike.Event {
	var evs []spike.Event
	for i := range minutes {
		at := day.Add(from + time.Duration(i)*time.Minute + 7*time.Second)
		evs = append(evs, ev(user, at, lo+rnd.IntN(hi-lo+1)))
	}
	return evs
}

func TestBaselineLearnsTheUsualPattern(t *testing.T) {
	rules := mustRules(t, `{
		"volume": {"enabled": false},
		"baseline": {"alpha": 0.1, "k": 4, "user_floor": 50, "min_samples": 20, "learning": "7d", "departments": false},
		`+quiet+`}`)
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			store, _ := h.new(t)
			e := newEnv(t, rules, envOptions{store: store})
			rnd := rand.New(rand.NewPCG(3, 4))
			cst := rules.Location
			monday := time.Date(2026, 11, 30, 0, 0, 0, 0, cst)
			// a newcomer's spike in the first days alerts nobody: nothing is learned yet
			e.send(t, ev("newbie", monday.Add(9*time.Hour+30*time.Minute), 400))
			// three weeks: alice reads 30–50 records a minute from 09:00 to 11:00 and runs a
			// bulk job of 280–320 a minute from 15:00 to 15:30, Monday to Friday
			for week := range 3 {
				for wd := range 5 {
					day := monday.AddDate(0, 0, 7*week+wd)
					e.clk.Set(day.Add(16 * time.Hour))
					evs := workday(rnd, "alice", day, 9*time.Hour, 120, 30, 50)
					evs = append(evs, workday(rnd, "alice", day, 15*time.Hour, 30, 280, 320)...)
					e.send(t, evs...)
				}
			}
			if got := e.rec.take(); len(got) != 0 {
				t.Fatalf("three weeks of the usual pattern: alerts %v, want none", summary(got))
			}
			week4 := monday.AddDate(0, 0, 21)
			e.clk.Set(week4.Add(16 * time.Hour))
			// her usual morning is normal; 300 records in a minute at 10:00 is not — though it
			// is her usual at 15:00, which stays normal
			e.send(t, workday(rnd, "alice", week4, 9*time.Hour, 30, 30, 50)...)
			if got := e.rec.take(); len(got) != 0 {
				t.Fatalf("week 4, usual morning: alerts %v, want none", summary(got))
			}
			e.send(t, ev("alice", week4.Add(10*time.Hour+7*time.Second), 300))
			got := e.rec.take()
			if len(got) != 1 || got[0].Rule != notify.RuleBaseline || got[0].User != "alice" || got[0].Records != 300 || got[0].Severity != "warning" {
				t.Fatalf("300 records at 10:00 on Monday of week 4: %v, want one baseline alert for 300 records", summary(got))
			}
			e.send(t, workday(rnd, "alice", week4, 15*time.Hour, 5, 280, 320)...)
			if got := e.rec.take(); len(got) != 0 {
				t.Errorf("week 4, the usual bulk job at 15:00: alerts %v, want none", summary(got))
			}
			if th := got[0].Threshold; th < 50 || th > 100 {
				t.Errorf("baseline bound %v, want mean + 4·sd of 30–50 a minute (about 60–80)", th)
			}
		})
	}
}

func TestFirstExport(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"first_export": {"warmup": "7d"}, "after_hours": {"enabled": false}, "volume": {"enabled": false}, "baseline": {"enabled": false}}`), envOptions{})
	e.send(t, export("alice", t0, 50)) // detection starts now: warm-up
	if got := e.rec.take(); len(got) != 0 {
		t.Fatalf("during warm-up: %v, want nothing", summary(got))
	}
	day8 := t0.AddDate(0, 0, 8)
	e.clk.Set(day8)
	e.send(t, export("alice", day8, 50), ev("carol", day8, 50))
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("alice's second export, carol's list: %v, want nothing", summary(got))
	}
	e.send(t, export("bob", day8, 300))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"first_export info user=bob dept=cs records=300 threshold=0"}) {
		t.Errorf("bob's first export: %v", got)
	}
	e.send(t, export("bob", day8.Add(time.Minute), 300))
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("bob's second export: %v, want nothing", summary(got))
	}
	// a denied export is not an export
	x := export("dave", day8, 0)
	x.Decision = spike.DecisionDeny
	e.send(t, x)
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("dave's denied export: %v, want nothing", summary(got))
	}
}

func TestAfterHours(t *testing.T) {
	e := newEnv(t, mustRules(t, `{
		"working_hours": {"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "19:00",
		                  "holidays": ["2026-12-01"], "workdays": ["2026-12-05"]},
		"after_hours": {"exports_only": true, "min_records": 10},
		"first_export": {"enabled": false}, "volume": {"enabled": false}, "baseline": {"enabled": false}}`), envOptions{})
	cst := time.FixedZone("CST", 8*3600)
	at := func(day, hour int) time.Time { return time.Date(2026, 11, 30+day, hour, 15, 0, 0, cst) }
	for _, tc := range []struct {
		name  string
		event spike.Event
		alert bool
	}{
		{"Monday 10:15 export", export("u1", at(0, 10), 50), false},
		{"Monday 22:15 export", export("u2", at(0, 22), 50), true},
		{"Monday 08:15 export", export("u3", at(0, 8), 50), true},
		{"Monday 19:15 export", export("u4", at(0, 19), 50), true},
		{"Monday 22:15 list (exports only)", ev("u5", at(0, 22), 500), false},
		{"Monday 22:15 export of 9 records", export("u6", at(0, 22), 9), false},
		{"Tuesday 10:15, a holiday", export("u7", at(1, 10), 50), true},
		{"Saturday 10:15, a working day", export("u8", at(5, 10), 50), false},
		{"Sunday 10:15", export("u9", at(6, 10), 50), true},
	} {
		e.send(t, tc.event)
		got := e.rec.take()
		if tc.alert != (len(got) == 1) || len(got) > 1 || tc.alert && got[0].Rule != notify.RuleAfterHours {
			t.Errorf("%s: %v, want an after-hours alert: %v", tc.name, summary(got), tc.alert)
		}
	}
}

func TestBudgetShare(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"budget": {"share": 0.8}, "volume": {"enabled": false}, "baseline": {"enabled": false}, "first_export": {"enabled": false}, "after_hours": {"enabled": false}}`), envOptions{})
	use := func(n int, budgets ...spike.BudgetUse) spike.Event {
		x := ev("alice", t0, n)
		x.Budgets = budgets
		return x
	}
	e.send(t, use(100, spike.BudgetUse{Name: "customer-export", Limit: 2000, Remaining: 500}))
	if got := e.rec.take(); len(got) != 0 {
		t.Fatalf("75%% used: %v, want nothing", summary(got))
	}
	e.send(t, use(200, spike.BudgetUse{Name: "customer-export", Limit: 2000, Remaining: 300}, spike.BudgetUse{Name: "restricted", Limit: 0, Remaining: 0}))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"budget warning user=alice dept=cs records=1700 threshold=2000 budget=customer-export"}) {
		t.Errorf("85%% used: %v", got)
	}
	e.send(t, use(100, spike.BudgetUse{Name: "customer-export", Limit: 2000, Remaining: 100}, spike.BudgetUse{Name: "dept-export", Limit: 10000, Remaining: 1500}))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"budget warning user=alice dept=cs records=8500 threshold=10000 budget=dept-export"}) {
		t.Errorf("95%% of one budget (cooling down), 85%% of another: %v", got)
	}
	// a department's budget, charged by each of its members: one alert for the department
	var evs []spike.Event
	for _, u := range []string{"bob", "carol", "dan"} {
		x := ev(u, t0, 10)
		x.Budgets = []spike.BudgetUse{{Name: "dept-customers-daily", Key: "dept:cs", Limit: 20000, Remaining: 1000}}
		evs = append(evs, x)
	}
	e.send(t, evs...)
	if got := summary(e.rec.take()); len(got) != 1 || !strings.HasSuffix(got[0], "records=19000 threshold=20000 budget=dept-customers-daily") {
		t.Errorf("a shared department budget at 95%%, seen by three users: %v, want one alert", got)
	}
}

func TestProbing(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"probing": {"denials": 20, "window": "10m"}, "volume": {"enabled": false}, "baseline": {"enabled": false}, "first_export": {"enabled": false}, "after_hours": {"enabled": false}}`), envOptions{})
	var evs []spike.Event
	for i := range 19 {
		evs = append(evs, denied("mallory", t0.Add(time.Duration(i)*25*time.Second)))
	}
	e.send(t, evs...)
	if got := e.rec.take(); len(got) != 0 {
		t.Fatalf("19 denials in 8 minutes: %v, want nothing", summary(got))
	}
	e.send(t, denied("mallory", t0.Add(9*time.Minute)))
	got := e.rec.take()
	if !cmp.Equal(summary(got), []string{"probing warning user=mallory dept=cs records=20 threshold=20"}) {
		t.Fatalf("20th denial: %v", summary(got))
	}
	if got[0].Window != 10*time.Minute || !got[0].Since.Equal(t0) {
		t.Errorf("probing window %v since %v, want 10m since %v", got[0].Window, got[0].Since, t0)
	}
	// denials that left the window do not count: 20 spread over an hour
	for i := range 20 {
		e.send(t, denied("trent", t0.Add(time.Duration(i)*3*time.Minute)))
	}
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("20 denials over an hour: %v, want nothing", summary(got))
	}
}

func TestExempt(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"exempt_users": ["svc-etl"], "exempt_roles": ["security_admin"], "volume": {"user_per_minute": 100}}`), envOptions{})
	sec := ev("sally", t0, 5000)
	sec.Roles = []string{"security_admin"}
	e.send(t, ev("svc-etl", t0, 5000), sec, spike.Event{Time: t0, Records: 5000})
	if got := e.rec.take(); len(got) != 0 {
		t.Errorf("exempt user, exempt role, no user: %v, want nothing", summary(got))
	}
}

func TestRulesReloadBetweenBatches(t *testing.T) {
	e := newEnv(t, mustRules(t, `{"volume": {"user_per_minute": 1000}, "baseline": {"enabled": false}, `+quiet+`}`), envOptions{})
	e.send(t, ev("alice", t0, 500))
	r := mustRules(t, `{"volume": {"user_per_minute": 100}, "baseline": {"enabled": false}, `+quiet+`}`)
	e.rules.Store(&r)
	e.send(t, ev("alice", t0.Add(time.Second), 1))
	if got := summary(e.rec.take()); !cmp.Equal(got, []string{"volume critical user=alice dept=cs records=501 threshold=100"}) {
		t.Errorf("after lowering the threshold: %v", got)
	}
}

func TestContainmentOnAndOff(t *testing.T) {
	audit := &auditLog{}
	for _, tc := range []struct {
		name    string
		contain string
		want    string
	}{
		{"off", `""`, "volume critical user=alice dept=cs records=1500 threshold=1000"},
		{"on", `"1h"`, "volume critical user=alice dept=cs records=1500 threshold=1000 restricted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			r := spike.NewMemoryRestrictions(spike.RestrictionsOptions{Now: clk.Now, Audit: audit.hook})
			e := newEnv(t, mustRules(t, `{"volume": {"user_per_minute": 1000, "contain": `+tc.contain+`}, "baseline": {"enabled": false}, `+quiet+`}`), envOptions{clk: clk, restrict: r})
			e.send(t, ev("alice", t0, 1500))
			got := e.rec.take()
			if !cmp.Equal(summary(got), []string{tc.want}) {
				t.Fatalf("alerts = %v, want [%s]", summary(got), tc.want)
			}
			ok, until, _ := r.Restricted(ctx, "alice")
			if want := tc.contain != `""`; ok != want || (r.Len() == 1) != want {
				t.Fatalf("Restricted(alice) = %v (Len %d), want %v", ok, r.Len(), want)
			}
			if ok && (!until.Equal(t0.Add(time.Hour)) || !got[0].RestrictedUntil.Equal(until)) {
				t.Errorf("restricted until %v (message: %v), want %v", until, got[0].RestrictedUntil, t0.Add(time.Hour))
			}
		})
	}
	want := []string{`restrict alice until=2026-11-30T02:00:00Z reason="alert volume: 1500 records (threshold 1000)" by="veil:volume"`}
	if diff := cmp.Diff(want, audit.lines()); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

type failingRestrictor struct{}

func (failingRestrictor) Restrict(context.Context, string, time.Time, string, string) error {
	return errors.New("redis: connection refused")
}

func TestContainmentFailureIsReported(t *testing.T) {
	rules := mustRules(t, `{"volume": {"user_per_minute": 1000, "contain": "1h"}, "baseline": {"enabled": false}, `+quiet+`}`)
	for _, tc := range []struct {
		name string
		r    spike.Restrictor
	}{{"restrictions fail", failingRestrictor{}}, {"no restrictions configured", nil}} {
		e := newEnv(t, rules, envOptions{restrict: tc.r})
		e.send(t, ev("alice", t0, 1500))
		if got := summary(e.rec.take()); !cmp.Equal(got, []string{"volume critical user=alice dept=cs records=1500 threshold=1000 contain-failed"}) {
			t.Errorf("%s: %v, want the alert saying containment failed", tc.name, got)
		}
	}
}

// TestTwoReplicasShareCountersAndCooldowns: two Veil instances on one Redis count a user's
// records together and send one message for one spike, even when both see it at once.
func TestTwoReplicasShareCountersAndCooldowns(t *testing.T) {
	url, prefix := redistest.URL(t)
	rules := mustRules(t, `{"volume": {"user_per_minute": 1000}, "baseline": {"enabled": false}, `+quiet+`}`)
	clk := newClock()
	a := newEnv(t, rules, envOptions{clk: clk, store: spike.NewRedisStore(newClient(t, url), prefix)})
	b := newEnv(t, rules, envOptions{clk: clk, store: spike.NewRedisStore(newClient(t, url), prefix)})
	a.send(t, ev("alice", t0.Add(time.Second), 600))
	b.send(t, ev("alice", t0.Add(2*time.Second), 600))
	if got := append(summary(a.rec.take()), summary(b.rec.take())...); !cmp.Equal(got, []string{"volume critical user=alice dept=cs records=1200 threshold=1000"}) {
		t.Errorf("600 records on each replica: %v, want one alert for 1200", got)
	}
	// both see zed's spike at the same moment: one message
	var wg sync.WaitGroup
	for _, e := range []*env{a, b} {
		wg.Go(func() { e.send(t, ev("zed", t0.Add(3*time.Second), 1500)) })
	}
	wg.Wait()
	if got := append(summary(a.rec.take()), summary(b.rec.take())...); len(got) != 1 || !strings.HasPrefix(got[0], "volume critical user=zed") {
		t.Errorf("a spike both replicas see: %v, want exactly one alert", got)
	}
}

// TestContainmentAcrossInstances: instance A restricts a user for a spike; instance B, on
// the same Redis, holds the user restricted within seconds; a release on B lifts it on A.
// With containment off, neither restricts.
func TestContainmentAcrossInstances(t *testing.T) {
	for _, tc := range []struct {
		name    string
		contain string
	}{{"on", "1h"}, {"off", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			url, prefix := redistest.URL(t)
			rules := mustRules(t, `{"volume": {"user_per_minute": 1000, "contain": "`+tc.contain+`"}, "baseline": {"enabled": false}, `+quiet+`}`)
			clk := newClock()
			audit := &auditLog{}
			ro := spike.RestrictionsOptions{Now: clk.Now, Audit: audit.hook, Refresh: time.Hour, StaleAfter: 2 * time.Hour}
			instance := func() (*env, *spike.RedisRestrictions) {
				r := spike.NewRedisRestrictions(newClient(t, url), prefix, ro, nil)
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { _ = r.Run(runCtx); close(done) }()
				t.Cleanup(func() { cancel(); <-done })
				return newEnv(t, rules, envOptions{clk: clk, restrict: r, store: spike.NewRedisStore(newClient(t, url), prefix)}), r
			}
			a, ra := instance()
			_, rb := instance()
			time.Sleep(100 * time.Millisecond) // subscribed
			a.send(t, ev("alice", t0, 1500))
			if got := a.rec.take(); len(got) != 1 || got[0].Restricted != (tc.contain != "") {
				t.Fatalf("alert = %v, want one, restricted: %v", summary(got), tc.contain != "")
			}
			if tc.contain == "" {
				time.Sleep(200 * time.Millisecond)
				for name, r := range map[string]*spike.RedisRestrictions{"a": ra, "b": rb} {
					if ok, _, err := r.Restricted(ctx, "alice"); ok || err != nil {
						t.Errorf("containment off: %s: Restricted(alice) = %v, %v", name, ok, err)
					}
				}
				return
			}
			waitFor(t, 3*time.Second, "instance b holds alice restricted", func() bool {
				ok, until, _ := rb.Restricted(ctx, "alice")
				return ok && until.Equal(t0.Add(time.Hour))
			})
			if err := rb.Release(ctx, "alice", "sec-lead"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 3*time.Second, "instance a sees the release", func() bool {
				ok, _, _ := ra.Restricted(ctx, "alice")
				return !ok
			})
			want := []string{
				`restrict alice until=2026-11-30T02:00:00Z reason="alert volume: 1500 records (threshold 1000)" by="veil:volume"`,
				`release alice by="sec-lead"`,
			}
			if diff := cmp.Diff(want, audit.lines()); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestObserveNeverBlocks(t *testing.T) {
	d, err := spike.New(spike.Options{Store: spike.NewMemoryStore(nil), Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 5 {
		d.Observe(ev("alice", t0, 1))
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("5 Observe calls without a worker took %v", el)
	}
	if st := d.Stats(); st.Queued != 2 || st.Dropped != 3 {
		t.Errorf("Stats = %+v, want 2 queued and 3 dropped", st)
	}
	// Run processes what is queued even when its context is already over
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = d.Run(cctx)
	if st := d.Stats(); st.Processed != 2 || st.Queued != 0 {
		t.Errorf("after a drained Run: %+v, want 2 processed", st)
	}
}

// brokenStore fails every call.
type brokenStore struct{}

func (brokenStore) Start(context.Context, time.Time) (time.Time, error) {
	return time.Time{}, errors.New("down")
}
func (brokenStore) Observe(context.Context, []spike.Tally, spike.Params) ([]spike.State, error) {
	return nil, errors.New("down")
}
func (brokenStore) Claim(context.Context, []spike.Cooldown) ([]bool, error) {
	return nil, errors.New("down")
}

func TestStoreFailureLosesTheBatchOnly(t *testing.T) {
	e := newEnv(t, spike.DefaultRules(), envOptions{store: brokenStore{}})
	e.send(t, ev("alice", t0, 5000), ev("bob", t0, 1))
	if st := e.d.Stats(); st.StoreErrors == 0 || st.Processed != 2 || st.Alerts != 0 {
		t.Errorf("Stats = %+v, want a store error, 2 processed, no alerts", st)
	}
	if _, err := spike.New(spike.Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestOnAlertAndStats(t *testing.T) {
	var rules []string
	var mu sync.Mutex
	d, _ := spike.New(spike.Options{Store: spike.NewMemoryStore(nil), Now: newClock().Now,
		Rules: func() spike.Rules {
			return mustRules(t, `{"volume": {"user_per_minute": 10}, "baseline": {"enabled": false}, `+quiet+`}`)
		},
		OnAlert: func(rule string) { mu.Lock(); rules = append(rules, rule); mu.Unlock() }})
	d.Observe(ev("alice", t0, 50))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = d.Run(cctx) // no notifier: the alert is logged and counted
	if st := d.Stats(); st.Alerts != 1 || !cmp.Equal(rules, []string{"volume"}) {
		t.Errorf("Stats %+v, OnAlert %v; want one volume alert", st, rules)
	}
}

// countingStore records the tallies it is given.
type countingStore struct {
	spike.Store
	mu    sync.Mutex
	calls [][]spike.Tally
}

func (c *countingStore) Observe(ctx context.Context, ts []spike.Tally, p spike.Params) ([]spike.State, error) {
	c.mu.Lock()
	c.calls = append(c.calls, ts)
	c.mu.Unlock()
	return c.Store.Observe(ctx, ts, p)
}

// TestEventsSummedPerFlush: however many requests a user makes, a flush costs the store one
// tally per subject and minute.
func TestEventsSummedPerFlush(t *testing.T) {
	cs := &countingStore{Store: spike.NewMemoryStore(nil)}
	d, err := spike.New(spike.Options{Store: cs, Flush: time.Hour, Now: newClock().Now,
		Rules: func() spike.Rules {
			return mustRules(t, `{"volume": {"user_per_minute": 100000, "department_per_minute": 100000}, "baseline": {"enabled": false}}`)
		}})
	if err != nil {
		t.Fatal(err)
	}
	var last []string
	for i := range 1000 {
		e := ev([]string{"alice", "bob"}[i%2], t0.Add(time.Duration(i)*time.Millisecond), 3)
		if i%2 == 0 {
			last = append([]string{e.RequestID}, last...)
		}
		d.Observe(e)
	}
	d.Observe(ev("carol", t0.Add(time.Minute), 1)) // another minute
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = d.Run(cctx)
	if len(cs.calls) != 1 {
		t.Fatalf("store called %d times, want once", len(cs.calls))
	}
	var got []string
	for _, tl := range cs.calls[0] {
		got = append(got, fmt.Sprintf("%s@%d:%d", tl.Subject, tl.Minute-t0.Unix()/60, tl.Records))
	}
	if want := []string{"user:alice@0:1500", "dept:cs@0:3000", "user:bob@0:1500", "user:carol@1:1", "dept:cs@1:1"}; !cmp.Equal(got, want) {
		t.Errorf("tallies = %v, want %v", got, want)
	}
	var refs []string
	for _, r := range cs.calls[0][0].Refs {
		refs = append(refs, r.RequestID)
	}
	if !cmp.Equal(refs, last[:5]) {
		t.Errorf("alice's refs = %v, want her 5 newest requests %v", refs, last[:5])
	}
	if st := d.Stats(); st.Processed != 1001 {
		t.Errorf("Processed = %d, want 1001", st.Processed)
	}
}
