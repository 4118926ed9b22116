// Package notify delivers Veil's alerts to chat services (DingTalk, WeCom, Feishu/Lark, Slack)
// and generic JSON webhooks, in the team's language, with retries that never block a request.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Severities of a Message, lowest first.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Rules a Message may name: the alert rules of package spike (docs/alerts.md).
const (
	RuleVolume      = "volume"       // records per minute over an absolute threshold
	RuleBaseline    = "baseline"     // records per minute far above the subject's own baseline
	RuleFirstExport = "first_export" // a user's first export ever
	RuleAfterHours  = "after_hours"  // an export outside working hours
	RuleBudget      = "budget"       // a user crossed a share (80%) of an export budget
	RuleProbing     = "probing"      // repeated denials
)

// Languages the message text is written in.
const (
	LangZH = "zh-CN"
	LangEN = "en"
)

// Message is one alert, as it is sent to a chat. A department alert has no User.
type Message struct {
	// Rule is the alert rule that fired: one of the Rule constants.
	Rule string
	// Severity is info, warning or critical.
	Severity string
	// User is the member of staff the alert is about; "" for a department alert.
	User string
	// Department is the user's department, or the department a department alert is about.
	Department string
	// Resource is the resource type most of the records were of ("customers").
	Resource string
	// Records is what the rule counted: records taken in Window (volume, baseline,
	// after_hours, first_export), records used of the budget (budget), or denied requests in
	// Window (probing).
	Records int
	// Threshold is what Records was compared with: the absolute threshold, the baseline's
	// upper bound, the budget's limit or the denial count; 0 when the rule has none.
	Threshold float64
	// Window is the span Records counts over; 0 when the rule does not count over time.
	Window time.Duration
	// Budget is the export budget's name (budget rule).
	Budget string
	// Since is when the counted activity began.
	Since time.Time
	// Time is when the alert fired. Times are shown in their own location: the sender sets
	// it to the team's time zone.
	Time time.Time
	// TraceIDs and RequestIDs name recent requests of the subject, newest first, to look up
	// in the trace store and the audit log.
	TraceIDs   []string
	RequestIDs []string
	// Restricted reports that Veil restricted the user (containment) until RestrictedUntil.
	Restricted      bool
	RestrictedUntil time.Time
	// ContainFailed reports that the rule asked for containment and it could not be applied.
	ContainFailed bool
	// Lang is the language of the text: zh-CN (default) or en.
	Lang string
}

// Notifier sends a Message to one destination.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// DeliveryError is the error of a delivery the destination refused or did not answer. The
// Dispatcher retries it when Retry is set.
type DeliveryError struct {
	// Status is the HTTP status; 0 when there was no response.
	Status int
	// Code and Msg are the vendor's error code and message from the response body, if any.
	Code int
	Msg  string
	// Retry reports that the same message may succeed later (network error, 5xx, 429, a
	// vendor's rate-limit code).
	Retry bool
	// RetryAfter is how long the destination asked to wait (Retry-After); 0 if it did not.
	RetryAfter time.Duration
	// Err is the transport error, if any; its URL is redacted.
	Err error
}

// Error implements error.
func (e *DeliveryError) Error() string {
	switch {
	case e.Err != nil:
		return "notify: " + e.Err.Error()
	case e.Code != 0 || e.Msg != "":
		return fmt.Sprintf("notify: HTTP %d: error %d: %s", e.Status, e.Code, e.Msg)
	default:
		return fmt.Sprintf("notify: HTTP %d", e.Status)
	}
}

// Unwrap returns the transport error.
func (e *DeliveryError) Unwrap() error { return e.Err }

// maxResponse bounds how much of a chat service's response is read.
const maxResponse = 64 << 10

// defaultTimeout bounds one delivery attempt when the caller's client has no timeout.
const defaultTimeout = 10 * time.Second

// defaultClient is used when a notifier is given no client.
var defaultClient = &http.Client{Timeout: defaultTimeout}

// post sends body as JSON to target and returns the response status, header and body. A
// failed request is a retryable *DeliveryError whose URL is redacted: webhook URLs carry the
// credentials (access_token, key, the hook path), and errors end up in logs.
func post(ctx context.Context, c *http.Client, target string, body []byte, header http.Header) (int, http.Header, []byte, error) {
	if c == nil {
		c = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, &DeliveryError{Err: fmt.Errorf("build request for %s: %w", redactURL(target), errors.Unwrap(err))}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "veil-alerts/1")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s %s: %w", ue.Op, redactURL(target), ue.Err)
		}
		return 0, nil, nil, &DeliveryError{Retry: ctx.Err() == nil, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, resp.Header, nil, &DeliveryError{Status: resp.StatusCode, Retry: true, Err: fmt.Errorf("read response from %s: %w", redactURL(target), err)}
	}
	return resp.StatusCode, resp.Header, b, nil
}

// checkStatus turns a non-2xx status into a *DeliveryError: 408, 425, 429 and 5xx are
// retried (after Retry-After when the server sent one), other statuses are not.
func checkStatus(status int, h http.Header, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &DeliveryError{Status: status, Msg: snippet(body)}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		e.Retry = true
		e.RetryAfter = retryAfter(h)
	}
	return e
}

// retryAfter reads a Retry-After header in seconds; HTTP dates are not worth the clock
// dependency here and count as absent.
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	s, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(min(s, 3600)) * time.Second
}

// snippet is the start of a response body, for error messages.
func snippet(b []byte) string {
	const n = 200
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// redactURL keeps a URL's scheme and host: its path and query may hold the credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// checkURL validates a webhook URL at construction time.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %s", redactURL(raw))
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("URL %s: want an absolute http or https URL", redactURL(raw))
	}
	return u, nil
}
