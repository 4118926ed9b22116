package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// style is how text is marked up for a destination.
type style int

const (
	plain    style = iota // no markup: Feishu text, webhooks, the console
	markdown              // DingTalk and WeCom markdown
	mrkdwn                // Slack's mrkdwn
)

// Title is a one-line summary: "Veil 告警·严重：导出量超阈值 · alice".
func (m Message) Title() string {
	p := phrasesFor(m.Lang)
	subject := m.User
	if subject == "" {
		subject = m.Department
	}
	t := p.alert + p.sep + p.severity(m.Severity) + p.colon + p.rule(m.Rule)
	if subject != "" {
		t += " · " + clean(subject)
	}
	return t
}

// Text is the message as plain text, one fact per line.
func (m Message) Text() string { return m.render(plain) }

// Markdown is the message in the Markdown subset DingTalk and WeCom robots render.
func (m Message) Markdown() string { return m.render(markdown) }

// render writes the message: the title, what happened, the facts to investigate with,
// containment and what to do.
func (m Message) render(s style) string {
	p := phrasesFor(m.Lang)
	v := func(x string) string { return value(s, x) }
	var lines []string
	title := p.alert + p.sep + p.severity(m.Severity) + p.colon + p.rule(m.Rule)
	switch s {
	case markdown:
		lines = append(lines, "### "+title)
	case mrkdwn:
		lines = append(lines, "*"+escapeSlack(title)+"*")
	default:
		lines = append(lines, "["+title+"]")
	}
	lines = append(lines, p.headline(m, v))
	field := func(label, val string) {
		if val == "" {
			return
		}
		switch s {
		case markdown:
			lines = append(lines, "**"+label+"**"+p.colon+val)
		case mrkdwn:
			lines = append(lines, "*"+label+"*"+p.colon+val)
		default:
			lines = append(lines, label+p.colon+val)
		}
	}
	if m.User != "" && m.Department != "" {
		field(p.department, v(m.Department))
	}
	if m.Resource != "" {
		field(p.resource, v(m.Resource))
	}
	if !m.Since.IsZero() {
		field(p.since, formatTime(m.Since))
	}
	if !m.Time.IsZero() {
		field(p.time, formatTime(m.Time))
	}
	field(p.traces, list(v, m.TraceIDs))
	field(p.requests, list(v, m.RequestIDs))
	switch {
	case m.Restricted:
		lines = append(lines, p.restricted(formatTime(m.RestrictedUntil), v(m.User), v("veil users release "+clean(m.User))))
	case m.ContainFailed:
		lines = append(lines, p.containFailed)
	}
	if a := p.advice[m.Rule]; a != "" {
		field(p.todo, a)
	}
	sep := "\n"
	if s == markdown {
		sep = "\n\n" // DingTalk joins single newlines into one paragraph
	}
	return strings.Join(lines, sep)
}

// phrases are the words of one language.
type phrases struct {
	alert, sep, colon                       string
	severities, rules                       map[string]string
	department, resource, since, time, todo string
	traces, requests                        string
	containFailed                           string
	restricted                              func(until, user, command string) string
	headline                                func(m Message, v func(string) string) string
	advice                                  map[string]string
}

func (p *phrases) severity(s string) string {
	if t, ok := p.severities[s]; ok {
		return t
	}
	return clean(s)
}

func (p *phrases) rule(r string) string {
	if t, ok := p.rules[r]; ok {
		return t
	}
	return clean(r)
}

// phrasesFor returns the phrases of lang: English for "en" and its variants, Chinese
// otherwise (Veil's home market; the default).
func phrasesFor(lang string) *phrases {
	l := strings.ToLower(lang)
	if l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_") {
		return &english
	}
	return &chinese
}

