package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/codec"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/mask"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/spike"
)

var (
	errBodyTooLarge    = errors.New("body too large")
	errUnsupportedBody = errors.New("unsupported response body")
)

// exchange is one request's state on its single pass through the handler.
type exchange struct {
	h         *Handler
	in        *http.Request
	w         *countingWriter
	span      trace.Span
	start     time.Time
	requestID string

	route      *Route
	path       string // normalized
	query      url.Values
	method     string // effective method (HEAD is GET)
	body       []byte
	peer       netip.Addr
	clientIP   netip.Addr
	user       identity.User
	authed     bool
	desc       adapters.Description
	decision   policy.Decision
	decided    bool
	restricted bool // export-spike containment holds the user
	plan       mask.Plan
	mode       string
	resv       limit.Reservation
	reserved   bool
	statuses   []limit.Status
	stats      mask.Stats
	audited    bool
	streamed   bool          // the body went to the client as it was rewritten
	streamErr  error         // a streamed body failed after its first bytes were sent
	streamDone chan struct{} // closed when a streamed rewrite has finished
	upstart    time.Time
	err        *Error
}

// Query parameters stripped on policed routes: method override and JSONP (REDTEAM 6, 21).
var strippedParams = []string{"_method", "callback", "jsonp"}

// prepare runs everything before the upstream: sanitize, route, identify, read the body,
// describe, decide and check budgets. An error ends the request with that error.
func (ex *exchange) prepare(ctx context.Context) error {
	h, r := ex.h, ex.in
	ex.peer = peerAddr(r.RemoteAddr)
	var err error
	if ex.clientIP, err = sanitizeHeaders(h.d.Identity, r.Header, ex.peer); err != nil {
		return err
	}
	if err := checkMethod(ex.w, r.Method); err != nil {
		return err
	}
	if err := ex.parse(); err != nil {
		return err
	}
	if err := checkPoliced(r); err != nil {
		return err
	}
	if err := ex.identify(ctx); err != nil {
		return err
	}
	if err := ex.readBody(); err != nil {
		return err
	}
	if err := checkBodyOverride(r.Header.Get("Content-Type"), ex.body); err != nil {
		return err
	}
	if err := ex.describe(); err != nil {
		return err
	}
	if err := ex.decide(ctx); err != nil {
		return err
	}
	if err := ex.checkAudit(); err != nil {
		return err
	}
	return ex.reserve(ctx)
}

// parse validates and normalizes the request line and finds the route.
func (ex *exchange) parse() error {
	r := ex.in
	p, err := NormalizePath(r.URL.EscapedPath())
	if r.URL.Opaque != "" || r.URL.Fragment != "" || strings.ContainsAny(r.URL.RawQuery, "#") {
		err = errBadPath
	}
	if err != nil {
		return badRequest("the request path is not allowed")
	}
	ex.route = ex.h.match(hostOf(r.Host), p)
	if ex.route == nil {
		return &Error{Status: http.StatusNotFound, Code: "no_route", Reason: "no route for this host and path", Decision: audit.DecisionDeny}
	}
	if ex.route.CaseInsensitive {
		p = strings.ToLower(p)
	}
	ex.path = p
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("the query string is malformed")
	}
	for _, name := range strippedParams {
		for k := range q {
			if strings.EqualFold(k, name) {
				delete(q, k)
			}
		}
	}
	ex.query = q
	ex.method = r.Method
	if ex.method == http.MethodHead {
		ex.method = http.MethodGet
	}
	return nil
}

func (ex *exchange) identify(ctx context.Context) error {
	h, r := ex.h, ex.in
	_, span := h.tracer.Start(ctx, "veil.identity")
	user, err := h.d.Identity.AuthenticateRoute(ctx, r, ex.peer, identity.Route{Modes: ex.route.IdentityModes, Token: ex.route.TokenResolver})
	span.End()
	if err != nil {
		var ie *identity.Error
		if errors.As(err, &ie) {
			e := &Error{Status: ie.Status, Code: "unauthenticated", Reason: ie.Reason, Decision: audit.DecisionDeny, Err: err}
			switch {
			case ie.Status == http.StatusBadRequest:
				e.Code = "bad_request"
			case ie.Code != "":
				e.Code = ie.Code
			}
			if ie.Status >= 500 {
				e.Decision = audit.DecisionError
			}
			return e
		}
		return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Reason: "authentication failed", Decision: audit.DecisionDeny, Err: err}
	}
	ex.user, ex.authed = user, true
	// Veil's own credential authenticates the user to Veil; it never reaches the upstream or
	// the policy input.
	h.d.Identity.StripCredentials(r.Header, user)
	if ua := ex.route.UpstreamAuth; ua != nil {
		// Fetch (or refresh) the service credential now, so a token endpoint that fails
		// ends the request here rather than forwarding it without a credential.
		probe := &http.Request{Header: http.Header{}, URL: &url.URL{}}
		if err := ua.Apply(ctx, probe); err != nil {
			return &Error{Status: http.StatusBadGateway, Code: "upstream_credential", Reason: "upstream credential unavailable", Decision: audit.DecisionError, Err: err}
		}
	}
	return nil
}

