package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/proxy/notify"
)

// t0 is the fake clock: 2025-11-28 01:00:00 UTC, Unix 1764291600. The signatures below were
// computed with each vendor's documented Python example at this time.
var t0 = time.Unix(1764291600, 0).UTC()

func fixedNow() time.Time { return t0 }

var ctx = context.Background()

// sample is a volume alert with containment, in Beijing time.
func sample(lang string) notify.Message {
	cst := time.FixedZone("CST", 8*3600)
	return notify.Message{
		Rule: notify.RuleVolume, Severity: notify.SeverityCritical, User: "alice", Department: "cs",
		Resource: "customers", Records: 2350, Threshold: 1000, Window: time.Minute,
		Since: time.Date(2025, 11, 28, 8, 59, 0, 0, cst), Time: time.Date(2025, 11, 28, 9, 0, 12, 0, cst),
		TraceIDs: []string{"4bf92f3577b34da6a3ce929d0e0e4736"}, RequestIDs: []string{"req-1", "req-2"},
		Restricted: true, RestrictedUntil: time.Date(2025, 11, 28, 10, 0, 12, 0, cst), Lang: lang,
	}
}

// request is what a fake chat service received.
type request struct {
	method, path string
	query        url.Values
	rawQuery     string
	header       http.Header
	body         map[string]any
}

// chat is an httptest server playing a chat service: it records each request and answers
// with the next status and body of replies (the last one repeating).
type chat struct {
	*httptest.Server
	mu      sync.Mutex
	got     []request
	replies []reply
}

type reply struct {
	status int
	header map[string]string
	body   string
}

func newChat(t *testing.T, replies ...reply) *chat {
	t.Helper()
	c := &chat{replies: replies}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("%s %s: body is not JSON: %v: %q", r.Method, r.URL, err, b)
		}
		c.mu.Lock()
		c.got = append(c.got, request{method: r.Method, path: r.URL.Path, query: r.URL.Query(), rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		rp := c.replies[min(len(c.got), len(c.replies))-1]
		c.mu.Unlock()
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.status)
		_, _ = io.WriteString(w, rp.body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *chat) requests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]request(nil), c.got...)
}

// str reads a string at a path of nested JSON objects.
func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[p]
	}
	s, _ := v.(string)
	return s
}

func deliveryError(t *testing.T, err error) *notify.DeliveryError {
	t.Helper()
	var de *notify.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DeliveryError", err, err)
	}
	return de
}

func TestDingTalkSignedMarkdown(t *testing.T) {
	const secret = "SEC0123456789abcdef"
	srv := newChat(t, reply{200, nil, `{"errcode":0,"errmsg":"ok"}`})
	d, err := notify.NewDingTalk(srv.URL+"/robot/send?access_token=tok123", secret, notify.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Notify(ctx, sample(notify.LangZH)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := srv.requests()
	if len(got) != 1 {
		t.Fatalf("DingTalk got %d requests, want 1", len(got))
	}
	r := got[0]
	if r.method != http.MethodPost || r.path != "/robot/send" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("request = %s %s (%s), want POST /robot/send with JSON", r.method, r.path, r.header.Get("Content-Type"))
	}
	if r.query.Get("access_token") != "tok123" || r.query.Get("timestamp") != "1764291600000" {
		t.Errorf("query = %v, want access_token=tok123 and timestamp in milliseconds 1764291600000", r.query)
	}
	// DingTalk's documented example: sign = quote_plus(base64(hmac_sha256(secret, ts+"\n"+secret))).
	const wantSign = "0npTW2yN9OSTVNl5VfmVng%2BWJ%2B5MZwtuC2TZDjZMjIY%3D"
	if !strings.Contains(r.rawQuery, "sign="+wantSign) {
		t.Errorf("raw query %q, want sign=%s (URL-encoded once)", r.rawQuery, wantSign)
	}
	// and as DingTalk's server checks it
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(r.query.Get("timestamp") + "\n" + secret))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.query.Get("sign") != want {
		t.Errorf("decoded sign = %q, want %q", r.query.Get("sign"), want)
	}
	if str(r.body, "msgtype") != "markdown" {
		t.Errorf("msgtype = %q, want markdown", str(r.body, "msgtype"))
	}
	title, text := str(r.body, "markdown", "title"), str(r.body, "markdown", "text")
	if !strings.HasPrefix(title, "Veil") || !strings.Contains(title, "alice") {
		t.Errorf("markdown.title = %q, want it to start with Veil (the robot keyword) and name alice", title)
	}
	for _, want := range []string{"`alice`", "2,350", "1,000", "`req-1`", "`4bf92f3577b34da6a3ce929d0e0e4736`", "2025-11-28 10:00:12 +08:00"} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown.text does not contain %q:\n%s", want, text)
		}
	}
}

func TestDingTalkUnsignedAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reply     reply
		wantErr   bool
		wantCode  int
		wantRetry bool
	}{
		{"ok", reply{200, nil, `{"errcode":0,"errmsg":"ok"}`}, false, 0, false},
		{"sign mismatch", reply{200, nil, `{"errcode":310000,"errmsg":"sign not match"}`}, true, 310000, false},
		{"too fast", reply{200, nil, `{"errcode":130101,"errmsg":"send too fast"}`}, true, 130101, true},
		{"server error", reply{502, nil, `bad gateway`}, true, 0, true},
		{"not json", reply{200, nil, `<html>`}, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newChat(t, tc.reply)
			d, err := notify.NewDingTalk(srv.URL+"/robot/send?access_token=tok", "", notify.Options{Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Notify(ctx, sample(notify.LangEN))
			if r := srv.requests()[0]; r.query.Has("sign") || r.query.Has("timestamp") {
				t.Errorf("unsigned robot got query %v, want no sign and timestamp", r.query)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("Notify = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			de := deliveryError(t, err)
			if de.Code != tc.wantCode || de.Retry != tc.wantRetry {
				t.Errorf("Notify error = %+v, want code %d, retry %v", de, tc.wantCode, tc.wantRetry)
			}
		})
	}
}

func TestFeishuSignedText(t *testing.T) {
	const secret = "feishu-secret"
	srv := newChat(t, reply{200, nil, `{"code":0,"msg":"success","data":{}}`})
	f, err := notify.NewFeishu(srv.URL+"/open-apis/bot/v2/hook/hook-id", secret, notify.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Notify(ctx, sample(notify.LangZH)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := srv.requests()[0]
	if r.method != http.MethodPost || r.path != "/open-apis/bot/v2/hook/hook-id" {
		t.Errorf("request = %s %s, want POST to the hook", r.method, r.path)
	}
	// Feishu's documented example: timestamp in seconds, as a string; the HMAC key is
	// timestamp+"\n"+secret and the message is empty.
	if ts, ok := r.body["timestamp"].(string); !ok || ts != "1764291600" {
		t.Errorf("timestamp = %#v, want the string \"1764291600\"", r.body["timestamp"])
	}
	if got, want := str(r.body, "sign"), "ooHATtH8D7xIdAWK2fNBHcknbwgZlUcC8Wxz77eYc4E="; got != want {
		t.Errorf("sign = %q, want %q", got, want)
	}
	mac := hmac.New(sha256.New, []byte(str(r.body, "timestamp")+"\n"+secret))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); str(r.body, "sign") != want {
		t.Errorf("sign = %q, want %q as Feishu verifies it", str(r.body, "sign"), want)
	}
	if str(r.body, "msg_type") != "text" {
		t.Errorf("msg_type = %q, want text", str(r.body, "msg_type"))
	}
	text := str(r.body, "content", "text")
	for _, want := range []string{"Veil 告警·严重：导出量超阈值", "用户 alice 在 1 分钟内取走 2,350 条 customers 记录", "req-1, req-2", "veil users release alice"} {
		if !strings.Contains(text, want) {
			t.Errorf("content.text does not contain %q:\n%s", want, text)
		}
	}
}

func TestFeishuReplies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		wantCode  int
		wantErr   bool
		wantRetry bool
	}{
		{"success", `{"code":0,"msg":"success","data":{}}`, 0, false, false},
		{"legacy success", `{"Extra":null,"StatusCode":0,"StatusMessage":"success"}`, 0, false, false},
		{"bad signature", `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time","data":{}}`, 19021, true, false},
		{"keyword missing", `{"code":19024,"msg":"Key Words Not Found","data":{}}`, 19024, true, false},
		{"rate limited", `{"code":11232,"msg":"frequency limited psm","data":{}}`, 11232, true, true},
		{"no code", `{}`, 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newChat(t, reply{200, nil, tc.body})
			f, err := notify.NewFeishu(srv.URL+"/open-apis/bot/v2/hook/x", "", notify.Options{Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			err = f.Notify(ctx, sample(notify.LangEN))
			if r := srv.requests()[0]; r.body["sign"] != nil || r.body["timestamp"] != nil {
				t.Errorf("unsigned bot got sign/timestamp: %v", r.body)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("Notify = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if de := deliveryError(t, err); de.Code != tc.wantCode || de.Retry != tc.wantRetry {
					t.Errorf("Notify error = %+v, want code %d, retry %v", de, tc.wantCode, tc.wantRetry)
				}
			}
		})
	}
}

func TestWeComMarkdown(t *testing.T) {
	srv := newChat(t, reply{200, nil, `{"errcode":0,"errmsg":"ok"}`})
	w, err := notify.NewWeCom(srv.URL+"/cgi-bin/webhook/send?key=693a91f6", notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("客", 200) // 3 bytes a rune: values alone exceed 4096 bytes
	m := sample(notify.LangZH)
	m.User, m.Department, m.Resource = long, long, long
	m.TraceIDs = []string{long, long, long, long, long}
	m.RequestIDs = m.TraceIDs
	if err := w.Notify(ctx, m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := srv.requests()[0]
	if r.path != "/cgi-bin/webhook/send" || r.query.Get("key") != "693a91f6" {
		t.Errorf("request = %s?%s, want /cgi-bin/webhook/send?key=693a91f6", r.path, r.rawQuery)
	}
	if str(r.body, "msgtype") != "markdown" {
		t.Errorf("msgtype = %q, want markdown", str(r.body, "msgtype"))
	}
	content := str(r.body, "markdown", "content")
	if len(content) > 4096 || !utf8.ValidString(content) || !strings.HasSuffix(content, "…") {
		t.Errorf("markdown.content is %d bytes (valid UTF-8: %v), want at most 4096, cut on a rune boundary with a mark",
			len(content), utf8.ValidString(content))
	}
	for _, tc := range []struct {
		body      string
		wantCode  int
		wantRetry bool
	}{
		{`{"errcode":45009,"errmsg":"api freq out of limit"}`, 45009, true},
		{`{"errcode":93000,"errmsg":"invalid webhook url"}`, 93000, false},
	} {
		srv := newChat(t, reply{200, nil, tc.body})
		w, _ := notify.NewWeCom(srv.URL+"/cgi-bin/webhook/send?key=k", notify.Options{})
		de := deliveryError(t, w.Notify(ctx, sample(notify.LangEN)))
		if de.Code != tc.wantCode || de.Retry != tc.wantRetry {
			t.Errorf("Notify with %s = %+v, want code %d, retry %v", tc.body, de, tc.wantCode, tc.wantRetry)
		}
	}
}

func TestSlackText(t *testing.T) {
	srv := newChat(t, reply{200, nil, "ok"})
	s, err := notify.NewSlack(srv.URL+"/services/T000/B000/XXXX", notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := sample(notify.LangEN)
	m.User = "<!channel> & `bob`"
	if err := s.Notify(ctx, m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := srv.requests()[0]
	if r.path != "/services/T000/B000/XXXX" {
		t.Errorf("path = %q", r.path)
	}
	if len(r.body) != 1 || str(r.body, "text") == "" {
		t.Fatalf("body = %v, want only a text field", r.body)
	}
	text := str(r.body, "text")
	if strings.Contains(text, "<!channel>") || !strings.Contains(text, "`&lt;!channel&gt; &amp; 'bob'`") {
		t.Errorf("text = %q, want the user escaped inside a code span (no @channel)", text)
	}
	if !strings.HasPrefix(text, "*Veil alert · critical: export volume over threshold*\n") {
		t.Errorf("text starts %q, want a bold mrkdwn title", text[:min(len(text), 80)])
	}

	for _, tc := range []struct {
		reply      reply
		wantStatus int
		wantRetry  bool
		wantAfter  time.Duration
	}{
		{reply{400, nil, "invalid_payload"}, 400, false, 0},
		{reply{404, nil, "no_service"}, 404, false, 0},
		{reply{429, map[string]string{"Retry-After": "3"}, "rate_limited"}, 429, true, 3 * time.Second},
		{reply{500, nil, "oops"}, 500, true, 0},
	} {
		srv := newChat(t, tc.reply)
		s, _ := notify.NewSlack(srv.URL+"/services/T/B/X", notify.Options{})
		de := deliveryError(t, s.Notify(ctx, sample(notify.LangEN)))
		if de.Status != tc.wantStatus || de.Retry != tc.wantRetry || de.RetryAfter != tc.wantAfter {
			t.Errorf("Notify with HTTP %d = %+v, want retry %v after %v", tc.reply.status, de, tc.wantRetry, tc.wantAfter)
		}
	}
}

func TestWebhookPayloadAndSignature(t *testing.T) {
	const secret = "whsec"
	srv := newChat(t, reply{204, nil, ""}, reply{202, nil, ""})
	var raw []byte
	srv.Config.Handler = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(raw)))
			next.ServeHTTP(w, r)
		})
	}(srv.Config.Handler)
	w, err := notify.NewWebhook(srv.URL+"/hooks/veil", secret, http.Header{"Authorization": {"Bearer relay"}}, notify.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	m := sample(notify.LangEN)
	if err := w.Notify(ctx, m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := srv.requests()[0]
	if r.header.Get("Authorization") != "Bearer relay" || r.header.Get("X-Veil-Timestamp") != "1764291600" {
		t.Errorf("headers = %v, want the configured Authorization and X-Veil-Timestamp 1764291600", r.header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("1764291600." + string(raw)))
	want := "sha256=" + hexString(mac.Sum(nil))
	if got := r.header.Get("X-Veil-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("X-Veil-Signature = %q, want %q", got, want)
	}
	var p notify.WebhookPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	until := m.RestrictedUntil
	wantP := notify.WebhookPayload{
		Version: 1, Rule: "volume", Severity: "critical", User: "alice", Department: "cs", Resource: "customers",
		Records: 2350, Threshold: 1000, WindowSeconds: 60, Since: m.Since, Time: m.Time,
		TraceIDs: m.TraceIDs, RequestIDs: m.RequestIDs, Restricted: true, RestrictedUntil: &until,
		Lang: "en", Title: m.Title(), Text: m.Text(),
	}
	if diff := cmp.Diff(wantP, p); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(raw), `"since":"2025-11-28T08:59:00+08:00"`) {
		t.Errorf("payload %s: want times in RFC 3339 with the team's offset", raw)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestWebhookSignatureVector(t *testing.T) {
	// computed with Python: hmac.new(b"whsec", b'1764291600.{"a":1}', sha256).hexdigest()
	want := "sha256=8fac6c6187224543d655b01976babe99d2f8e72b818fedc4f961905270c53ba7"
	if got := notify.WebhookSignature("whsec", "1764291600", []byte(`{"a":1}`)); got != want {
		t.Errorf("WebhookSignature = %q, want %q", got, want)
	}
}

func TestWebhookStatuses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		wantErr   bool
		wantRetry bool
	}{
		{200, false, false}, {204, false, false}, {400, true, false}, {401, true, false},
		{408, true, true}, {429, true, true}, {500, true, true}, {503, true, true},
	} {
		srv := newChat(t, reply{tc.status, nil, ""})
		w, _ := notify.NewWebhook(srv.URL, "", nil, notify.Options{})
		err := w.Notify(ctx, sample(notify.LangEN))
		if (err != nil) != tc.wantErr {
			t.Errorf("Notify with HTTP %d = %v, want error %v", tc.status, err, tc.wantErr)
			continue
		}
		if err != nil {
			if de := deliveryError(t, err); de.Retry != tc.wantRetry || de.Status != tc.status {
				t.Errorf("Notify with HTTP %d = %+v, want retry %v", tc.status, de, tc.wantRetry)
			}
		}
		if r := srv.requests()[0]; r.header.Get("X-Veil-Signature") != "" {
			t.Errorf("unsigned webhook sent X-Veil-Signature %q", r.header.Get("X-Veil-Signature"))
		}
	}
}

// TestErrorsHideCredentials: a failed delivery's error (which is logged) must not carry the
// token in the webhook URL.
func TestErrorsHideCredentials(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // connection refused from now on
	for name, n := range map[string]func() (notify.Notifier, error){
		"dingtalk": func() (notify.Notifier, error) {
			return notify.NewDingTalk(addr+"/robot/send?access_token=SECRET-TOKEN", "SECRET-SIGN", notify.Options{})
		},
		"wecom": func() (notify.Notifier, error) {
			return notify.NewWeCom(addr+"/cgi-bin/webhook/send?key=SECRET-TOKEN", notify.Options{})
		},
		"feishu": func() (notify.Notifier, error) {
			return notify.NewFeishu(addr+"/open-apis/bot/v2/hook/SECRET-TOKEN", "SECRET-SIGN", notify.Options{})
		},
		"slack": func() (notify.Notifier, error) {
			return notify.NewSlack(addr+"/services/T/B/SECRET-TOKEN", notify.Options{})
		},
		"webhook": func() (notify.Notifier, error) {
			return notify.NewWebhook(addr+"/SECRET-TOKEN", "SECRET-SIGN", nil, notify.Options{})
		},
	} {
		n, err := n()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = n.Notify(ctx, sample(notify.LangEN))
		if err == nil {
			t.Fatalf("%s: Notify to a closed server succeeded", name)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error %q shows a credential", name, err)
		}
		if de := deliveryError(t, err); !de.Retry {
			t.Errorf("%s: connection refused is not retried: %+v", name, de)
		}
	}
}

func TestConstructorsRejectBadURLs(t *testing.T) {
	for _, u := range []string{"", "oapi.dingtalk.com/robot/send", "ftp://x/y", "https://"} {
		if _, err := notify.NewDingTalk(u, "", notify.Options{}); err == nil {
			t.Errorf("NewDingTalk(%q) succeeded", u)
		}
	}
}

func TestNewTarget(t *testing.T) {
	var out strings.Builder
	for _, tc := range []struct {
		spec    notify.Spec
		wantErr string
	}{
		{notify.Spec{Name: "a", Type: "dingtalk", URL: "https://oapi.dingtalk.com/robot/send?access_token=x", Secret: "SEC"}, ""},
		{notify.Spec{Name: "b", Type: "wecom", URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x"}, ""},
		{notify.Spec{Name: "c", Type: "feishu", URL: "https://open.feishu.cn/open-apis/bot/v2/hook/x"}, ""},
		{notify.Spec{Name: "d", Type: "lark", URL: "https://open.larksuite.com/open-apis/bot/v2/hook/x"}, ""},
		{notify.Spec{Name: "e", Type: "slack", URL: "https://hooks.slack.com/services/T/B/X"}, ""},
		{notify.Spec{Name: "f", Type: "webhook", URL: "https://siem.example/veil"}, ""},
		{notify.Spec{Name: "g", Type: "console"}, ""},
		{notify.Spec{Name: "h", Type: "teams", URL: "https://x"}, `unknown type "teams"`},
		{notify.Spec{Name: "i", Type: "slack", URL: "hooks.slack.com/x?token=SECRET"}, "want an absolute http or https URL"},
		{notify.Spec{Name: "j", Type: "wecom", URL: "https://q/x", Secret: "s"}, "do not sign"},
	} {
		_, err := notify.NewTarget(tc.spec, notify.Options{}, &out)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("NewTarget(%s) = %v", tc.spec.Type, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("NewTarget(%s %q) = %v, want an error containing %q", tc.spec.Type, tc.spec.Name, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("NewTarget error %q shows the URL's credential", err)
		}
	}
}

func TestConsole(t *testing.T) {
	var out strings.Builder
	c := notify.NewConsole(&out)
	if err := c.Notify(ctx, sample(notify.LangEN)); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "[Veil alert · critical: export volume over threshold] | alice took 2,350") {
		t.Errorf("console line = %q, want one line starting with the title", line)
	}
}

func TestDeliveryErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *notify.DeliveryError
		want string
	}{
		{&notify.DeliveryError{Status: 200, Code: 310000, Msg: "sign not match"}, "notify: HTTP 200: error 310000: sign not match"},
		{&notify.DeliveryError{Status: 503}, "notify: HTTP 503"},
		{&notify.DeliveryError{Err: errors.New("dial tcp: refused")}, "notify: dial tcp: refused"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