var chinese = phrases{
	alert: "Veil 告警", sep: "·", colon: "：",
	severities: map[string]string{SeverityInfo: "提示", SeverityWarning: "警告", SeverityCritical: "严重"},
	rules: map[string]string{
		RuleVolume:      "导出量超阈值",
		RuleBaseline:    "导出量远超常态",
		RuleFirstExport: "首次导出",
		RuleAfterHours:  "非工作时间导出",
		RuleBudget:      "导出额度即将用尽",
		RuleProbing:     "频繁被拒（疑似试探）",
	},
	department: "部门", resource: "资源", since: "开始时间", time: "告警时间", todo: "处理建议",
	traces: "Trace ID", requests: "请求 ID",
	containFailed: "该规则要求自动限制账户，但限制失败：请立即手动处理。",
	restricted: func(until, user, command string) string {
		return "已自动限制账户 " + user + " 至 " + until + "：所有字段隐去，导出额度为零。安全管理员核实后解除：" + command
	},
	headline: func(m Message, v func(string) string) string {
		who := "用户 " + v(m.User)
		if m.User == "" {
			who = "部门 " + v(m.Department)
		}
		res := "记录"
		if m.Resource != "" {
			res = " " + v(m.Resource) + " 记录"
		}
		n, th := number(m.Records), number(int(m.Threshold+0.5))
		switch m.Rule {
		case RuleVolume:
			return fmt.Sprintf("%s 在 %s内取走 %s 条%s，超过阈值 %s 条。", who, windowZH(m.Window), n, res, th)
		case RuleBaseline:
			return fmt.Sprintf("%s 在 %s内取走 %s 条%s，远高于其在每周这一时段的常态（上限约 %s 条）。", who, windowZH(m.Window), n, res, th)
		case RuleFirstExport:
			return fmt.Sprintf("%s 第一次导出数据：%s 条%s。", who, n, res)
		case RuleAfterHours:
			return fmt.Sprintf("%s 在非工作时间取走 %s 条%s。", who, n, res)
		case RuleBudget:
			return fmt.Sprintf("%s 已用掉导出额度 %s 的 %s（%s / %s 条）。", who, v(m.Budget), percent(m.Records, m.Threshold), n, th)
		case RuleProbing:
			return fmt.Sprintf("%s 在 %s内有 %s 次请求被拒绝（阈值 %s 次），可能在试探权限。", who, windowZH(m.Window), n, th)
		}
		return fmt.Sprintf("%s 触发规则 %s：%s 条%s。", who, v(m.Rule), n, res)
	},
	advice: map[string]string{
		RuleVolume:      "在审计日志中按用户和时间查看其读取内容（veil audit），联系本人或主管核实用途；无法解释时限制账户。",
		RuleBaseline:    "与其平时的工作对比（资源、时段）：可能是新任务，也可能是批量导出；无法解释时按导出量超阈值处理。",
		RuleFirstExport: "确认其岗位是否需要导出；不需要则在策略中收回导出权限。",
		RuleAfterHours:  "确认是否为值班或加班任务；否则按可疑导出处理。",
		RuleBudget:      "若是正常工作量，在策略数据中调高该额度；否则核实用途。",
		RuleProbing:     "在审计日志中查看被拒绝的请求（decision=deny）及原因：脚本或越权尝试应立即处理。",
	},
}