func (ex *exchange) describe() error {
	areq := &adapters.Request{Method: ex.method, Path: ex.path, Query: ex.query, Header: ex.in.Header, Body: ex.body}
	var err error
	ex.desc, err = ex.route.Adapter.Describe(areq)
	if err != nil {
		var ae *adapters.Error
		if errors.As(err, &ae) {
			return badRequest(ae.Reason)
		}
		return badRequest("the request could not be understood")
	}
	return nil
}

// checkAudit refuses requests whose access could not be recorded: exports always, other
// requests unless audit.on_error is allow.
func (ex *exchange) checkAudit() error {
	if !ex.desc.Export && ex.h.d.AuditOnError == "allow" {
		return nil
	}
	if err := ex.h.d.Audit.Healthy(); err != nil {
		if ex.h.d.Metrics != nil {
			ex.h.d.Metrics.AuditErrors.Inc()
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "audit_unavailable", Reason: "the audit log cannot be written; access is paused", Decision: audit.DecisionError, Err: err}
	}
	return nil
}

func (ex *exchange) readBody() error {
	r := ex.in
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	max := ex.h.d.Limits.MaxRequestBody
	if r.ContentLength > max {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Reason: "the request body is too large", Decision: audit.DecisionDeny}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "bad_request", Reason: "the request body could not be read", Decision: audit.DecisionDeny, Err: err}
	}
	if int64(len(b)) > max {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Reason: "the request body is too large", Decision: audit.DecisionDeny}
	}
	if len(b) > 0 {
		ex.body = b
	}
	return nil
}

// decide asks the policy once and turns the decision into a mask plan.
func (ex *exchange) decide(ctx context.Context) error {
	h := ex.h
	if r := h.d.Restrictions; r != nil && ex.user.ID != "" {
		held, _, err := r.Restricted(ctx, ex.user.ID)
		if err != nil {
			h.log.Warn("containment lookup failed; treating the user as restricted", "request_id", ex.requestID, "err", err)
			held = true
		}
		ex.restricted = held
	}
	in := ex.input()
	ctx, span := h.tracer.Start(ctx, "veil.policy")
	t := time.Now()
	d, err := h.d.Policy.Decide(ctx, in)
	if h.d.Metrics != nil {
		h.d.Metrics.PolicySeconds.Observe(time.Since(t).Seconds())
	}
	span.End()
	if err != nil {
		return &Error{Status: http.StatusForbidden, Code: "denied", Reason: "access denied: the policy could not decide", Decision: audit.DecisionError, Err: err}
	}
	ex.decision, ex.decided = d, true
	ex.mode = d.Mode
	if ex.route.Mode != "" {
		ex.mode = ex.route.Mode
	}
	if ex.mode == "" {
		ex.mode = policy.ModeEnforce
	}
	plan, err := planOf(d, h.d.HashKey)
	if err != nil {
		return &Error{Status: http.StatusForbidden, Code: "denied", Reason: "access denied: the policy could not decide", Decision: audit.DecisionError, Err: err}
	}
	ex.plan = plan
	if !d.Allow {
		if ex.mode == policy.ModeMonitor {
			return nil // shadow mode: audited as deny, forwarded as is
		}
		reason := d.Reason
		if reason == "" {
			reason = "access denied by policy"
		}
		return denied(d.Status, reason)
	}
	if d.MaxPageSize > 0 && ex.desc.PageSizeParam != "" && (ex.desc.PageSize == 0 || ex.desc.PageSize > d.MaxPageSize) {
		ex.desc.PageSize = d.MaxPageSize
		ex.query.Set(ex.desc.PageSizeParam, strconv.Itoa(d.MaxPageSize))
	}
	return nil
}

