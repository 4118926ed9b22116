package spike

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // working hours need the team's time zone even where the image has no zoneinfo

	"github.com/veilproxy/veil/proxy/notify"
)

// Rules are the alert rules, as the policy data data.veil.alerts sets them; docs/alerts.md
// lists every key and its default. Build them with ParseRules or DefaultRules: the zero value
// has every rule off.
type Rules struct {
	// Lang is the language of the messages: zh-CN or en.
	Lang string
	// Location is the team's time zone: working hours and the baseline's hours of the week
	// are read in it, and message times are written in it.
	Location *time.Location
	// WorkingHours are the team's working days and hours.
	WorkingHours WorkingHours
	// ExemptUsers and ExemptRoles are never judged (service accounts, the security team).
	ExemptUsers []string
	ExemptRoles []string

	Volume      VolumeRule
	Baseline    BaselineRule
	FirstExport FirstExportRule
	AfterHours  AfterHoursRule
	Budget      BudgetRule
	Probing     ProbingRule
}

// Rule is what every alert rule has.
type Rule struct {
	// Enabled turns the rule on.
	Enabled bool
	// Severity is info, warning or critical; notifiers filter on it.
	Severity string
	// Cooldown is how long after an alert the same rule stays quiet for the same subject
	// (user, department, budget), across all replicas: one spike, one message.
	Cooldown time.Duration
	// Contain, when positive, restricts the user for that long when the rule fires
	// (input.user.restricted). 0 alerts only. Department alerts never contain.
	Contain time.Duration
}

// VolumeRule alerts when a user or a department takes more records in a minute than an
// absolute threshold.
type VolumeRule struct {
	Rule
	// UserPerMinute and DepartmentPerMinute are the thresholds; 0 turns that half off.
	UserPerMinute       int64
	DepartmentPerMinute int64
}

// BaselineRule alerts when a user (or department) takes far more records in a minute than
// usual for that hour of the week: more than max(floor, mean + K·stddev) of the exponentially
// weighted mean and deviation of their active minutes in that hour-of-week slot.
type BaselineRule struct {
	Rule
	// Alpha is the weight of a new minute in the moving mean and variance, in (0, 1]: about
	// the last 2/Alpha active minutes of the slot count.
	Alpha float64
	// K is the number of standard deviations above the mean that alerts.
	K float64
	// UserFloor and DepartmentFloor are the counts below which nothing alerts, however
	// steady the subject usually is.
	UserFloor       float64
	DepartmentFloor float64
	// MinSamples is the number of active minutes a slot must have seen before it alerts.
	MinSamples int64
	// Learning is how long Veil must have known the subject before its baseline alerts.
	Learning time.Duration
	// Departments judges departments against their baseline too.
	Departments bool
}

// FirstExportRule alerts on the first export a user ever makes (as far as Veil has seen).
type FirstExportRule struct {
	Rule
	// Warmup is how long after detection first started no first-export alert is sent:
	// at rollout every user's next export is their first that Veil sees.
	Warmup time.Duration
}

// AfterHoursRule alerts when a user takes records outside working hours.
type AfterHoursRule struct {
	Rule
	// ExportsOnly counts export requests only (true) or any records (false).
	ExportsOnly bool
	// MinRecords is the number of records in a minute that alerts.
	MinRecords int64
}

// BudgetRule alerts when a user has used Share of an export budget.
type BudgetRule struct {
	Rule
	// Share is the used fraction that alerts, in (0, 1].
	Share float64
}

// ProbingRule alerts when a user is denied repeatedly: a script or a person testing what the
// policy lets through.
type ProbingRule struct {
	Rule
	// Denials is the number of denied requests in Window that alerts.
	Denials int64
	// Window is the span denials are counted over, whole minutes.
	Window time.Duration
}

