package spike_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilproxy/veil/proxy/spike"
)

var cmpRules = []cmp.Option{
	cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() }),
	cmpopts.EquateEmpty(),
}

func TestParseRulesDefaults(t *testing.T) {
	def := spike.DefaultRules()
	for _, raw := range []string{"", "null", " {} "} {
		got, err := spike.ParseRules([]byte(raw))
		if err != nil {
			t.Fatalf("ParseRules(%q): %v", raw, err)
		}
		if diff := cmp.Diff(def, got, cmpRules...); diff != "" {
			t.Errorf("ParseRules(%q) differs from DefaultRules (-want +got):\n%s", raw, diff)
		}
	}
	if def.Location.String() != "Asia/Shanghai" || def.Lang != "zh-CN" || !def.Volume.Enabled || def.Volume.UserPerMinute != 1000 ||
		def.Volume.Contain != 0 || def.Baseline.Alpha != 0.1 || def.Baseline.Learning != 7*24*time.Hour || def.Probing.Window != 10*time.Minute {
		t.Errorf("DefaultRules = %+v, not the documented defaults", def)
	}
}

// TestShippedAlertsData: the data.veil.alerts proposed for the shipped policy parses.
func TestShippedAlertsData(t *testing.T) {
	b, err := os.ReadFile("testdata/alerts.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := spike.ParseRules(b)
	if err != nil {
		t.Fatalf("ParseRules(testdata/alerts.json): %v", err)
	}
	if r.Volume.Contain != 0 || r.Probing.Contain != 0 {
		t.Errorf("shipped rules contain users: containment is opt-in")
	}
}

func TestParseRulesOverrides(t *testing.T) {
	r, err := spike.ParseRules([]byte(`{
		"lang": "en-US", "timezone": "Europe/Berlin",
		"working_hours": {"days": ["mon","tue","wed","thu","fri","sat"], "start": "08:30", "end": "24:00", "holidays": ["2026-12-25"], "workdays": ["2026-12-27"]},
		"exempt_users": ["svc"], "exempt_roles": ["security_admin"],
		"volume": {"user_per_minute": 0, "department_per_minute": 9000, "contain": "2h", "severity": "warning", "cooldown": "10m"},
		"baseline": {"alpha": 0.05, "k": 3.5, "user_floor": 100, "department_floor": 1000, "min_samples": 10, "learning": "14d", "departments": false},
		"first_export": {"enabled": false, "warmup": "0s"},
		"after_hours": {"exports_only": false, "min_records": 200},
		"budget": {"share": 0.9},
		"probing": {"denials": 5, "window": "5m", "contain": "15m"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"lang", r.Lang, "en"},
		{"timezone", r.Location.String(), "Europe/Berlin"},
		{"saturday", r.WorkingHours.Days[time.Saturday], true},
		{"start", r.WorkingHours.Start, 8*time.Hour + 30*time.Minute},
		{"end", r.WorkingHours.End, 24 * time.Hour},
		{"volume", r.Volume, spike.VolumeRule{Rule: spike.Rule{Enabled: true, Severity: "warning", Cooldown: 10 * time.Minute, Contain: 2 * time.Hour}, DepartmentPerMinute: 9000}},
		{"baseline", r.Baseline, spike.BaselineRule{Rule: spike.Rule{Enabled: true, Severity: "warning", Cooldown: time.Hour}, Alpha: 0.05, K: 3.5, UserFloor: 100, DepartmentFloor: 1000, MinSamples: 10, Learning: 14 * 24 * time.Hour}},
		{"first_export", r.FirstExport.Enabled, false},
		{"after_hours", r.AfterHours, spike.AfterHoursRule{Rule: spike.Rule{Enabled: true, Severity: "warning", Cooldown: 2 * time.Hour}, MinRecords: 200}},
		{"budget", r.Budget.Share, 0.9},
		{"probing", r.Probing, spike.ProbingRule{Rule: spike.Rule{Enabled: true, Severity: "warning", Cooldown: 30 * time.Minute, Contain: 15 * time.Minute}, Denials: 5, Window: 5 * time.Minute}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"volumes": {}}`, `unknown field "volumes"`},
		{`{"volume": {"user_per_minut": 5}}`, `unknown field "user_per_minut"`},
		{`[]`, "cannot unmarshal array"},
		{`{} {}`, "trailing data"},
		{`{"lang": "fr"}`, `lang "fr"`},
		{`{"timezone": "Mars/Olympus"}`, "not an IANA time zone"},
		{`{"timezone": ""}`, "not an IANA time zone"},
		{`{"working_hours": {"days": ["monday"]}}`, `"monday"`},
		{`{"working_hours": {"start": "9:00"}}`, "want HH:MM"},
		{`{"working_hours": {"start": "19:00", "end": "09:00"}}`, "is not before end"},
		{`{"working_hours": {"holidays": ["2026-13-01"]}}`, "want YYYY-MM-DD"},
		{`{"volume": {"user_per_minute": -1}}`, "must not be negative"},
		{`{"volume": {"severity": "loud"}}`, `volume.severity "loud"`},
		{`{"volume": {"cooldown": "10s"}}`, "volume.cooldown"},
		{`{"volume": {"cooldown": "31d"}}`, "volume.cooldown"},
		{`{"volume": {"contain": "30s"}}`, "want 0 (off) or at least 1m"},
		{`{"volume": {"contain": "forever"}}`, "volume.contain"},
		{`{"baseline": {"alpha": 0}}`, "baseline.alpha"},
		{`{"baseline": {"alpha": 1.5}}`, "baseline.alpha"},
		{`{"baseline": {"k": -1}}`, "must not be negative"},
		{`{"baseline": {"min_samples": 0}}`, "baseline.min_samples"},
		{`{"baseline": {"learning": "-1d"}}`, "baseline.learning"},
		{`{"baseline": {"learning": "99999999999d"}}`, "baseline.learning"},
		{`{"after_hours": {"min_records": 0}}`, "after_hours.min_records"},
		{`{"budget": {"share": 0}}`, "budget.share"},
		{`{"budget": {"share": 1.2}}`, "budget.share"},
		{`{"probing": {"denials": 0}}`, "probing.denials"},
		{`{"probing": {"window": "90s"}}`, "whole minutes"},
		{`{"probing": {"window": "30s"}}`, "probing.window"},
	} {
		_, err := spike.ParseRules([]byte(tc.raw))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRules(%s) = %v, want an error containing %q", tc.raw, err, tc.want)
		}
	}
	// every problem is reported at once
	_, err := spike.ParseRules([]byte(`{"lang": "fr", "budget": {"share": 2}}`))
	if err == nil || !strings.Contains(err.Error(), "lang") || !strings.Contains(err.Error(), "budget.share") {
		t.Errorf("two mistakes: %v, want both named", err)
	}
}

func TestWorking(t *testing.T) {
	r := mustRules(t, `{"working_hours": {"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "18:30",
		"holidays": ["2026-10-01"], "workdays": ["2026-10-11"]}}`)
	cst := r.Location
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 30, 9, 0, 0, 0, cst), true},    // Monday, opening
		{time.Date(2026, 11, 30, 8, 59, 59, 0, cst), false}, // before
		{time.Date(2026, 11, 30, 18, 29, 0, 0, cst), true},
		{time.Date(2026, 11, 30, 18, 30, 0, 0, cst), false}, // closing
		{time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), false}, // 20:00 in Beijing
		{time.Date(2026, 12, 5, 10, 0, 0, 0, cst), false},       // Saturday
		{time.Date(2026, 10, 1, 10, 0, 0, 0, cst), false},       // National Day, a Thursday
		{time.Date(2026, 10, 11, 10, 0, 0, 0, cst), true},       // a Sunday worked (调休)
	} {
		if got := r.Working(tc.at); got != tc.want {
			t.Errorf("Working(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
