package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options are what the HTTP notifiers share. The zero value is usable.
type Options struct {
	// Client sends the requests; nil means a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock signature timestamps are taken from; nil means time.Now.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// vendorReply is the JSON answer of the chat services: DingTalk and WeCom answer
// {"errcode":0,"errmsg":"ok"}, Feishu/Lark {"code":0,"msg":"success"} (and, for older
// clients, "StatusCode"/"StatusMessage").
type vendorReply struct {
	ErrCode       *int   `json:"errcode"`
	ErrMsg        string `json:"errmsg"`
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// checkReply reads a chat service's JSON answer: a non-zero code is an error, retried when
// retry lists it (rate limits, "system busy").
func checkReply(status int, body []byte, retry ...int) error {
	var r vendorReply
	if err := json.Unmarshal(body, &r); err != nil {
		return &DeliveryError{Status: status, Msg: "unreadable answer: " + snippet(body)}
	}
	code, msg := 0, ""
	switch {
	case r.ErrCode != nil:
		code, msg = *r.ErrCode, r.ErrMsg
	case r.Code != nil:
		code, msg = *r.Code, r.Msg
	case r.StatusCode != nil:
		code, msg = *r.StatusCode, r.StatusMessage
	default:
		return &DeliveryError{Status: status, Msg: "answer without a result code: " + snippet(body)}
	}
	if code == 0 {
		return nil
	}
	e := &DeliveryError{Status: status, Code: code, Msg: msg}
	for _, c := range retry {
		if c == code {
			e.Retry = true
		}
	}
	return e
}

// hmacBase64 is base64(HMAC-SHA256(key, msg)).
func hmacBase64(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// DingTalk posts Markdown messages to a DingTalk group's custom robot (自定义机器人).
//
// Format, per DingTalk's "自定义机器人发送群消息"
// (https://open.dingtalk.com/document/robots/custom-robot-access): POST the webhook URL
// https://oapi.dingtalk.com/robot/send?access_token=… with
// {"msgtype":"markdown","markdown":{"title":…,"text":…}}. With the "加签" security setting
// (https://open.dingtalk.com/document/robots/customize-robot-security-settings) the URL also
// carries timestamp (milliseconds) and sign = urlEncode(base64(HmacSHA256(key: secret,
// message: timestamp+"\n"+secret))), UTF-8 throughout; the timestamp must be within an hour
// of DingTalk's clock. The answer is {"errcode":0,"errmsg":"ok"}; errcode 130101 is the
// 20-messages-a-minute limit, -1 "system busy": both are retried. A robot with the "自定义关键词"
// setting needs a keyword in the message: every title starts with "Veil".
type DingTalk struct {
	u      *url.URL
	secret string
	o      Options
}

// NewDingTalk returns a notifier for the robot at webhookURL; secret is the "加签" secret
// (SEC…), "" when the robot does not sign.
func NewDingTalk(webhookURL, secret string, o Options) (*DingTalk, error) {
	u, err := checkURL(webhookURL)
	if err != nil {
		return nil, fmt.Errorf("notify: dingtalk: %w", err)
	}
	return &DingTalk{u: u, secret: secret, o: o}, nil
}

// Notify implements Notifier.
func (d *DingTalk) Notify(ctx context.Context, m Message) error {
	body, err := json.Marshal(map[string]any{
		"msgtype":  "markdown",
		"markdown": map[string]string{"title": m.Title(), "text": truncate(m.Markdown(), 18000)},
	})
	if err != nil {
		return fmt.Errorf("notify: dingtalk: %w", err)
	}
	status, h, resp, err := post(ctx, d.o.Client, d.sign(), body, nil)
	if err != nil {
		return err
	}
	if err := checkStatus(status, h, resp); err != nil {
		return err
	}
	return checkReply(status, resp, 130101, -1)
}

// sign returns the URL to post to: the webhook URL, with timestamp and sign when the robot
// has a secret.
func (d *DingTalk) sign() string {
	if d.secret == "" {
		return d.u.String()
	}
	ts := strconv.FormatInt(d.o.now().UnixMilli(), 10)
	u := *d.u
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", hmacBase64(d.secret, ts+"\n"+d.secret)) // Query().Encode url-encodes it
	u.RawQuery = q.Encode()
	return u.String()
}

// LogValue implements slog.LogValuer: the URL's token and the secret stay out of logs.
func (d *DingTalk) LogValue() slog.Value { return notifierLogValue("dingtalk", d.u) }

// WeCom posts Markdown messages to a WeCom (企业微信) group robot.
//
// Format, per WeCom's "群机器人配置说明" (https://developer.work.weixin.qq.com/document/path/91770):
// POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=… with
// {"msgtype":"markdown","markdown":{"content":…}}, content at most 4096 bytes of UTF-8. The
// key in the URL is the credential; there is no signature. The answer is
// {"errcode":0,"errmsg":"ok"}; errcode 45009 is the 20-messages-a-minute limit, -1 "system
// busy": both are retried.
type WeCom struct {
	u *url.URL
	o Options
}

// NewWeCom returns a notifier for the group robot at webhookURL.
func NewWeCom(webhookURL string, o Options) (*WeCom, error) {
	u, err := checkURL(webhookURL)
	if err != nil {
		return nil, fmt.Errorf("notify: wecom: %w", err)
	}
	return &WeCom{u: u, o: o}, nil
}

// weComMax is WeCom's limit on markdown content, in bytes.
const weComMax = 4096

// Notify implements Notifier.
func (w *WeCom) Notify(ctx context.Context, m Message) error {
	body, err := json.Marshal(map[string]any{
		"msgtype":  "markdown",
		"markdown": map[string]string{"content": truncate(m.Markdown(), weComMax)},
	})
	if err != nil {
		return fmt.Errorf("notify: wecom: %w", err)
	}
	status, h, resp, err := post(ctx, w.o.Client, w.u.String(), body, nil)
	if err != nil {
		return err
	}
	if err := checkStatus(status, h, resp); err != nil {
		return err
	}
	return checkReply(status, resp, 45009, -1)
}

// LogValue implements slog.LogValuer.
func (w *WeCom) LogValue() slog.Value { return notifierLogValue("wecom", w.u) }

// Feishu posts text messages to a Feishu (飞书) or Lark group's custom bot.
//
// Format, per Feishu's "自定义机器人使用指南"
// (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot; Lark:
// https://open.larksuite.com/document/client-docs/bot-v3/add-custom-bot): POST the webhook
// URL https://open.feishu.cn/open-apis/bot/v2/hook/… (Lark: open.larksuite.com) with
// {"msg_type":"text","content":{"text":…}}, at most 20 KB. With "签名校验" the body also
// carries "timestamp" (seconds, as a string, within an hour of Feishu's clock) and
// "sign" = base64(HmacSHA256(key: timestamp+"\n"+secret, message: empty)) — unlike DingTalk,
// the string to sign is the HMAC key. The answer is {"code":0,"msg":"success"}; code 19021
// is a bad signature or timestamp, 19024 a missing keyword, 9499 a malformed body, 11232 the
// rate limit (retried).
type Feishu struct {
	u      *url.URL
	secret string
	o      Options
}

// NewFeishu returns a notifier for the custom bot at webhookURL (Feishu or Lark); secret is
// the "签名校验" secret, "" when the bot does not check signatures.
func NewFeishu(webhookURL, secret string, o Options) (*Feishu, error) {
	u, err := checkURL(webhookURL)
	if err != nil {
		return nil, fmt.Errorf("notify: feishu: %w", err)
	}
	return &Feishu{u: u, secret: secret, o: o}, nil
}

// feishuMax is Feishu's limit on a request body, in bytes, less room for the envelope.
const feishuMax = 19 << 10

// Notify implements Notifier.
func (f *Feishu) Notify(ctx context.Context, m Message) error {
	msg := map[string]any{
		"msg_type": "text",
		"content":  map[string]string{"text": truncate(m.Text(), feishuMax)},
	}
	if f.secret != "" {
		ts := strconv.FormatInt(f.o.now().Unix(), 10)
		msg["timestamp"] = ts
		msg["sign"] = hmacBase64(ts+"\n"+f.secret, "")
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("notify: feishu: %w", err)
	}
	status, h, resp, err := post(ctx, f.o.Client, f.u.String(), body, nil)
	if err != nil {
		return err
	}
	if err := checkStatus(status, h, resp); err != nil {
		return err
	}
	return checkReply(status, resp, 11232)
}

// LogValue implements slog.LogValuer.
func (f *Feishu) LogValue() slog.Value { return notifierLogValue("feishu", f.u) }

// Slack posts messages to a Slack incoming webhook.
//
// Format, per Slack's "Sending messages using incoming webhooks"
// (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks): POST
// https://hooks.slack.com/services/T…/B…/… with {"text":…}, the text in Slack's mrkdwn (&, <
// and > escaped). The answer is 200 with the body "ok"; errors are 4xx with a reason
// (invalid_payload, no_service, channel_is_archived) and are not retried; 429 (about one
// message a second per webhook) and 5xx are, after Retry-After.
type Slack struct {
	u *url.URL
	o Options
}

// NewSlack returns a notifier for the incoming webhook at webhookURL.
func NewSlack(webhookURL string, o Options) (*Slack, error) {
	u, err := checkURL(webhookURL)
	if err != nil {
		return nil, fmt.Errorf("notify: slack: %w", err)
	}
	return &Slack{u: u, o: o}, nil
}

// Notify implements Notifier.
func (s *Slack) Notify(ctx context.Context, m Message) error {
	body, err := json.Marshal(map[string]any{"text": truncate(m.render(mrkdwn), 35000)})
	if err != nil {
		return fmt.Errorf("notify: slack: %w", err)
	}
	status, h, resp, err := post(ctx, s.o.Client, s.u.String(), body, nil)
	if err != nil {
		return err
	}
	return checkStatus(status, h, resp)
}

// LogValue implements slog.LogValuer.
func (s *Slack) LogValue() slog.Value { return notifierLogValue("slack", s.u) }

// Webhook posts a message as JSON to any HTTP endpoint: an incident tool, a SIEM, a relay
// to a chat Veil has no notifier for.
//
// The body is WebhookPayload. With a secret, the request carries X-Veil-Timestamp (Unix
// seconds) and X-Veil-Signature: "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body));
// the receiver recomputes it over the raw body and rejects old timestamps. Any 2xx answer is
// success; 408, 429 and 5xx are retried.
type Webhook struct {
	u      *url.URL
	secret string
	header http.Header
	o      Options
}

// NewWebhook returns a notifier posting to endpoint; secret signs the requests ("" for no
// signature); header is added to every request (an Authorization header, say).
func NewWebhook(endpoint, secret string, header http.Header, o Options) (*Webhook, error) {
	u, err := checkURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("notify: webhook: %w", err)
	}
	return &Webhook{u: u, secret: secret, header: header.Clone(), o: o}, nil
}

// WebhookPayload is the JSON body Webhook sends. Times are RFC 3339 in the team's time zone.
type WebhookPayload struct {
	Version         int        `json:"version"` // 1
	Rule            string     `json:"rule"`
	Severity        string     `json:"severity"`
	User            string     `json:"user,omitempty"`
	Department      string     `json:"department,omitempty"`
	Resource        string     `json:"resource,omitempty"`
	Records         int        `json:"records"`
	Threshold       float64    `json:"threshold,omitempty"`
	WindowSeconds   int64      `json:"window_seconds,omitempty"`
	Budget          string     `json:"budget,omitempty"`
	Since           time.Time  `json:"since,omitzero"`
	Time            time.Time  `json:"time,omitzero"`
	TraceIDs        []string   `json:"trace_ids,omitempty"`
	RequestIDs      []string   `json:"request_ids,omitempty"`
	Restricted      bool       `json:"restricted"`
	RestrictedUntil *time.Time `json:"restricted_until,omitempty"`
	ContainFailed   bool       `json:"contain_failed,omitempty"`
	Lang            string     `json:"lang"`
	Title           string     `json:"title"`
	Text            string     `json:"text"`
}

// Payload returns the webhook body of m.
func Payload(m Message) WebhookPayload {
	p := WebhookPayload{
		Version: 1, Rule: m.Rule, Severity: m.Severity, User: m.User, Department: m.Department,
		Resource: m.Resource, Records: m.Records, Threshold: m.Threshold,
		WindowSeconds: int64(m.Window / time.Second), Budget: m.Budget, Since: m.Since, Time: m.Time,
		TraceIDs: m.TraceIDs, RequestIDs: m.RequestIDs, Restricted: m.Restricted,
		ContainFailed: m.ContainFailed, Lang: m.Lang, Title: m.Title(), Text: m.Text(),
	}
	if m.Restricted && !m.RestrictedUntil.IsZero() {
		u := m.RestrictedUntil
		p.RestrictedUntil = &u
	}
	return p
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, m Message) error {
	body, err := json.Marshal(Payload(m))
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	h := w.header.Clone()
	if w.secret != "" {
		if h == nil {
			h = http.Header{}
		}
		ts := strconv.FormatInt(w.o.now().Unix(), 10)
		h.Set("X-Veil-Timestamp", ts)
		h.Set("X-Veil-Signature", WebhookSignature(w.secret, ts, body))
	}
	status, rh, resp, err := post(ctx, w.o.Client, w.u.String(), body, h)
	if err != nil {
		return err
	}
	return checkStatus(status, rh, resp)
}

// WebhookSignature is the X-Veil-Signature of body sent at timestamp (Unix seconds, as sent
// in X-Veil-Timestamp), for receivers to compare with hmac.Equal.
func WebhookSignature(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// LogValue implements slog.LogValuer.
func (w *Webhook) LogValue() slog.Value { return notifierLogValue("webhook", w.u) }

// Console writes each message as one line to a writer: the alerts of `veil demo`.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole returns a notifier writing to w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Notify implements Notifier.
func (c *Console) Notify(_ context.Context, m Message) error {
	line := strings.Join(strings.Split(m.Text(), "\n"), " | ")
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.w, line); err != nil {
		return fmt.Errorf("notify: console: %w", err)
	}
	return nil
}

func notifierLogValue(kind string, u *url.URL) slog.Value {
	return slog.GroupValue(slog.String("type", kind), slog.String("host", u.Host))
}