func planOf(d policy.Decision, hashKey []byte) (mask.Plan, error) {
	p := mask.Plan{Detect: d.Detect, HashKey: hashKey}
	if len(d.Fields) > 0 {
		p.Fields = make(map[string]mask.Action, len(d.Fields))
		for name, s := range d.Fields {
			a, err := mask.ParseAction(s)
			if err != nil {
				return p, fmt.Errorf("field %q: %w", name, err)
			}
			p.Fields[name] = a
		}
	}
	for _, r := range d.Rows {
		v, err := json.Marshal(r.Value)
		if err != nil {
			return p, fmt.Errorf("row rule on %q: %w", r.Field, err)
		}
		p.Rows = append(p.Rows, mask.RowRule{Field: r.Field, Op: r.Op, Value: v})
	}
	return p, nil
}

func (ex *exchange) input() policy.Input {
	r := ex.in
	hdrs := make(map[string][]string, len(r.Header))
	for k, v := range r.Header {
		lk := strings.ToLower(k)
		if lk == "authorization" || lk == "cookie" || lk == "proxy-authorization" {
			continue
		}
		hdrs[lk] = v
	}
	var id *string
	if ex.desc.ID != "" {
		s := ex.desc.ID
		id = &s
	}
	roles := ex.user.Roles
	if roles == nil {
		roles = []string{}
	}
	claims := ex.user.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	return policy.Input{
		User: policy.User{ID: ex.user.ID, Roles: roles, Department: ex.user.Department, Email: ex.user.Email, Claims: claims, Restricted: ex.restricted},
		Request: policy.Request{
			Method: ex.method, Path: ex.path, Query: ex.query, Headers: hdrs,
			ClientIP: ex.clientIP.String(), Time: ex.start.UTC(),
		},
		Route: ex.route.Name,
		Resource: policy.Resource{
			System: ex.desc.System, Type: ex.desc.Type, Action: ex.desc.Action, ID: id,
			PageSize: ex.desc.PageSize, Fields: ex.desc.Fields, Export: ex.desc.Export,
		},
	}
}

// reserve takes the page's records from every budget before forwarding.
func (ex *exchange) reserve(ctx context.Context) error {
	h, d := ex.h, ex.decision
	if len(d.Limits) == 0 || !d.Allow {
		return nil
	}
	budgets := make([]limit.Budget, len(d.Limits))
	for i, l := range d.Limits {
		budgets[i] = limit.Budget{Name: l.Name, Key: l.Key, Window: l.Window, Records: l.Records, Requests: l.Requests}
	}
	n := int64(ex.desc.PageSize)
	if n <= 0 {
		n = 1
	}
	ctx, span := h.tracer.Start(ctx, "veil.limit")
	defer span.End()
	if h.d.Budgets == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "limits_unavailable", Reason: "export budgets are not available", Decision: audit.DecisionError, Err: errors.New("no budget store")}
	}
	resv, st, err := h.d.Budgets.Reserve(ctx, budgets, n)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err // the client went away; not a store failure
		}
		if errors.Is(err, limit.ErrInvalidBudget) {
			return &Error{Status: http.StatusForbidden, Code: "denied", Reason: "access denied: the policy's budget is invalid", Decision: audit.DecisionError, Err: err}
		}
		if h.d.Metrics != nil {
			h.d.Metrics.StoreErrors.Inc()
		}
		if ex.route.OnStoreError == "allow" {
			if h.d.Metrics != nil {
				h.d.Metrics.FailOpen.WithLabelValues(ex.route.Name).Inc()
			}
			h.log.Warn("budget store failed; failing open as configured", "route", ex.route.Name, "request_id", ex.requestID, "err", err)
			return nil
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "limits_unavailable", Reason: "limit store unavailable", Decision: audit.DecisionError, Err: err}
	}
	ex.statuses = st
	if s, rejected := limit.Rejection(st); rejected {
		if h.d.Metrics != nil {
			h.d.Metrics.LimitRejections.WithLabelValues(s.Name).Inc()
		}
		secs := max(int(math.Ceil(s.RetryAfter.Seconds())), 1)
		limit.SetHeaders(ex.w.Header(), st)
		ex.w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &Error{Status: http.StatusTooManyRequests, Code: "limited", Decision: audit.DecisionLimited,
			Limit: s.Name, RetryAfter: secs,
			Reason: fmt.Sprintf("export budget %s: %d records per %s; %d left, this page needs %d", s.Name, s.Limit, s.Window, s.Remaining, n)}
	}
	ex.resv, ex.reserved = resv, true
	return nil
}