// WorkingHours are the team's working days and hours in Rules.Location.
type WorkingHours struct {
	// Days are the working weekdays.
	Days [7]bool
	// Start and End are the working day's bounds, as offsets from midnight; Start < End.
	Start, End time.Duration
	// Holidays are dates ("2006-01-02") that are not working days; Workdays are dates that
	// are, whatever their weekday (调休 weekends).
	Holidays map[string]bool
	Workdays map[string]bool
}

// Working reports whether t is within working hours.
func (r Rules) Working(t time.Time) bool {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	w := r.WorkingHours
	date := t.Format(time.DateOnly)
	day := w.Days[t.Weekday()]
	if w.Holidays[date] {
		day = false
	}
	if w.Workdays[date] {
		day = true
	}
	if !day {
		return false
	}
	y, m, d := t.Date()
	off := t.Sub(time.Date(y, m, d, 0, 0, 0, 0, loc))
	return off >= w.Start && off < w.End
}

// slot is the hour of the week of t in the rules' time zone, 0 (Sunday 00:00) to 167.
func (r Rules) slot(t time.Time) int {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return int(t.Weekday())*24 + t.Hour()
}

// exempt reports whether the rules never judge user (with roles).
func (r Rules) exempt(user string, roles []string) bool {
	for _, u := range r.ExemptUsers {
		if u == user {
			return true
		}
	}
	for _, x := range r.ExemptRoles {
		for _, role := range roles {
			if x == role {
				return true
			}
		}
	}
	return false
}

// rawRule is a rule as data.veil.alerts writes it.
type rawRule struct {
	Enabled  bool   `json:"enabled"`
	Severity string `json:"severity"`
	Cooldown string `json:"cooldown"`
	Contain  string `json:"contain"`
}

type rawRules struct {
	Lang         string   `json:"lang"`
	Timezone     string   `json:"timezone"`
	WorkingHours rawHours `json:"working_hours"`
	ExemptUsers  []string `json:"exempt_users"`
	ExemptRoles  []string `json:"exempt_roles"`
	Volume       struct {
		rawRule
		UserPerMinute       int64 `json:"user_per_minute"`
		DepartmentPerMinute int64 `json:"department_per_minute"`
	} `json:"volume"`
	Baseline struct {
		rawRule
		Alpha           float64 `json:"alpha"`
		K               float64 `json:"k"`
		UserFloor       float64 `json:"user_floor"`
		DepartmentFloor float64 `json:"department_floor"`
		MinSamples      int64   `json:"min_samples"`
		Learning        string  `json:"learning"`
		Departments     bool    `json:"departments"`
	} `json:"baseline"`
	FirstExport struct {
		rawRule
		Warmup string `json:"warmup"`
	} `json:"first_export"`
	AfterHours struct {
		rawRule
		ExportsOnly bool  `json:"exports_only"`
		MinRecords  int64 `json:"min_records"`
	} `json:"after_hours"`
	Budget struct {
		rawRule
		Share float64 `json:"share"`
	} `json:"budget"`
	Probing struct {
		rawRule
		Denials int64  `json:"denials"`
		Window  string `json:"window"`
	} `json:"probing"`
}

type rawHours struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Holidays []string `json:"holidays"`
	Workdays []string `json:"workdays"`
}

