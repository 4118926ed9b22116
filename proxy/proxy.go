// Package proxy is Veil's HTTP request path: route, identify, describe, decide, limit, forward,
// rewrite and audit every request in one pass.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/spike"
	"github.com/veilproxy/veil/proxy/upstreamauth"
)

// Authenticator establishes who is calling.
type Authenticator interface {
	Sanitize(h http.Header, peer netip.Addr)
	AuthenticateRoute(ctx context.Context, r *http.Request, peer netip.Addr, rt identity.Route) (identity.User, error)
	ClientIP(h http.Header, peer netip.Addr) netip.Addr
	StripCredentials(h http.Header, u identity.User)
}

// Decider evaluates the policy.
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
	Revision() string
}

// Auditor writes audit records.
type Auditor interface {
	Append(rec *audit.Record) error
	AppendSync(ctx context.Context, rec *audit.Record) error
	Healthy() error
}

// Restrictions reports users held by export-spike containment.
type Restrictions interface {
	Restricted(ctx context.Context, user string) (bool, time.Time, error)
}

// Observer receives request outcomes; it must not block.
type Observer interface {
	Observe(e spike.Event)
}

// Route is one configured route, ready to serve.
type Route struct {
	Name            string
	Host            string // "" = any; compared without port, case-insensitively
	PathPrefix      string
	Upstream        *url.URL
	Adapter         adapters.Adapter
	IdentityModes   []string
	TokenResolver   *identity.TokenResolver // upstream_token identity; nil = off
	UpstreamAuth    *upstreamauth.Replacer  // service credential for the upstream; nil = forward the client's
	OnStoreError    string                  // "deny" or "allow"
	Mode            string                  // "" = the policy's; "enforce" or "monitor" overrides it
	Timeout         time.Duration           // whole upstream exchange; 0 = none
	CaseInsensitive bool
}

// Limits bound what one request may cost. Zero values take the defaults shown.
type Limits struct {
	MaxRequestBody        int64         // 10 MiB
	MaxResponseBody       int64         // decoded bytes buffered for a rewrite; 64 MiB
	MaxRecordBytes        int64         // one record while streaming; 16 MiB
	StreamThreshold       int64         // bodies larger or of unknown length stream; 1 MiB
	MaxStreamBody         int64         // decoded bytes of one streamed body; 4 GiB
	MaxJSONDepth          int           // 512
	UpstreamHeaderTimeout time.Duration // 30s
	UpstreamIdleTimeout   time.Duration // a body read that makes no progress this long fails; 30s
}

// Deps is everything the handler needs. Nil optional fields are off.
type Deps struct {
	Routes    []Route
	Identity  Authenticator
	Policy    Decider
	Budgets   limit.Store // nil: decisions with limits fail closed (503)
	Audit     Auditor
	Metrics   *Metrics             // nil = none
	Tracer    trace.TracerProvider // nil = no tracing
	Transport http.RoundTripper    // nil = a tuned http.Transport
	HashKey   []byte
	Limits    Limits
	// AuditOnError says what a non-export request does when the audit log is broken:
	// "deny" (default) or "allow". Exports always fail closed.
	AuditOnError string
	Logger       *slog.Logger
	// Restrictions says whether export-spike containment holds a user (the policy sees it as
	// input.user.restricted); nil = nobody is. A lookup error counts as restricted.
	Restrictions Restrictions
	// Spike receives every identified request's outcome for export-spike detection; nil = off.
	Spike Observer
	Now   func() time.Time
}

// Handler is the policy-enforcing reverse proxy.
type Handler struct {
	d      Deps
	rp     *httputil.ReverseProxy
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	log    *slog.Logger
	bufs   sync.Pool
}

// New builds the handler.
func New(d Deps) (*Handler, error) {
	if d.Identity == nil || d.Policy == nil || d.Audit == nil {
		return nil, errors.New("proxy: identity, policy and audit are required")
	}
	for i, r := range d.Routes {
		if r.Adapter == nil || r.Upstream == nil {
			return nil, fmt.Errorf("proxy: route %q: adapter and upstream are required", r.Name)
		}
		d.Routes[i].Host = strings.ToLower(r.Host)
	}
	l := &d.Limits
	setDefault(&l.MaxRequestBody, 10<<20)
	setDefault(&l.MaxResponseBody, 64<<20)
	setDefault(&l.MaxRecordBytes, 16<<20)
	setDefault(&l.StreamThreshold, 1<<20)
	setDefault(&l.MaxStreamBody, 4<<30)
	setDefault(&l.MaxJSONDepth, 512)
	setDefault(&l.UpstreamHeaderTimeout, 30*time.Second)
	setDefault(&l.UpstreamIdleTimeout, 30*time.Second)
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tracer == nil {
		d.Tracer = noop.NewTracerProvider()
	}
	if d.Transport == nil {
		d.Transport = NewTransport(l.UpstreamHeaderTimeout, 256)
	}
	h := &Handler{
		d:      d,
		tracer: d.Tracer.Tracer("github.com/veilproxy/veil/proxy"),
		prop:   propagation.TraceContext{},
		log:    d.Logger,
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewriteRequest,
		Transport:      trailerless{d.Transport},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       slog.NewLogLogger(d.Logger.Handler(), slog.LevelWarn),
		FlushInterval:  -1,
		BufferPool:     copyBuffers{},
	}
	return h, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// NewTransport returns the upstream transport: bounded connection pool, response-header timeout,
// no automatic decompression (Veil decodes every coding itself, with a cap).
func NewTransport(headerTimeout time.Duration, maxConns int) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           maxConns,
		MaxIdleConnsPerHost:    maxConns,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  headerTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers instead of allocating one per response.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

type ctxKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(ctxKey{}).(*exchange)
	return ex
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{h: h, start: h.d.Now(), requestID: newRequestID(), in: r}
	ctx := h.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, "veil.request", trace.WithSpanKind(trace.SpanKindServer))
	ex.span = span
	ctx = context.WithValue(ctx, ctxKey{}, ex)
	r = r.WithContext(ctx)
	cw := &countingWriter{ResponseWriter: w}
	ex.w = cw
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				h.log.Error("panic serving request", "request_id", ex.requestID, "panic", fmt.Sprint(p))
			}
			ex.fail(&Error{Status: http.StatusBadGateway, Code: "aborted", Reason: "response aborted", Decision: audit.DecisionError, Err: fmt.Errorf("%v", p)})
			ex.finish(cw)
			panic(http.ErrAbortHandler)
		}
		ex.finish(cw)
	}()
	if err := ex.prepare(ctx); err != nil {
		ex.fail(err)
		writeError(cw, ex.err, ex.requestID)
		return
	}
	if ex.route.Timeout > 0 {
		tctx, cancel := context.WithTimeout(ctx, ex.route.Timeout)
		defer cancel()
		r = r.WithContext(tctx)
	}
	h.rp.ServeHTTP(cw, r)
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errorHandler is ReverseProxy's one error exit: transport errors and ModifyResponse errors.
func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	ex.fail(err)
	writeError(w, ex.err, ex.requestID)
}

// countingWriter counts the bytes and remembers the status sent to the client; it never
// sends an informational (1xx) response.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader sends the final status. Informational responses (1xx) are dropped:
// ReverseProxy relays an upstream's 103 Early Hints and the like straight from the transport,
// before ModifyResponse, so their headers would reach the client unmasked.
func (c *countingWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (h *Handler) getBuf() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (h *Handler) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		h.bufs.Put(b)
	}
}

var _ io.Writer = (*countingWriter)(nil)
