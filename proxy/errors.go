package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/codec"
	"github.com/veilproxy/veil/proxy/mask"
)

// Error is a request Veil ends itself: an HTTP status, a client-safe reason, the audit decision
// it records, and the internal cause (logged and audited, never sent to the client).
type Error struct {
	Status   int
	Code     string // short machine-readable error code in the JSON body
	Reason   string
	Decision string // audit decision: deny | limited | error
	Err      error

	// Limit and RetryAfter name the spent budget of a 429.
	Limit      string
	RetryAfter int
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func denied(status int, reason string) *Error {
	if status == 0 {
		status = http.StatusForbidden
	}
	return &Error{Status: status, Code: "denied", Reason: reason, Decision: audit.DecisionDeny}
}

func badRequest(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Reason: reason, Decision: audit.DecisionDeny}
}

// classify maps any error from the request path to the one Error the client sees. It is the
// single table of error → status.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var de *mask.DeniedError
	var ne net.Error
	switch {
	case errors.As(err, &de):
		return &Error{Status: http.StatusForbidden, Code: "denied", Reason: "the response contains a field you may not see", Decision: audit.DecisionDeny, Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout", Reason: "the upstream did not answer in time", Decision: audit.DecisionError, Err: err}
	case errors.Is(err, codec.ErrTooLarge), errors.Is(err, mask.ErrTooLarge), errors.Is(err, errBodyTooLarge):
		return &Error{Status: http.StatusBadGateway, Code: "upstream_body_too_large", Reason: "the upstream response is larger than Veil may rewrite", Decision: audit.DecisionError, Err: err}
	case errors.Is(err, codec.ErrUnsupported):
		return &Error{Status: http.StatusBadGateway, Code: "upstream_encoding", Reason: "the upstream response uses a content coding Veil cannot decode", Decision: audit.DecisionError, Err: err}
	case errors.Is(err, mask.ErrMalformed), errors.Is(err, mask.ErrTooDeep), errors.Is(err, errUnsupportedBody):
		return &Error{Status: http.StatusBadGateway, Code: "upstream_body", Reason: "the upstream response could not be parsed", Decision: audit.DecisionError, Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: 499, Code: "canceled", Reason: "the client went away", Decision: audit.DecisionError, Err: err}
	default:
		return &Error{Status: http.StatusBadGateway, Code: "upstream", Reason: "the upstream request failed", Decision: audit.DecisionError, Err: err}
	}
}

// writeError sends e as a JSON body. Nothing of any upstream body is ever part of it.
func writeError(w http.ResponseWriter, e *Error, requestID string) {
	h := w.Header()
	for k := range h {
		switch k {
		case "Allow", "Retry-After", "Ratelimit", "Ratelimit-Policy", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset":
		default:
			delete(h, k)
		}
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Request-Id", requestID)
	body, _ := json.Marshal(struct {
		Error      string `json:"error"`
		Limit      string `json:"limit,omitempty"`
		RetryAfter int    `json:"retry_after,omitempty"`
		Reason     string `json:"reason"`
		RequestID  string `json:"request_id"`
	}{e.Code, e.Limit, e.RetryAfter, e.Reason, requestID})
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	status := e.Status
	if status == 499 {
		status = http.StatusBadGateway // the client is gone; the status is for the audit record
	}
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