var english = phrases{
	alert: "Veil alert", sep: " · ", colon: ": ",
	severities: map[string]string{SeverityInfo: "info", SeverityWarning: "warning", SeverityCritical: "critical"},
	rules: map[string]string{
		RuleVolume:      "export volume over threshold",
		RuleBaseline:    "export volume far above normal",
		RuleFirstExport: "first export",
		RuleAfterHours:  "export outside working hours",
		RuleBudget:      "export budget nearly spent",
		RuleProbing:     "repeated denials (probing)",
	},
	department: "Department", resource: "Resource", since: "Since", time: "Alert time", todo: "What to do",
	traces: "Trace IDs", requests: "Request IDs",
	containFailed: "The rule asks to restrict the account, and restricting it failed: act manually now.",
	restricted: func(until, user, command string) string {
		return "Account " + user + " is restricted until " + until + ": every field redacted, export budgets zero. A security admin lifts it after review with " + command
	},
	headline: func(m Message, v func(string) string) string {
		who := v(m.User)
		if m.User == "" {
			who = "Department " + v(m.Department)
		}
		res := "records"
		if m.Resource != "" {
			res = v(m.Resource) + " records"
		}
		n, th := number(m.Records), number(int(m.Threshold+0.5))
		switch m.Rule {
		case RuleVolume:
			return fmt.Sprintf("%s took %s %s in %s, over the threshold of %s.", who, n, res, windowEN(m.Window), th)
		case RuleBaseline:
			return fmt.Sprintf("%s took %s %s in %s, far above their usual for this hour of the week (up to about %s).", who, n, res, windowEN(m.Window), th)
		case RuleFirstExport:
			return fmt.Sprintf("%s exported data for the first time: %s %s.", who, n, res)
		case RuleAfterHours:
			return fmt.Sprintf("%s took %s %s outside working hours.", who, n, res)
		case RuleBudget:
			return fmt.Sprintf("%s has used %s of export budget %s (%s of %s records).", who, percent(m.Records, m.Threshold), v(m.Budget), n, th)
		case RuleProbing:
			return fmt.Sprintf("%s had %s requests denied in %s (threshold %s): possibly probing for access.", who, n, windowEN(m.Window), th)
		}
		return fmt.Sprintf("%s triggered rule %s: %s %s.", who, v(m.Rule), n, res)
	},
	advice: map[string]string{
		RuleVolume:      "Look up what they read in the audit log (veil audit, by user and time) and ask them or their lead why; if nobody can explain it, restrict the account.",
		RuleBaseline:    "Compare with their usual work (resources, hours): a new task or a bulk export; if unexplained, treat it as a volume alert.",
		RuleFirstExport: "Check that their job needs exports; if not, take the export right away in the policy.",
		RuleAfterHours:  "Check for an on-call or overtime task; otherwise treat it as a suspicious export.",
		RuleBudget:      "If this is normal work, raise the budget in policy data; otherwise ask what it is for.",
		RuleProbing:     "Look at the denied requests in the audit log (decision=deny) and their reasons: a script or an attempt to get around the policy needs action now.",
	},
}

// value formats a value that came from a request (a user id, a resource name) for style s:
// control characters removed, length capped, and in Markdown inside a code span, so that a
// crafted name cannot add links, mentions or formatting to the security team's chat.
func value(s style, x string) string {
	x = clean(x)
	switch s {
	case markdown:
		return "`" + strings.ReplaceAll(x, "`", "'") + "`"
	case mrkdwn:
		return "`" + escapeSlack(strings.ReplaceAll(x, "`", "'")) + "`"
	}
	return x
}

// maxValue caps a value's length in runes.
const maxValue = 128

// clean removes control and format characters (newlines, bidi overrides) and caps the length.
func clean(x string) string {
	var b strings.Builder
	n := 0
	for _, r := range x {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if n == maxValue {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// escapeSlack escapes the three characters Slack's mrkdwn reserves for links and mentions.
func escapeSlack(x string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(x)
}

// list joins at most maxIDs values.
func list(v func(string) string, xs []string) string {
	const maxIDs = 5
	out := make([]string, 0, min(len(xs), maxIDs))
	for _, x := range xs {
		if x == "" {
			continue
		}
		if len(out) == maxIDs {
			break
		}
		out = append(out, v(x))
	}
	return strings.Join(out, ", ")
}

// formatTime writes t in its own location, to the second.
func formatTime(t time.Time) string { return t.Format("2006-01-02 15:04:05 -07:00") }

// number writes n with thousands separators: 12,345.
func number(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// percent writes used/limit as a whole percentage.
func percent(used int, limit float64) string {
	if limit <= 0 {
		return "100%"
	}
	return strconv.Itoa(int(float64(used)*100/limit)) + "%"
}

func windowZH(d time.Duration) string {
	switch {
	case d <= 0:
		return "短时间"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " 小时"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + " 分钟"
	}
	return strconv.Itoa(int((d+time.Second-1)/time.Second)) + " 秒"
}

func windowEN(d time.Duration) string {
	unit := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + one + "s"
	}
	switch {
	case d <= 0:
		return "a short time"
	case d%time.Hour == 0:
		return unit(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int(d/time.Minute), "minute")
	}
	return unit(int((d+time.Second-1)/time.Second), "second")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