// learn hands the adapter the string its layout asked to capture, when the adapter learns
// from responses and the whole response was a success.
func (ex *exchange) learn(status int) {
	if ex.stats.Captured == "" || ex.stats.Failed || status < 200 || status > 299 {
		return
	}
	if l, ok := ex.route.Adapter.(adapters.Learner); ok {
		l.Learn(ex.desc, ex.stats.Captured)
	}
}

// settle charges the records actually returned.
func (ex *exchange) settle(ctx context.Context, records int64) {
	if !ex.reserved {
		return
	}
	ex.reserved = false
	st, err := ex.h.d.Budgets.Settle(ctx, ex.resv, records)
	if err != nil {
		if ex.h.d.Metrics != nil {
			ex.h.d.Metrics.StoreErrors.Inc()
		}
		ex.h.log.Warn("budget settle failed", "route", ex.route.Name, "request_id", ex.requestID, "err", err)
		return
	}
	ex.statuses = st
}

// rewriteRequest builds the upstream request from what policy saw: the normalized path, the
// sanitized query and method, the buffered body.
func (h *Handler) rewriteRequest(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	up := ex.route.Upstream
	out := pr.Out
	out.URL.Scheme, out.URL.Host = up.Scheme, up.Host
	out.URL.Path = strings.TrimSuffix(up.Path, "/") + ex.path
	out.URL.RawPath = ""
	out.URL.RawQuery = ex.query.Encode()
	out.URL.Fragment = ""
	out.Host = ""
	out.Method = ex.method
	out.Body, out.ContentLength, out.GetBody = http.NoBody, 0, nil
	if ex.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(ex.body))
		out.ContentLength = int64(len(ex.body))
	}
	out.TransferEncoding = nil
	hd := out.Header
	for _, k := range []string{"Range", "Request-Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Te", "Trailer", "Expect"} {
		hd.Del(k)
	}
	if ua := ex.route.UpstreamAuth; ua != nil {
		// The client's credential goes, the service credential (cached by identify) comes.
		if err := ua.Apply(out.Context(), out); err != nil {
			h.log.Warn("upstream credential failed after identify; forwarding without one", "route", ex.route.Name, "request_id", ex.requestID, "err", err)
		}
	}
	hd.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	hd.Set("X-Request-Id", ex.requestID)
	pr.SetXForwarded()
	hd.Set("X-Forwarded-For", forwardedFor(ex.clientIP, ex.peer))
	h.prop.Inject(out.Context(), propagation.HeaderCarrier(hd))
	ex.upstart = time.Now()
}

// modifyResponse rewrites every upstream response before any of it reaches the client.
func (h *Handler) modifyResponse(resp *http.Response) error {
	ex := exchangeFrom(resp.Request.Context())
	if h.d.Metrics != nil {
		h.d.Metrics.UpstreamSeconds.WithLabelValues(ex.route.Name).Observe(time.Since(ex.upstart).Seconds())
	}
	ctx, span := h.tracer.Start(resp.Request.Context(), "veil.rewrite")
	defer span.End()
	t := time.Now()
	err := ex.rewriteResponse(ctx, resp)
	if h.d.Metrics != nil {
		h.d.Metrics.RewriteSeconds.WithLabelValues(ex.route.Name).Observe(time.Since(t).Seconds())
	}
	if err != nil {
		resp.Body.Close()
		span.SetStatus(codes.Error, "rewrite failed")
	}
	return err
}

