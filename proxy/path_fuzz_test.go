package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/policy"
)

// recordingUpstream is a transport that records the requests Veil sends and answers each with
// an empty JSON list.
type recordingUpstream struct {
	mu  sync.Mutex
	out []*http.Request
}

func (u *recordingUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.out = append(u.out, r)
	u.mu.Unlock()
	body := `{"data":[]}`
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}

func (u *recordingUpstream) take() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.out
	u.out = nil
	return out
}

// inputRecorder allows every request and records what policy was asked about.
type inputRecorder struct {
	mu  sync.Mutex
	ins []policy.Input
}

func (p *inputRecorder) Decide(_ context.Context, in policy.Input) (policy.Decision, error) {
	p.mu.Lock()
	p.ins = append(p.ins, in)
	p.mu.Unlock()
	return policy.Decision{Allow: true}, nil
}

func (p *inputRecorder) Revision() string { return "fuzz" }

func (p *inputRecorder) take() []policy.Input {
	p.mu.Lock()
	defer p.mu.Unlock()
	ins := p.ins
	p.ins = nil
	return ins
}

// discardAudit is an Auditor that keeps nothing: the path fuzzer is not about the audit log.
type discardAudit struct{}

func (discardAudit) Append(*audit.Record) error                      { return nil }
func (discardAudit) AppendSync(context.Context, *audit.Record) error { return nil }
func (discardAudit) Healthy() error                                  { return nil }

// FuzzRequestPath sends fuzzed request-targets, parsed the way Go's server parses a request
// line, through the real handler. Invariant: a request is either refused (a 4xx, or a deny,
// and nothing reaches the upstream), or the upstream receives exactly the method, path and
// query the policy decided on, in a form no upstream normalizes any further.
func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{
		"/api/customers", "/api/customers?pageSize=10", "/api/x/../customers/export", "/api/./x/./../customers",
		"/api/x/%2e%2e/customers", "/api/x/.%2E/customers", "/api/customers%2Fexport", "/api/customers%5Cexport",
		"/api/customers\\export", "/api//customers", "///api/customers", "/api/customers#x", "/api/customers%23x",
		"/api/customers?x#y", "/API/customers", "/api/customers%3F/export", "/api/x/%C0%AE%C0%AE/customers",
		"/api/x/%u002e%u002e/", "/api/x/..;/customers", "/api/%252e%252e/", "/api/%09/", "http://veil.test/api/../customers",
		"/api/customers?a=1&a=2&_method=DELETE&callback=x", "/api/customers?q=%00", "/api/customers/%E5%AE%A2",
		"/api/customers/%EF%BC%8E%EF%BC%8E/export", "*", "/api/customers?pageSize=1;pageSize=2", "//x/../../api/customers",
	} {
		f.Add(s)
	}
	ad, err := generic.New(generic.Options{Resources: []generic.Resource{
		{Match: "/api/customers", Type: "customers", Records: str("data"), PageSizeParam: "pageSize"},
		{Match: "/api/customers/export", Type: "customers", Export: true},
		{Match: "/api/customers/{id}", Type: "customers"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	authn, err := identity.New(context.Background(), identity.Config{TrustedHeaders: &identity.TrustedHeadersConfig{
		TrustedPeers: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}})
	if err != nil {
		f.Fatal(err)
	}
	up, pol := &recordingUpstream{}, &inputRecorder{}
	h, err := proxy.New(proxy.Deps{
		Routes:   []proxy.Route{{Name: "crm", PathPrefix: "/", Upstream: &url.URL{Scheme: "http", Host: "upstream.test"}, Adapter: ad, IdentityModes: []string{"trusted_headers"}}},
		Identity: authn, Policy: pol, Audit: discardAudit{}, Transport: up,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
			"GET " + target + " HTTP/1.1\r\nHost: veil.test\r\nX-Veil-User: u\r\nX-Veil-Roles: r\r\n\r\n")))
		if err != nil {
			return // Go's server answers 400 before Veil sees the request
		}
		req.RemoteAddr = "192.0.2.1:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		ins, outs := pol.take(), up.take()
		if len(outs) == 0 {
			if w.Code < 400 {
				t.Fatalf("GET %q = %d with nothing forwarded", target, w.Code)
			}
			return
		}
		if len(outs) != 1 || len(ins) != 1 {
			t.Fatalf("GET %q: %d upstream requests, %d decisions; want 1 and 1", target, len(outs), len(ins))
		}
		in, out := ins[0], outs[0]
		wire, err := url.ParseRequestURI(out.URL.RequestURI())
		if err != nil {
			t.Fatalf("GET %q: upstream request-target %q does not parse: %v", target, out.URL.RequestURI(), err)
		}
		if out.Method != in.Request.Method {
			t.Fatalf("GET %q: upstream method %q, policy saw %q", target, out.Method, in.Request.Method)
		}
		if wire.Path != in.Request.Path {
			t.Fatalf("GET %q: upstream path %q, policy saw %q", target, wire.Path, in.Request.Path)
		}
		if again, err := proxy.NormalizePath(wire.EscapedPath()); err != nil || again != wire.Path {
			t.Fatalf("GET %q: upstream path %q normalizes to %q (%v)", target, wire.Path, again, err)
		}
		q, err := url.ParseQuery(wire.RawQuery)
		if err != nil {
			t.Fatalf("GET %q: upstream query %q does not parse: %v", target, wire.RawQuery, err)
		}
		if diff := cmp.Diff(map[string][]string(in.Request.Query), map[string][]string(q), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("GET %q: upstream query differs from policy's (-policy +upstream):\n%s", target, diff)
		}
	})
}
