package spike

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/veilproxy/veil/proxy/notify"
)

// pending sums events per subject (the user, and the user's department) and minute until
// the next flush, in the order subjects first appear. Exempt users and events without a
// user are counted as processed and left out.
type pending struct {
	ts     []Tally
	index  map[tallyKey]int
	events int // events added since the last take
}

type tallyKey struct {
	dept   bool
	name   string
	minute int64
}

// get returns the tally of a subject for the minute of t, creating it.
func (p *pending) get(rules Rules, dept bool, name string, t time.Time) *Tally {
	k := tallyKey{dept: dept, name: name, minute: minuteOf(t)}
	i, ok := p.index[k]
	if !ok {
		if p.index == nil {
			p.index = map[tallyKey]int{}
		}
		i = len(p.ts)
		p.index[k] = i
		tl := Tally{Subject: "user:" + name, Time: t, Minute: k.minute, Slot: rules.slot(t), Floor: rules.Baseline.UserFloor}
		if dept {
			tl.Subject, tl.Floor = "dept:"+name, rules.Baseline.DepartmentFloor
		}
		p.ts = append(p.ts, tl)
	}
	tl := &p.ts[i]
	if t.After(tl.Time) {
		tl.Time = t
	}
	return tl
}

// add sums one event; now stands in for a missing event time.
func (p *pending) add(rules Rules, e Event, now time.Time) {
	p.events++
	if e.User == "" || rules.exempt(e.User, e.Roles) {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = now
	}
	records := int64(max(e.Records, 0))
	denied := e.Decision == DecisionDeny
	exported := e.Export && (e.Decision == DecisionAllow || records > 0)
	if records == 0 && !denied && !exported && len(e.Budgets) == 0 {
		return
	}
	ref := Ref{TraceID: e.TraceID, RequestID: e.RequestID}
	notable := records > 0 || denied || exported

	u := p.get(rules, false, e.User, t)
	u.department = e.Department
	u.Records += records
	if denied {
		u.Denials++
	}
	if exported {
		u.Export = true
		u.ExportRecords += records
		u.maxExport = max(u.maxExport, records)
	}
	if notable {
		u.addRef(ref)
		u.addResource(e.Resource, records)
	}
	for _, b := range e.Budgets {
		if u.budgets == nil {
			u.budgets = map[string]BudgetUse{}
		}
		u.budgets[b.Key+"\x00"+b.Name] = b
	}
	depts := rules.Volume.Enabled && rules.Volume.DepartmentPerMinute > 0 ||
		rules.Baseline.Enabled && rules.Baseline.Departments
	if depts && e.Department != "" && records > 0 {
		dt := p.get(rules, true, e.Department, t)
		dt.department = e.Department
		dt.Records += records
		dt.addRef(ref)
		dt.addResource(e.Resource, records)
	}
}

// take returns the tallies, their Refs newest first, and the number of events summed, and
// empties p.
func (p *pending) take() ([]Tally, int) {
	ts, n := p.ts, p.events
	for i := range ts {
		ts[i].Refs = ts[i].refs()
	}
	p.ts, p.events = nil, 0
	clear(p.index)
	return ts, n
}

// addRef records r in t's ring of the newest maxRefs references.
func (t *Tally) addRef(r Ref) {
	if r.TraceID == "" && r.RequestID == "" {
		return
	}
	t.refRing[t.refCount%maxRefs] = r
	t.refCount++
}

// refs returns the ring's references, newest first.
func (t *Tally) refs() []Ref {
	n := min(t.refCount, maxRefs)
	if n == 0 {
		return nil
	}
	out := make([]Ref, n)
	for i := range n {
		out[i] = t.refRing[(t.refCount-1-i)%maxRefs]
	}
	return out
}

// addResource counts records of resource and keeps the one with the most as t's resource.
func (t *Tally) addResource(resource string, records int64) {
	if resource == "" {
		return
	}
	if t.resRecords == nil {
		t.resRecords = map[string]int64{}
	}
	t.resRecords[resource] += records
	if t.resource == "" || t.resRecords[resource] > t.resRecords[t.resource] {
		t.resource = resource
	}
}

