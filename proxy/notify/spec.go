package notify

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

// Spec describes one target as the configuration names it (docs/alerts.md). URL and Secret
// are the resolved secrets: the caller reads them from the environment or a file, never
// from the configuration file itself.
type Spec struct {
	// Name identifies the target in metrics and logs.
	Name string
	// Type is webhook, dingtalk, wecom, feishu, lark, slack or console.
	Type string
	// URL is the webhook URL (with its token); unused by console.
	URL string
	// Secret is the signing secret: DingTalk 加签, Feishu/Lark 签名校验, the webhook's
	// X-Veil-Signature; "" for none. WeCom and Slack do not sign.
	Secret string
	// Header is added to every webhook request; other types ignore it.
	Header http.Header
	// Lang, MinSeverity, Rules and Departments are the Target's filters.
	Lang        string
	MinSeverity string
	Rules       []string
	Departments []string
}

// NewTarget builds the target s describes. console writes to w (nil: standard error).
func NewTarget(s Spec, o Options, w io.Writer) (Target, error) {
	switch s.Type {
	case "webhook", "dingtalk", "wecom", "feishu", "lark", "slack":
		if _, err := checkURL(s.URL); err != nil {
			return Target{}, fmt.Errorf("notify: target %q: %w", s.Name, err)
		}
	}
	t := Target{Name: s.Name, Lang: s.Lang, MinSeverity: s.MinSeverity, Rules: s.Rules, Departments: s.Departments}
	var err error
	switch s.Type {
	case "webhook":
		t.Notifier, err = NewWebhook(s.URL, s.Secret, s.Header, o)
	case "dingtalk":
		t.Notifier, err = NewDingTalk(s.URL, s.Secret, o)
	case "wecom":
		if s.Secret != "" {
			return Target{}, fmt.Errorf("notify: target %q: wecom robots do not sign: the key in the URL is the credential", s.Name)
		}
		t.Notifier, err = NewWeCom(s.URL, o)
	case "feishu", "lark":
		t.Notifier, err = NewFeishu(s.URL, s.Secret, o)
	case "slack":
		if s.Secret != "" {
			return Target{}, fmt.Errorf("notify: target %q: slack incoming webhooks do not sign: the URL is the credential", s.Name)
		}
		t.Notifier, err = NewSlack(s.URL, o)
	case "console":
		if w == nil {
			w = os.Stderr
		}
		t.Notifier = NewConsole(w)
	default:
		return Target{}, fmt.Errorf("notify: target %q: unknown type %q (want webhook, dingtalk, wecom, feishu, lark, slack or console)", s.Name, s.Type)
	}
	if err != nil {
		return Target{}, err
	}
	return t, nil
}