func (ex *exchange) rewriteResponse(ctx context.Context, resp *http.Response) error {
	h := ex.h
	hd := resp.Header
	for _, k := range []string{"Etag", "Last-Modified", "Content-Md5", "Digest", "Content-Range", "Accept-Ranges", "Content-Location", "Repr-Digest", "Content-Digest"} {
		hd.Del(k)
	}
	ex.maskHeaders(hd)
	hd.Set("Cache-Control", "private, no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Request-Id", ex.requestID)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return &Error{Status: http.StatusBadGateway, Code: "upstream", Reason: "protocol upgrades are not allowed", Decision: audit.DecisionError, Err: errors.New("upstream switched protocols")}
	}
	if noBody(resp) {
		hd.Del("Content-Encoding")
		hd.Del("Content-Length")
		resp.Body.Close()
		resp.Body, resp.ContentLength = http.NoBody, 0
		ex.settle(ctx, 0)
		ex.setBudgetHeaders(hd)
		return ex.auditExport(ctx, resp.StatusCode, 0)
	}
	mt, _, _ := mime.ParseMediaType(hd.Get("Content-Type"))
	if mt == "text/event-stream" || strings.HasPrefix(mt, "multipart/") {
		return fmt.Errorf("%w: %s", errUnsupportedBody, mt)
	}
	layout := ex.route.Adapter.Layout(ex.desc, resp.StatusCode, hd)
	prog, err := mask.Compile(ex.plan, layout, mask.Limits{
		MaxDepth: h.d.Limits.MaxJSONDepth, MaxRecordBytes: h.d.Limits.MaxRecordBytes,
	})
	if err != nil {
		return &Error{Status: http.StatusForbidden, Code: "denied", Reason: "access denied: the policy's plan is invalid", Decision: audit.DecisionError, Err: err}
	}
	hd.Del("Content-Length")
	hd.Add("Vary", "Accept-Encoding")
	coding := codec.Negotiate(ex.in.Header.Values("Accept-Encoding"))
	if ex.mode != policy.ModeMonitor && (resp.ContentLength < 0 || resp.ContentLength > h.d.Limits.StreamThreshold) {
		return ex.stream(ctx, resp, prog, coding)
	}
	body, err := codec.NewReader(&idleReader{r: resp.Body, timeout: h.d.Limits.UpstreamIdleTimeout}, encodings(hd), h.d.Limits.MaxResponseBody)
	if err != nil {
		return err
	}
	defer body.Close()
	hd.Del("Content-Encoding")
	out := h.getBuf()
	lim := &capWriter{w: out, max: h.d.Limits.MaxResponseBody}
	var stats mask.Stats
	if ex.mode == policy.ModeMonitor {
		// Shadow mode: compute what enforce would do, send what the upstream sent.
		stats, err = prog.Rewrite(io.Discard, io.TeeReader(body, lim))
		if err == nil {
			// the tee saw only what Rewrite consumed; drain the rest into the copy
			_, err = io.Copy(lim, body)
		}
	} else {
		stats, err = prog.Rewrite(lim, body)
	}
	if err != nil {
		h.putBuf(out)
		return err
	}
	return ex.finishBuffered(ctx, resp, stats, out, coding)
}

// finishBuffered charges the budgets, encodes the whole rewritten body out, audits an export
// durably and hands the body to the client with its length.
func (ex *exchange) finishBuffered(ctx context.Context, resp *http.Response, stats mask.Stats, out *bytes.Buffer, coding string) error {
	h, hd := ex.h, resp.Header
	ex.stats = stats
	ex.settle(ctx, int64(stats.Records))
	ex.learn(resp.StatusCode)
	ex.setBudgetHeaders(hd)
	if coding != "" && out.Len() >= 1024 {
		enc := h.getBuf()
		cw, err := codec.NewWriter(enc, coding)
		if err == nil {
			_, err = cw.Write(out.Bytes())
			if cerr := cw.Close(); err == nil {
				err = cerr
			}
		}
		h.putBuf(out)
		if err != nil {
			h.putBuf(enc)
			return fmt.Errorf("encode response: %w", err)
		}
		out = enc
		hd.Set("Content-Encoding", coding)
	}
	if err := ex.auditExport(ctx, resp.StatusCode, int64(out.Len())); err != nil {
		h.putBuf(out)
		return err
	}
	resp.Body = &pooledBody{Reader: bytes.NewReader(out.Bytes()), buf: out, h: h}
	resp.ContentLength = int64(out.Len())
	hd.Set("Content-Length", strconv.Itoa(out.Len()))
	return nil
}

// pooledBody serves a rewritten body from a pooled buffer and returns it on Close.
type pooledBody struct {
	*bytes.Reader
	buf *bytes.Buffer
	h   *Handler
}

func (b *pooledBody) Close() error {
	if b.buf != nil {
		b.h.putBuf(b.buf)
		b.buf = nil
	}
	return nil
}