// alert is one rule that fired for one subject.
type alert struct {
	name     string // the rule's name: notify.Rule*
	cooldown string // the cooldown's name: the rule, and for budgets the budget
	// cooldownSubject is whose cooldown it is when not the tally's subject: a budget's key
	cooldownSubject string
	rule            Rule
	tally           *Tally
	state           State
	user            string // "" for a department
	records         int64
	threshold       float64
	window          time.Duration
	budget          string
	since           time.Time
}

// judge applies the rules to one subject's state after a tally. start is when detection
// began (known: the store told).
func judge(rules Rules, t *Tally, st State, start time.Time, known bool) []alert {
	user, isUser := strings.CutPrefix(t.Subject, "user:")
	if !isUser {
		user = ""
	}
	var out []alert
	add := func(name, cooldown string, r Rule, records int64, threshold float64, window time.Duration, since time.Time) *alert {
		out = append(out, alert{name: name, cooldown: cooldown, rule: r, tally: t, state: st, user: user,
			records: records, threshold: threshold, window: window, since: since})
		return &out[len(out)-1]
	}

	// volume, else baseline: one message for one spike
	if t.Records > 0 {
		v, b := rules.Volume, rules.Baseline
		limit := v.UserPerMinute
		floor := b.UserFloor
		if !isUser {
			limit, floor = v.DepartmentPerMinute, b.DepartmentFloor
		}
		bound := math.Max(floor, st.Mean+b.K*st.StdDev())
		learned := st.Samples >= b.MinSamples && !st.FirstSeen.IsZero() && t.Time.Sub(st.FirstSeen) >= b.Learning
		switch {
		case v.Enabled && limit > 0 && st.Sliding > limit:
			add(notify.RuleVolume, notify.RuleVolume, v.Rule, st.Sliding, float64(limit), time.Minute, st.SlidingSince)
		case b.Enabled && (isUser || b.Departments) && learned && float64(st.Minute) > bound:
			add(notify.RuleBaseline, notify.RuleBaseline, b.Rule, st.Minute, math.Round(bound), time.Minute, st.MinuteStart)
		}
	}
	if !isUser {
		return out
	}

	if r := rules.FirstExport; r.Enabled && t.Export && st.FirstExport && known && t.Time.Sub(start) >= r.Warmup {
		add(notify.RuleFirstExport, notify.RuleFirstExport, r.Rule, t.ExportRecords, 0, 0, t.Time)
	}
	if r := rules.AfterHours; r.Enabled && t.Records > 0 && !rules.Working(t.Time) {
		switch {
		case r.ExportsOnly && t.maxExport >= r.MinRecords:
			add(notify.RuleAfterHours, notify.RuleAfterHours, r.Rule, t.ExportRecords, float64(r.MinRecords), 0, t.Time)
		case !r.ExportsOnly && st.Minute >= r.MinRecords:
			add(notify.RuleAfterHours, notify.RuleAfterHours, r.Rule, st.Minute, float64(r.MinRecords), time.Minute, st.MinuteStart)
		}
	}
	if r := rules.Budget; r.Enabled {
		for _, b := range sortedBudgets(t.budgets) {
			used := b.Limit - max(b.Remaining, 0)
			if b.Limit > 0 && float64(used) >= r.Share*float64(b.Limit) {
				a := add(notify.RuleBudget, notify.RuleBudget+":"+b.Name, r.Rule, used, float64(b.Limit), 0, t.Time)
				a.budget, a.cooldownSubject = b.Name, b.Key
			}
		}
	}
	if r := rules.Probing; r.Enabled && t.Denials > 0 && st.Denials >= r.Denials {
		add(notify.RuleProbing, notify.RuleProbing, r.Rule, st.Denials, float64(r.Denials), r.Window, st.DenialsSince)
	}
	return out
}

// sortedBudgets returns the budgets by name, for a stable order of alerts.
func sortedBudgets(m map[string]BudgetUse) []BudgetUse {
	out := make([]BudgetUse, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b BudgetUse) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
