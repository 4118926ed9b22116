// Package veiltest runs a real Veil handler in front of a real upstream on loopback, with the
// shipped policy, for tests of the proxy, the adapters and the red-team suite.
package veiltest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
)

// Options configure a Rig. Zero values take the defaults shown.
type Options struct {
	Upstream     http.Handler         // required
	Adapter      adapters.Adapter     // required
	Route        string               // route name; "crm"
	PathPrefix   string               // "/"
	TrustedPeers []string             // loopback
	Budgets      limit.Store          // a memory store
	Policy       proxy.Decider        // the shipped policy
	Mode         string               // the policy's
	OnStoreError string               // "deny"
	Limits       proxy.Limits         // proxy defaults, with a 2s upstream idle timeout
	AuditPath    string               // a file in t.TempDir()
	Metrics      *proxy.Metrics       // none
	Tracer       trace.TracerProvider // none
	Logger       *slog.Logger         // discard

	// Identity replaces the identity configuration; nil: trusted headers (X-Veil-User,
	// X-Veil-Roles, X-Veil-Department, X-Veil-Email) from TrustedPeers.
	Identity *identity.Config
	// IdentityModes are the route's identity modes; nil: ["trusted_headers"].
	IdentityModes []string
	// Host binds the route to a host; "" matches any host.
	Host string
	// CaseInsensitive makes the route match paths case-insensitively.
	CaseInsensitive bool
	// AuditOnError is the handler's audit.on_error: "" (deny) or "allow".
	AuditOnError string
	// Server, when set, adjusts Veil's http.Server (timeouts, header limits) before it starts.
	Server func(*http.Server)
	// Restrictions and Spike are the handler's containment lookup and spike observer; nil = off.
	Restrictions proxy.Restrictions
	Spike        proxy.Observer
}

// Rig is a running Veil in front of a running upstream.
type Rig struct {
	T         testing.TB
	Veil      *httptest.Server
	Upstream  *httptest.Server
	Handler   *proxy.Handler
	Audit     *audit.Log
	AuditPath string
	Policy    proxy.Decider
}

