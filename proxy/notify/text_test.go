package notify_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veilproxy/veil/proxy/notify"
)

func TestTextEveryRuleAndLanguage(t *testing.T) {
	rules := []string{notify.RuleVolume, notify.RuleBaseline, notify.RuleFirstExport, notify.RuleAfterHours, notify.RuleBudget, notify.RuleProbing}
	for _, lang := range []string{notify.LangZH, notify.LangEN} {
		for _, rule := range rules {
			for _, dept := range []bool{false, true} {
				m := sample(lang)
				m.Rule, m.Budget, m.Records, m.Threshold, m.Restricted = rule, "customer-export", 1700, 2000, false
				if dept {
					m.User = ""
				}
				for name, s := range map[string]string{"Title": m.Title(), "Text": m.Text(), "Markdown": m.Markdown()} {
					if strings.Contains(s, "%!") || strings.Contains(s, "<nil>") {
						t.Errorf("%s %s %s: formatting error in %q", lang, rule, name, s)
					}
				}
				text := m.Text()
				for _, want := range []string{"1,700", "req-1"} {
					if !strings.Contains(text, want) {
						t.Errorf("%s %s (department %v): text lacks %q:\n%s", lang, rule, dept, want, text)
					}
				}
				if rule == notify.RuleBudget && !strings.Contains(text, "85%") {
					t.Errorf("%s budget: text lacks the share 85%%:\n%s", lang, text)
				}
				if dept && !strings.Contains(text, "cs") {
					t.Errorf("%s %s: a department alert does not name the department:\n%s", lang, rule, text)
				}
			}
		}
	}
}

func TestTextLanguages(t *testing.T) {
	for _, tc := range []struct{ lang, want string }{
		{"zh-CN", "告警"}, {"zh", "告警"}, {"", "告警"}, {"fr", "告警"},
		{"en", "alert"}, {"en-US", "alert"}, {"EN_gb", "alert"},
	} {
		m := sample(tc.lang)
		if got := m.Title(); !strings.Contains(got, tc.want) {
			t.Errorf("Title with lang %q = %q, want it to contain %q", tc.lang, got, tc.want)
		}
	}
}

// TestTextNeutralisesNames: a user id or resource name is data from a request; in a chat
// it must not add links, mentions, lines or formatting.
func TestTextNeutralisesNames(t *testing.T) {
	m := sample(notify.LangEN)
	m.User = "eve`](https://evil.example)\n**@all**\u202e"
	m.Resource = strings.Repeat("x", 500)
	md := m.Markdown()
	if !strings.Contains(md, "`eve'](https://evil.example)**@all**`") {
		t.Errorf("Markdown does not hold the user inside one code span without newlines or bidi overrides:\n%s", md)
	}
	if strings.Contains(md, "\u202e") || strings.Contains(m.Text(), "\n**@all") {
		t.Errorf("control characters survived:\n%s", md)
	}
	if strings.Contains(md, strings.Repeat("x", 129)) || !strings.Contains(md, strings.Repeat("x", 128)+"…") {
		t.Errorf("a 500-character resource name is not capped at 128 characters")
	}
}

func TestTextWindows(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		zh, en string
	}{
		{time.Minute, "1 分钟", "1 minute"},
		{10 * time.Minute, "10 分钟", "10 minutes"},
		{2 * time.Hour, "2 小时", "2 hours"},
		{90 * time.Second, "90 秒", "90 seconds"},
	} {
		m := sample(notify.LangZH)
		m.Rule, m.Window = notify.RuleProbing, tc.d
		if got := m.Text(); !strings.Contains(got, "在 "+tc.zh+"内") {
			t.Errorf("zh window %v: text lacks %q:\n%s", tc.d, tc.zh, got)
		}
		m.Lang = notify.LangEN
		if got := m.Text(); !strings.Contains(got, "in "+tc.en+" ") {
			t.Errorf("en window %v: text lacks %q:\n%s", tc.d, tc.en, got)
		}
	}
}

func ExampleMessage_Text() {
	at := time.Date(2026, 11, 28, 22, 14, 5, 0, time.FixedZone("CST", 8*3600))
	m := notify.Message{
		Rule: notify.RuleAfterHours, Severity: notify.SeverityWarning, User: "alice", Department: "cs",
		Resource: "customers", Records: 300, Threshold: 1, Since: at, Time: at,
		RequestIDs: []string{"7f3a9c"}, Lang: notify.LangEN,
	}
	fmt.Println(m.Text())
	// Output:
	// [Veil alert · warning: export outside working hours]
	// alice took 300 customers records outside working hours.
	// Department: cs
	// Resource: customers
	// Since: 2026-11-28 22:14:05 +08:00
	// Alert time: 2026-11-28 22:14:05 +08:00
	// Request IDs: 7f3a9c
	// What to do: Check for an on-call or overtime task; otherwise treat it as a suspicious export.
}
