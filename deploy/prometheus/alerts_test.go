package prometheus

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// metrics are the metrics Veil exports that rules may use, with their labels.
var metrics = map[string][]string{
	"veil_records_total":            {"route", "resource", "action"},
	"veil_user_records_total":       {"user", "resource"},
	"veil_limit_rejections_total":   {"limit"},
	"veil_limit_store_errors_total": {},
	"veil_limit_fail_open_total":    {"route"},
}

var severities = []string{"critical", "warning", "info"}

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return f
}

func TestAlertRules(t *testing.T) {
	f := loadRules(t)
	if len(f.Groups) == 0 {
		t.Fatal("alerts.yml has no rule groups")
	}
	var names []string
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			t.Run(r.Alert, func(t *testing.T) {
				if r.Alert == "" {
					t.Fatal("rule without an alert name (recording rules do not belong here)")
				}
				if slices.Contains(names, r.Alert) {
					t.Errorf("alert %s defined twice", r.Alert)
				}
				names = append(names, r.Alert)
				checkExpr(t, r.Expr)
				for _, d := range []string{r.For, r.KeepFiringFor, g.Interval} {
					if _, err := model.ParseDuration(d); d != "" && err != nil {
						t.Errorf("duration %q: %v", d, err)
					}
				}
				if !slices.Contains(severities, r.Labels["severity"]) {
					t.Errorf("labels.severity = %q, want one of %v", r.Labels["severity"], severities)
				}
				for _, a := range []string{"summary", "runbook"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("annotations.%s is empty", a)
					}
				}
				if strings.Contains(r.Annotations["runbook"], "\n") {
					t.Errorf("annotations.runbook spans lines, want one line")
				}
				for k, v := range r.Annotations {
					checkTemplate(t, k, v)
				}
				checkRunbookLink(t, r.Annotations["runbook"])
			})
		}
	}
}

// checkExpr parses expr as PromQL and checks that it names only Veil's metrics and their
// labels.
func checkExpr(t *testing.T, expr string) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("expr does not parse: %v\n%s", err, expr)
	}
	labels := map[string]bool{}
	var grouping []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			known, ok := metrics[n.Name]
			if !ok {
				t.Errorf("expr uses metric %q, which Veil does not export", n.Name)
			}
			for _, l := range known {
				labels[l] = true
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !slices.Contains(known, m.Name) {
					t.Errorf("expr matches label %q of %s, which has labels %v", m.Name, n.Name, known)
				}
			}
		case *parser.AggregateExpr:
			grouping = append(grouping, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				grouping = append(grouping, n.VectorMatching.MatchingLabels...)
				grouping = append(grouping, n.VectorMatching.Include...)
			}
		}
		return nil
	})
	for _, l := range grouping {
		if !labels[l] {
			t.Errorf("expr groups or matches by label %q, which none of its metrics has", l)
		}
	}
}

// checkTemplate parses an annotation as a Prometheus alert template (Go text/template with
// Prometheus' functions, stubbed here).
func checkTemplate(t *testing.T, name, text string) {
	t.Helper()
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "title", "toUpper", "toLower", "reReplaceAll", "match", "args", "first", "label", "value", "query", "safeHtml", "stripPort", "externalURL", "pathPrefix"} {
		funcs[f] = func(...any) any { return nil }
	}
	if _, err := template.New(name).Funcs(funcs).Parse("{{$labels := .Labels}}{{$value := .Value}}" + text); err != nil {
		t.Errorf("annotations.%s is not a valid template: %v", name, err)
	}
}

var linkRE = regexp.MustCompile(`docs/[a-z0-9_-]+\.md(#[a-z0-9_-]+)?`)

// checkRunbookLink checks that the runbook links a section of the docs. Links into
// docs/budgets.md (this package's companion) must resolve; the others are checked when
// their file exists (docs/operations.md is written with the proxy).
func checkRunbookLink(t *testing.T, runbook string) {
	t.Helper()
	link := linkRE.FindString(runbook)
	if link == "" || !strings.Contains(link, "#") {
		t.Errorf("runbook %q links no docs/<file>.md#<section>", runbook)
		return
	}
	file, anchor, _ := strings.Cut(link, "#")
	b, err := os.ReadFile(filepath.Join("..", "..", file))
	if errors.Is(err, os.ErrNotExist) && file != "docs/budgets.md" {
		return
	}
	if err != nil {
		t.Errorf("runbook links %s: %v", file, err)
		return
	}
	if !slices.Contains(anchors(string(b)), anchor) {
		t.Errorf("runbook links %s, which has no heading with anchor #%s", link, anchor)
	}
}

// anchors returns the GitHub-style anchors of a Markdown file's headings.
func anchors(md string) []string {
	var out []string
	for line := range strings.SplitSeq(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ' || r == '-':
				b.WriteByte('-')
			case r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r > 0x7f:
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestAlertRulesPromtool runs promtool's own rule checks and the unit tests in
// alerts_test.yml. promtool comes with the Debian package prometheus; CI must have it, a
// developer's machine may not.
func TestAlertRulesPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not on PATH: CI must install it (apt-get install prometheus)")
		}
		t.Skip("promtool not on PATH (apt-get install prometheus): alerts_test.yml not run")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
