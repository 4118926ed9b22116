package spike

import (
	"context"
	"math"
	"strings"
	"time"
)

// Store keeps the detector's counters, baselines, export markers, denial windows and
// cooldowns, shared by every replica (RedisStore) or held in process (MemoryStore).
type Store interface {
	// Start records now as the time detection began unless a time is recorded already, and
	// returns the recorded time.
	Start(ctx context.Context, now time.Time) (time.Time, error)
	// Observe adds each tally to its subject and returns the subject's state after it, in
	// the order of ts. Tallies of one subject are applied in order.
	Observe(ctx context.Context, ts []Tally, p Params) ([]State, error)
	// Claim takes each cooldown that is free, for its TTL, and reports which it took: of
	// the replicas claiming the same cooldown at once, one gets it.
	Claim(ctx context.Context, cs []Cooldown) ([]bool, error)
}

var (
	_ Store = (*RedisStore)(nil)
	_ Store = (*MemoryStore)(nil)
)

// Tally is what the events since the last flush added to one subject (a user or a
// department) in one minute.
type Tally struct {
	// Subject is "user:<id>" or "dept:<name>".
	Subject string
	// Time is the newest event's time; Minute its Unix minute; Slot its hour of the week in
	// the rules' time zone (0 is Sunday 00:00–01:00).
	Time   time.Time
	Minute int64
	Slot   int
	// Records is the number of records the events returned.
	Records int64
	// Denials is the number of denied requests.
	Denials int64
	// Export reports that an event was an export; ExportRecords is what exports returned.
	Export        bool
	ExportRecords int64
	// Refs are the events' request references worth naming in an alert, newest first.
	Refs []Ref
	// Floor is the subject's baseline floor (BaselineRule.UserFloor or DepartmentFloor).
	Floor float64

	// for the detector: the user's department and roles, the resource with the most
	// records, the budgets' latest use
	department string
	resource   string
	resRecords map[string]int64
	budgets    map[string]BudgetUse
	maxExport  int64 // the largest single export's records
	refRing    [maxRefs]Ref
	refCount   int
}

// Ref names one request: its trace and its audit request id.
type Ref struct {
	TraceID, RequestID string
}

// Params are the rules' numbers the store needs.
type Params struct {
	// Alpha, K and MinSamples are BaselineRule's.
	Alpha, K   float64
	MinSamples int64
	// DenyWindow is ProbingRule.Window.
	DenyWindow time.Duration
}

// State is a subject's counters after a tally: what the rules judge.
type State struct {
	// Minute is the records of the subject's open minute (the tally's, unless a newer one
	// is open already), which began at MinuteStart: what the baseline is judged on.
	Minute      int64
	MinuteStart time.Time
	// Sliding is the records of the last 60 seconds before the tally's time, counted in
	// 10-second buckets (the oldest prorated), which began at SlidingSince: what the volume
	// thresholds are judged on.
	Sliding      int64
	SlidingSince time.Time
	// Samples, Mean and Variance are the baseline of the open minute's hour-of-week slot:
	// the number of active minutes folded in and their weighted mean and variance.
	Samples        int64
	Mean, Variance float64
	// FirstSeen is the first minute the subject took records (within the baseline's TTL);
	// zero if it never did.
	FirstSeen time.Time
	// FirstExport reports that the tally's export is the first the subject made.
	FirstExport bool
	// Denials is the denied requests in the probing window, when the tally had denials;
	// DenialsSince the first minute of the window with one.
	Denials      int64
	DenialsSince time.Time
	// Refs are the subject's most recent request references, newest first, from every
	// replica.
	Refs []Ref
}

// StdDev is the baseline's standard deviation.
func (s State) StdDev() float64 { return math.Sqrt(max(s.Variance, 0)) }

// Cooldown is one alert's dedup key: Name (the rule, and for the budget rule the budget) of
// Subject, for TTL.
type Cooldown struct {
	Subject, Name string
	TTL           time.Duration
}

// Storage lifetimes.
const (
	// baselineTTL is how long a subject's counters and baseline outlive its last activity.
	baselineTTL = 30 * 24 * time.Hour
	// exportTTL is how long the export marker outlives a subject's last export: a user who
	// exports again after that is alerted as exporting for the first time.
	exportTTL = 400 * 24 * time.Hour
	// maxRefs is the number of request references kept per subject.
	maxRefs = 5
)

// minuteOf is t's Unix minute.
func minuteOf(t time.Time) int64 { return t.UnixMilli() / 60000 }

// minuteTime is the start of Unix minute m.
func minuteTime(m int64) time.Time { return time.UnixMilli(m * 60000).UTC() }

// encodeRefs writes refs one per line, "trace request", "-" for an empty id.
func encodeRefs(refs []Ref) string {
	var b strings.Builder
	for i, r := range refs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(refField(r.TraceID))
		b.WriteByte(' ')
		b.WriteString(refField(r.RequestID))
	}
	return b.String()
}

func refField(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if s == "" || s == "-" {
		return "-"
	}
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

// cleanRef is an id as it comes back from the store: without spaces or control
// characters, at most 128 bytes.
func cleanRef(s string) string {
	if s = refField(s); s == "-" {
		return ""
	}
	return s
}

func decodeRefs(s string) []Ref {
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	refs := make([]Ref, 0, len(lines))
	for _, l := range lines {
		tr, rq, _ := strings.Cut(l, " ")
		if tr == "-" {
			tr = ""
		}
		if rq == "-" {
			rq = ""
		}
		refs = append(refs, Ref{TraceID: tr, RequestID: rq})
	}
	return refs
}

// slotStat is one hour-of-week slot's baseline.
type slotStat struct {
	n              int64
	mean, variance float64
}

// fold adds one finished minute's records x; observe.lua's fold does the same.
func (s *slotStat) fold(x float64, p Params, floor float64) {
	if s.n == 0 {
		*s = slotStat{n: 1, mean: x}
		return
	}
	if s.n >= p.MinSamples {
		if bound := max(floor, s.mean+p.K*math.Sqrt(s.variance)); x > bound {
			x = bound
		}
	}
	a := max(p.Alpha, 1/float64(s.n+1))
	d := x - s.mean
	inc := a * d
	s.mean += inc
	s.variance = (1 - a) * (s.variance + d*inc)
	s.n++
}

// bucketWidth is the width of the sliding window's buckets, in milliseconds; the window is
// six of them, the ring holds seven.
const bucketWidth = 10_000

// bucket is one 10-second bucket of the sliding window.
type bucket struct {
	idx, n int64
	ok     bool
}

// sliding sums the ring's buckets within the 60 s before now (ms): the buckets that began
// in it, and the one it begins in, prorated; and the start of the oldest bucket counted
// (-1 when none). observe.lua does the same.
func sliding(ring *[7]bucket, now int64) (sum, since int64) {
	cur := floorDiv(now, bucketWidth)
	frac := float64(now-cur*bucketWidth) / bucketWidth
	since = -1
	for _, b := range ring {
		if !b.ok || b.n <= 0 {
			continue
		}
		var add int64
		switch {
		case b.idx >= cur-5:
			add = b.n
		case b.idx == cur-6:
			add = int64(math.Floor(float64(b.n)*(1-frac) + 0.5))
		}
		if add > 0 {
			sum += add
			if since < 0 || b.idx*bucketWidth < since {
				since = b.idx * bucketWidth
			}
		}
	}
	return sum, since
}

// floorDiv is a/b rounded down, as Lua's math.floor(a / b).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