// defaults is data.veil.alerts with every key at its default (docs/alerts.md).
func defaults() rawRules {
	var r rawRules
	r.Lang = notify.LangZH
	r.Timezone = "Asia/Shanghai"
	r.WorkingHours = rawHours{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "09:00", End: "19:00"}
	r.Volume.rawRule = rawRule{Enabled: true, Severity: notify.SeverityCritical, Cooldown: "30m"}
	r.Volume.UserPerMinute, r.Volume.DepartmentPerMinute = 1000, 5000
	r.Baseline.rawRule = rawRule{Enabled: true, Severity: notify.SeverityWarning, Cooldown: "1h"}
	r.Baseline.Alpha, r.Baseline.K = 0.1, 4
	r.Baseline.UserFloor, r.Baseline.DepartmentFloor = 200, 2000
	r.Baseline.MinSamples, r.Baseline.Learning, r.Baseline.Departments = 20, "7d", true
	r.FirstExport.rawRule = rawRule{Enabled: true, Severity: notify.SeverityInfo, Cooldown: "24h"}
	r.FirstExport.Warmup = "7d"
	r.AfterHours.rawRule = rawRule{Enabled: true, Severity: notify.SeverityWarning, Cooldown: "2h"}
	r.AfterHours.ExportsOnly, r.AfterHours.MinRecords = true, 1
	r.Budget.rawRule = rawRule{Enabled: true, Severity: notify.SeverityWarning, Cooldown: "1h"}
	r.Budget.Share = 0.8
	r.Probing.rawRule = rawRule{Enabled: true, Severity: notify.SeverityWarning, Cooldown: "30m"}
	r.Probing.Denials, r.Probing.Window = 20, "10m"
	return r
}

// DefaultRules returns the rules with every key at its default: what a policy without
// data.veil.alerts gets.
func DefaultRules() Rules {
	r, err := defaults().rules()
	if err != nil {
		panic("spike: default rules: " + err.Error()) // a bug in defaults, caught by the tests
	}
	return r
}

// ParseRules parses data.veil.alerts. Missing keys take their defaults; unknown keys and
// invalid values are errors, so that a typo fails `veil check` instead of silencing an alert.
// An empty or null raw gives DefaultRules.
func ParseRules(raw json.RawMessage) (Rules, error) {
	r := defaults()
	if t := bytes.TrimSpace(raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return Rules{}, fmt.Errorf("spike: data.veil.alerts: %w", err)
		}
		if dec.More() {
			return Rules{}, errors.New("spike: data.veil.alerts: trailing data after the object")
		}
	}
	rules, err := r.rules()
	if err != nil {
		return Rules{}, fmt.Errorf("spike: data.veil.alerts: %w", err)
	}
	return rules, nil
}

// rules validates r and converts it.
func (r rawRules) rules() (Rules, error) {
	var out Rules
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch l := strings.ToLower(r.Lang); {
	case l == "zh" || strings.HasPrefix(l, "zh-") || strings.HasPrefix(l, "zh_"):
		out.Lang = notify.LangZH
	case l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_"):
		out.Lang = notify.LangEN
	default:
		bad("lang %q: want zh-CN or en", r.Lang)
	}
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil || r.Timezone == "" {
		bad("timezone %q: not an IANA time zone", r.Timezone)
		loc = time.UTC
	}
	out.Location = loc
	out.WorkingHours = r.WorkingHours.parse(bad)
	out.ExemptUsers = append([]string(nil), r.ExemptUsers...)
	out.ExemptRoles = append([]string(nil), r.ExemptRoles...)

	out.Volume = VolumeRule{Rule: r.Volume.parse("volume", bad),
		UserPerMinute: r.Volume.UserPerMinute, DepartmentPerMinute: r.Volume.DepartmentPerMinute}
	if out.Volume.UserPerMinute < 0 || out.Volume.DepartmentPerMinute < 0 {
		bad("volume: per-minute thresholds must not be negative")
	}

	b := r.Baseline
	out.Baseline = BaselineRule{Rule: b.parse("baseline", bad), Alpha: b.Alpha, K: b.K,
		UserFloor: b.UserFloor, DepartmentFloor: b.DepartmentFloor, MinSamples: b.MinSamples,
		Departments: b.Departments}
	out.Baseline.Learning = duration("baseline.learning", b.Learning, 0, 365*24*time.Hour, bad)
	if !(b.Alpha > 0 && b.Alpha <= 1) {
		bad("baseline.alpha %v: want 0 < alpha <= 1", b.Alpha)
	}
	if b.K < 0 || b.UserFloor < 0 || b.DepartmentFloor < 0 {
		bad("baseline: k and the floors must not be negative")
	}
	if b.MinSamples < 1 {
		bad("baseline.min_samples %d: want at least 1", b.MinSamples)
	}

	out.FirstExport = FirstExportRule{Rule: r.FirstExport.parse("first_export", bad)}
	out.FirstExport.Warmup = duration("first_export.warmup", r.FirstExport.Warmup, 0, 365*24*time.Hour, bad)

	out.AfterHours = AfterHoursRule{Rule: r.AfterHours.parse("after_hours", bad),
		ExportsOnly: r.AfterHours.ExportsOnly, MinRecords: r.AfterHours.MinRecords}
	if out.AfterHours.MinRecords < 1 {
		bad("after_hours.min_records %d: want at least 1", out.AfterHours.MinRecords)
	}

	out.Budget = BudgetRule{Rule: r.Budget.parse("budget", bad), Share: r.Budget.Share}
	if !(r.Budget.Share > 0 && r.Budget.Share <= 1) {
		bad("budget.share %v: want 0 < share <= 1", r.Budget.Share)
	}

	out.Probing = ProbingRule{Rule: r.Probing.parse("probing", bad), Denials: r.Probing.Denials}
	out.Probing.Window = duration("probing.window", r.Probing.Window, time.Minute, 24*time.Hour, bad)
	if out.Probing.Window%time.Minute != 0 {
		bad("probing.window %s: want whole minutes", r.Probing.Window)
	}
	if out.Probing.Denials < 1 {
		bad("probing.denials %d: want at least 1", out.Probing.Denials)
	}
	if err := errors.Join(errs...); err != nil {
		return Rules{}, err
	}
	return out, nil
}