// New starts the upstream and Veil; both stop when the test ends.
func New(t testing.TB, o Options) *Rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &Rig{T: t}
	r.Upstream = httptest.NewServer(o.Upstream)
	t.Cleanup(r.Upstream.Close)

	idc := o.Identity
	if idc == nil {
		peers := o.TrustedPeers
		if peers == nil {
			peers = []string{"127.0.0.1/32", "::1/128"}
		}
		tc := &identity.TrustedHeadersConfig{User: "X-Veil-User", Roles: "X-Veil-Roles", Department: "X-Veil-Department", Email: "X-Veil-Email"}
		for _, p := range peers {
			tc.TrustedPeers = append(tc.TrustedPeers, netip.MustParsePrefix(p))
		}
		idc = &identity.Config{TrustedHeaders: tc}
	}
	authn, err := identity.New(ctx, *idc)
	if err != nil {
		t.Fatal(err)
	}
	r.Policy = o.Policy
	if r.Policy == nil {
		r.Policy = Shipped(t)
	}
	r.AuditPath = o.AuditPath
	if r.AuditPath == "" {
		r.AuditPath = filepath.Join(t.TempDir(), "audit.jsonl")
	}
	r.Audit, err = audit.Open(audit.Options{Path: r.AuditPath, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Audit.Close() })
	budgets := o.Budgets
	if budgets == nil {
		budgets = limit.NewMemory(time.Now)
	}
	name, prefix, ose := o.Route, o.PathPrefix, o.OnStoreError
	if name == "" {
		name = "crm"
	}
	if prefix == "" {
		prefix = "/"
	}
	if ose == "" {
		ose = "deny"
	}
	lim := o.Limits
	if lim.UpstreamIdleTimeout == 0 {
		lim.UpstreamIdleTimeout = 2 * time.Second
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	modes := o.IdentityModes
	if modes == nil {
		modes = []string{"trusted_headers"}
	}
	upURL, _ := url.Parse(r.Upstream.URL)
	r.Handler, err = proxy.New(proxy.Deps{
		Routes: []proxy.Route{{
			Name: name, Host: o.Host, PathPrefix: prefix, Upstream: upURL, Adapter: o.Adapter,
			IdentityModes: modes, OnStoreError: ose, Mode: o.Mode, Timeout: 10 * time.Second,
			CaseInsensitive: o.CaseInsensitive,
		}},
		Identity: authn, Policy: r.Policy, Budgets: budgets, Audit: r.Audit,
		Metrics: o.Metrics, Tracer: o.Tracer, AuditOnError: o.AuditOnError,
		HashKey: []byte("veiltest-hash-key"), Logger: logger, Limits: lim,
		Restrictions: o.Restrictions, Spike: o.Spike,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Veil = httptest.NewUnstartedServer(r.Handler)
	if o.Server != nil {
		o.Server(r.Veil.Config)
	}
	r.Veil.Start()
	t.Cleanup(r.Veil.Close)
	return r
}

// Do sends a request through Veil as user with roles ("" user sends no identity headers);
// hdr is a list of header name, value pairs.
func (r *Rig) Do(method, target, user, roles string, body []byte, hdr ...string) (*http.Response, []byte) {
	r.T.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, r.Veil.URL+target, rd)
	if err != nil {
		r.T.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Veil-User", user)
		req.Header.Set("X-Veil-Roles", roles)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := r.Veil.Client().Do(req)
	if err != nil {
		r.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.T.Fatal(err)
	}
	return resp, b
}

// shipped is the shipped policy, compiled once per test binary.
var shipped = sync.OnceValues(func() (*policy.Engine, error) {
	return policy.New(context.Background(), policy.Options{FS: policies.FS})
})

// Shipped returns the shipped policy, compiled once per test binary and shared (the engine is
// safe for concurrent use).
func Shipped(t testing.TB) *policy.Engine {
	t.Helper()
	eng, err := shipped()
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// WaitAudit waits until the audit log holds at least n records and returns them all: a
// request's record is written as its handler returns, which may be just after the client
// has read the response. It fails the test after 5 seconds.
func (r *Rig) WaitAudit(n int) []audit.Record {
	r.T.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := r.AuditRecords()
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			r.T.Fatalf("audit holds %d records, want %d", len(recs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AuditRecords flushes the audit log and reads every record back.
func (r *Rig) AuditRecords() []audit.Record {
	r.T.Helper()
	if err := r.Audit.AppendSync(context.Background(), &audit.Record{Time: time.Now(), RequestID: "flush", Decision: "allow"}); err != nil {
		r.T.Fatal(err)
	}
	files, err := audit.Files(r.AuditPath)
	if err != nil {
		r.T.Fatal(err)
	}
	var recs []audit.Record
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			r.T.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			var rec audit.Record
			if err := json.Unmarshal(line, &rec); err != nil {
				r.T.Fatalf("audit line %q: %v", line, err)
			}
			if rec.RequestID != "flush" {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// Leaks returns the secrets found in body: in the raw bytes, in the JSON-decoded strings (so
// \uXXXX escapes and JSON inside strings cannot hide one), and, for numbers of 11+ digits, in
// the body's digits run together (a masker that only moved separators would still leak).
func Leaks(body []byte, secrets []string) []string {
	views := []string{string(body)}
	var v any
	if json.Unmarshal(body, &v) == nil {
		var sb strings.Builder
		collectStrings(v, &sb, 0)
		views = append(views, sb.String())
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r == 'X' {
			return r
		}
		return -1
	}, string(body))
	var found []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		leaked := false
		for _, view := range views {
			if strings.Contains(view, s) {
				leaked = true
			}
		}
		if !leaked && len(s) >= 11 && strings.Trim(s, "0123456789X") == "" && strings.Contains(digits, s) {
			leaked = true
		}
		if leaked {
			found = append(found, s)
		}
	}
	return found
}

func collectStrings(v any, sb *strings.Builder, depth int) {
	if depth > 64 {
		return
	}
	switch x := v.(type) {
	case string:
		sb.WriteString(x)
		sb.WriteByte('\n')
		var inner any
		if json.Unmarshal([]byte(x), &inner) == nil {
			collectStrings(inner, sb, depth+1)
		}
	case []any:
		for _, e := range x {
			collectStrings(e, sb, depth+1)
		}
	case map[string]any:
		for k, e := range x {
			sb.WriteString(k)
			sb.WriteByte('\n')
			collectStrings(e, sb, depth+1)
		}
	}
}