// stream rewrites a large or unknown-length body record by record as it arrives. The first
// StreamThreshold bytes of output are held back: a body that ends (or fails) within them is
// answered whole (or with a clean 502). Past that, bytes go to the client as they are masked,
// and a failure aborts the connection so the client cannot take a cut body for a whole one.
func (ex *exchange) stream(ctx context.Context, resp *http.Response, prog *mask.Program, coding string) error {
	h, hd := ex.h, resp.Header
	raw := resp.Body
	body, err := codec.NewReader(&idleReader{r: raw, timeout: h.d.Limits.UpstreamIdleTimeout}, encodings(hd), h.d.Limits.MaxStreamBody)
	if err != nil {
		return err
	}
	hd.Del("Content-Encoding")
	pr, pw := io.Pipe()
	g := &gate{held: h.getBuf(), max: h.d.Limits.StreamThreshold, opened: make(chan struct{}), rdy: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		stats, err := prog.Rewrite(g, body)
		body.Close()
		ex.stats = stats
		done <- err
	}()
	select {
	case err := <-done:
		// The whole body fit under the threshold: answer it whole.
		pw.Close()
		if err != nil {
			h.putBuf(g.held)
			return err
		}
		return ex.finishBuffered(ctx, resp, ex.stats, g.held, coding)
	case <-g.opened:
	}
	// Streaming: headers go now; the budget headers show the reservation.
	ex.setBudgetHeaders(hd)
	ex.streamed = true
	sent := &countWriter{w: pw}
	var enc io.WriteCloser = nopCloser{sent}
	if coding != "" {
		if enc, err = codec.NewWriter(sent, coding); err != nil {
			pw.CloseWithError(err)
			return err
		}
		hd.Set("Content-Encoding", coding)
	}
	ex.streamDone = make(chan struct{})
	go func() {
		defer close(ex.streamDone)
		g.stream(enc)
		err := <-done
		h.putBuf(g.held)
		if err == nil {
			err = enc.Close()
		}
		if err == nil {
			ex.settle(context.WithoutCancel(ctx), int64(ex.stats.Records))
			ex.learn(resp.StatusCode)
			err = ex.auditExport(context.WithoutCancel(ctx), resp.StatusCode, sent.n)
		}
		if err != nil {
			ex.streamErr = err
			if h.d.Metrics != nil {
				h.d.Metrics.StreamAborts.WithLabelValues(ex.route.Name).Inc()
			}
			pw.CloseWithError(err)
			return
		}
		pw.Close()
	}()
	resp.Body = streamBody{PipeReader: pr, upstream: raw}
	resp.ContentLength = -1
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// gate holds the first max bytes of a rewritten body; once more arrive it opens, waits for
// stream to be given the client side, and lets every later write through (after what it held).
type gate struct {
	held   *bytes.Buffer
	max    int64
	opened chan struct{} // closed by the writer when it passes max
	rdy    chan struct{} // closed by stream once out is set
	open   bool          // writer goroutine only
	out    io.Writer
}

func (g *gate) Write(p []byte) (int, error) {
	if !g.open {
		if int64(g.held.Len()+len(p)) <= g.max {
			return g.held.Write(p)
		}
		g.open = true
		close(g.opened)
		<-g.rdy
	}
	return g.out.Write(p)
}

// stream sends what was held, then lets later writes through to w.
func (g *gate) stream(w io.Writer) {
	if _, err := w.Write(g.held.Bytes()); err != nil {
		w = errWriter{err}
	}
	g.out = w
	close(g.rdy)
}

// streamBody is the client side of a streamed rewrite; closing it (the client went away) also
// closes the upstream body, so the rewrite stops at once.
type streamBody struct {
	*io.PipeReader
	upstream io.Closer
}

func (b streamBody) Close() error {
	b.upstream.Close()
	return b.PipeReader.Close()
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
func (ex *exchange) setBudgetHeaders(h http.Header) {
	if len(ex.statuses) > 0 {
		limit.SetHeaders(h, ex.statuses)
	}
}

// auditExport writes an export's audit record durably before any of its body is released.
func (ex *exchange) auditExport(ctx context.Context, status int, bytesOut int64) error {
	if !ex.desc.Export {
		return nil
	}
	rec := ex.record(status, bytesOut)
	if err := ex.h.d.Audit.AppendSync(ctx, rec); err != nil {
		if ex.h.d.Metrics != nil {
			ex.h.d.Metrics.AuditErrors.Inc()
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "audit_unavailable", Reason: "exports are paused: the audit log cannot be written", Decision: audit.DecisionError, Err: err}
	}
	ex.audited = true
	return nil
}

func noBody(resp *http.Response) bool {
	return resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		resp.StatusCode < 200 || resp.ContentLength == 0
}

func encodings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// fail records the error that ends the request.
func (ex *exchange) fail(err error) {
	if ex.err == nil {
		ex.err = classify(err)
	}
}

// finish writes the audit record, the metrics and the span attributes for every request.
func (ex *exchange) finish(cw *countingWriter) {
	h := ex.h
	if ex.streamDone != nil {
		<-ex.streamDone
		if ex.streamErr != nil {
			ex.fail(ex.streamErr)
		}
	}
	status := cw.status
	if ex.err != nil && ex.err.Status == 499 {
		status = 499
	}
	decision := audit.DecisionAllow
	if ex.err != nil {
		decision = ex.err.Decision
	} else if ex.decided && !ex.decision.Allow {
		decision = audit.DecisionDeny // monitor mode
	}
	routeName := ""
	if ex.route != nil {
		routeName = ex.route.Name
	}
	if ex.reserved {
		// the upstream never answered: give the reservation back
		ex.settle(context.WithoutCancel(ex.in.Context()), 0)
	}
	if !ex.audited {
		rec := ex.record(status, cw.bytes)
		rec.Decision = decision
		if err := h.d.Audit.Append(rec); err != nil {
			if h.d.Metrics != nil {
				h.d.Metrics.AuditErrors.Inc()
			}
			// the audit log logs the outage once and keeps the record for its recovery
			h.log.Debug("audit append failed", "request_id", ex.requestID, "err", err)
		}
	}
	if h.d.Spike != nil && ex.authed {
		h.d.Spike.Observe(ex.spikeEvent(decision))
	}
	dur := time.Since(ex.start)
	if m := h.d.Metrics; m != nil {
		m.Requests.WithLabelValues(routeName, decision).Inc()
		m.RequestSeconds.WithLabelValues(routeName, decision).Observe(dur.Seconds())
		if ex.stats.Records > 0 && decision == audit.DecisionAllow {
			m.Records.WithLabelValues(routeName, ex.desc.Type, ex.desc.Action).Add(float64(ex.stats.Records))
			if m.UserRecords != nil {
				m.UserRecords.WithLabelValues(ex.user.ID, ex.desc.Type).Add(float64(ex.stats.Records))
			}
		}
		for f, n := range ex.stats.Fields {
			m.FieldsMasked.WithLabelValues(f).Add(float64(n))
		}
		for d, n := range ex.stats.Detects {
			m.Detections.WithLabelValues(d).Add(float64(n))
		}
	}
	masked := 0
	for _, n := range ex.stats.Fields {
		masked += n
	}
	sp := ex.span
	sp.SetAttributes(
		attribute.String("veil.user", ex.user.ID),
		attribute.String("veil.route", routeName),
		attribute.String("veil.resource", ex.desc.Type),
		attribute.String("veil.action", ex.desc.Action),
		attribute.String("veil.decision", decision),
		attribute.Int("veil.records", ex.stats.Records),
		attribute.Int("veil.fields_masked", masked),
		attribute.String("veil.policy_revision", ex.revision()),
		attribute.String("veil.request_id", ex.requestID),
		attribute.String("http.request.method", ex.in.Method),
		attribute.String("url.path", ex.path),
		attribute.Int("http.response.status_code", status),
		attribute.String("client.address", ex.clientIP.String()),
	)
	if ex.route != nil {
		sp.SetAttributes(attribute.String("http.route", ex.route.PathPrefix))
	}
	if ex.err != nil {
		sp.SetStatus(codes.Error, ex.err.Code)
		if ex.err.Err != nil && ex.err.Decision == audit.DecisionError {
			h.log.Warn("request failed", "request_id", ex.requestID, "route", routeName, "status", status, "err", ex.err.Err)
		}
	}
	sp.End()
}

// spikeEvent is this request's outcome for export-spike detection.
func (ex *exchange) spikeEvent(decision string) spike.Event {
	e := spike.Event{
		Time: ex.start, User: ex.user.ID, Department: ex.user.Department, Roles: ex.user.Roles,
		Resource: ex.desc.Type, Action: ex.desc.Action, Export: ex.desc.Export,
		Records: ex.stats.Records, Decision: decision, RequestID: ex.requestID,
	}
	if ex.route != nil {
		e.Route = ex.route.Name
	}
	if sc := ex.span.SpanContext(); sc.HasTraceID() {
		e.TraceID = sc.TraceID().String()
	}
	for _, s := range ex.statuses {
		e.Budgets = append(e.Budgets, spike.BudgetUse{Name: s.Name, Limit: s.Limit, Remaining: s.Remaining})
	}
	return e
}

// revision is the policy revision that decided this request, or the one in use when it
// ended before a decision.
func (ex *exchange) revision() string {
	if ex.decided && ex.decision.Revision != "" {
		return ex.decision.Revision
	}
	return ex.h.d.Policy.Revision()
}

// record builds the audit record of this exchange as it stands.
func (ex *exchange) record(status int, bytesOut int64) *audit.Record {
	rec := &audit.Record{
		Time:           ex.start.UTC(),
		RequestID:      ex.requestID,
		User:           ex.user.ID,
		Roles:          ex.user.Roles,
		ClientIP:       ex.clientIP.String(),
		Method:         ex.in.Method,
		Path:           ex.path,
		System:         ex.desc.System,
		Resource:       ex.desc.Type,
		Action:         ex.desc.Action,
		Export:         ex.desc.Export,
		Decision:       audit.DecisionAllow,
		Status:         status,
		Records:        ex.stats.Records,
		IDs:            ex.stats.IDs,
		IDsCut:         ex.stats.IDsCut,
		Fields:         ex.stats.Fields,
		UpstreamFailed: ex.stats.Failed,
		PolicyRevision: ex.revision(),
		Mode:           ex.mode,
		BytesIn:        int64(len(ex.body)),
		BytesOut:       bytesOut,
		DurationMS:     float64(time.Since(ex.start).Microseconds()) / 1000,
	}
	if sc := ex.span.SpanContext(); sc.HasTraceID() {
		rec.TraceID = sc.TraceID().String()
	}
	if ex.path == "" {
		rec.Path = ex.in.URL.Path
	}
	if ex.route != nil {
		rec.Route = ex.route.Name
	}
	if len(ex.query) > 0 {
		rec.Query = ex.query.Encode()
	}
	if ex.err != nil {
		rec.Decision, rec.Reason = ex.err.Decision, ex.err.Reason
		if ex.err.Err != nil && ex.err.Decision == audit.DecisionError {
			rec.Reason += " (" + ex.err.Err.Error() + ")"
		}
	} else if ex.decided && !ex.decision.Allow {
		rec.Decision, rec.Reason = audit.DecisionDeny, ex.decision.Reason
	}
	if len(ex.statuses) > 0 {
		rec.Limits = make(map[string]int64, len(ex.statuses))
		for _, s := range ex.statuses {
			rec.Limits[s.Name] = s.Remaining
		}
	}
	return rec
}

func (h *Handler) match(host, path string) *Route {
	for i := range h.d.Routes {
		r := &h.d.Routes[i]
		if r.Host != "" && r.Host != host {
			continue
		}
		p := path
		if r.CaseInsensitive {
			p = strings.ToLower(p)
		}
		prefix := r.PathPrefix
		if r.CaseInsensitive {
			prefix = strings.ToLower(prefix)
		}
		if strings.HasPrefix(p, prefix) || (strings.HasSuffix(prefix, "/") && p == strings.TrimSuffix(prefix, "/")) {
			return r
		}
	}
	return nil
}

func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, _ := netip.ParseAddr(remote)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// checkPoliced refuses what a policed route cannot enforce: protocol upgrades (REDTEAM 13),
// range requests (17; Request-Range is the pre-standard spelling Apache httpd still honours)
// and conflicting framing (12).
func checkPoliced(r *http.Request) error {
	if r.Header.Get("Upgrade") != "" || r.Header.Get("Http2-Settings") != "" {
		return badRequest("protocol upgrades are not allowed on this route")
	}
	if r.Header.Get("Range") != "" || r.Header.Get("Request-Range") != "" {
		return &Error{Status: http.StatusRequestedRangeNotSatisfiable, Code: "range_not_allowed", Reason: "range requests are not allowed on this route", Decision: audit.DecisionDeny}
	}
	if len(r.Header.Values("Content-Length")) > 1 {
		return badRequest("conflicting Content-Length headers")
	}
	return nil
}

// capWriter fails once more than max bytes are written.
type capWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.max {
		return 0, errBodyTooLarge
	}
	c.n += int64(len(p))
	return c.w.Write(p)
}

// idleReader fails a read that makes no progress for timeout (a stalled upstream body): it
// closes the body, which unblocks the read.
type idleReader struct {
	r       io.Reader
	timeout time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	if i.timeout <= 0 {
		return i.r.Read(p)
	}
	t := time.AfterFunc(i.timeout, func() {
		if c, ok := i.r.(io.Closer); ok {
			c.Close()
		}
	})
	n, err := i.r.Read(p)
	if !t.Stop() && err != nil {
		return n, fmt.Errorf("upstream body stalled for %s: %w", i.timeout, context.DeadlineExceeded)
	}
	return n, err
}