func (r rawRule) parse(name string, bad func(string, ...any)) Rule {
	out := Rule{Enabled: r.Enabled, Severity: r.Severity}
	if !notify.ValidSeverity(r.Severity) {
		bad("%s.severity %q: want info, warning or critical", name, r.Severity)
	}
	out.Cooldown = duration(name+".cooldown", r.Cooldown, time.Minute, 30*24*time.Hour, bad)
	if r.Contain != "" {
		out.Contain = duration(name+".contain", r.Contain, 0, 30*24*time.Hour, bad)
		if out.Contain > 0 && out.Contain < time.Minute {
			bad("%s.contain %s: want 0 (off) or at least 1m", name, r.Contain)
		}
	}
	return out
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (h rawHours) parse(bad func(string, ...any)) WorkingHours {
	var w WorkingHours
	for _, d := range h.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			bad("working_hours.days: %q: want mon, tue, wed, thu, fri, sat or sun", d)
			continue
		}
		w.Days[wd] = true
	}
	var ok1, ok2 bool
	w.Start, ok1 = clock(h.Start)
	w.End, ok2 = clock(h.End)
	switch {
	case !ok1 || !ok2:
		bad("working_hours: start %q, end %q: want HH:MM (00:00 to 24:00)", h.Start, h.End)
	case w.Start >= w.End:
		bad("working_hours: start %s is not before end %s", h.Start, h.End)
	}
	dates := func(name string, ds []string) map[string]bool {
		m := make(map[string]bool, len(ds))
		for _, d := range ds {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				bad("working_hours.%s: %q: want YYYY-MM-DD", name, d)
				continue
			}
			m[d] = true
		}
		return m
	}
	w.Holidays = dates("holidays", h.Holidays)
	w.Workdays = dates("workdays", h.Workdays)
	return w
}

// clock parses "HH:MM" into an offset from midnight; "24:00" is the end of the day.
func clock(s string) (time.Duration, bool) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, false
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}

// duration parses a Go duration or a whole number of days ("7d") within [lo, hi].
func duration(name, s string, lo, hi time.Duration, bad func(string, ...any)) time.Duration {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		if err == nil && (days < 0 || days > 36500) {
			err = errors.New("out of range")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < lo || d > hi {
		bad("%s %q: want a duration from %s to %s", name, s, lo, hi)
		return 0
	}
	return d
}
