package redteam

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/internal/democrm"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/policy"
)

// customer is a record of the planted upstream: every sensitive field holds a value the
// oracle looks for in every response.
type customer struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Mobile   string `json:"mobile"`
	IDCard   string `json:"id_card"`
	BankCard string `json:"bank_card"`
	Email    string `json:"email"`
	Address  string `json:"address"`
	OwnerID  string `json:"owner_id"`
	Level    string `json:"level"`
	Note     string `json:"note"`
}

// planted are the upstream's customers. Their values are valid (ID check digit, Luhn), so the
// detectors would recognise them too.
var planted = func() []customer {
	idBody := []string{"11010519800101123", "31011519900215456", "44010619751130789"}
	cardBody := []string{"622202123456789012", "621700987654321098", "622848000011112222"}
	names := []string{"欧阳娜娜", "司马秀英", "诸葛晨曦"}
	var cs []customer
	for i := range 3 {
		cs = append(cs, customer{
			ID:       fmt.Sprintf("C%05d", 10001+i),
			Name:     names[i],
			Mobile:   fmt.Sprintf("1381234%04d", 5670+i),
			IDCard:   idBody[i] + string(democrm.IDCheckDigit(idBody[i])),
			BankCard: cardBody[i] + string(democrm.LuhnDigit(cardBody[i])),
			Email:    fmt.Sprintf("planted.user%d@example.cn", i),
			Address:  fmt.Sprintf("北京市朝阳区建国路%d号%d栋%d室", 88+i, 3+i, 1201+i),
			OwnerID:  democrm.Hosts[i],
			Level:    "VIP",
			Note:     fmt.Sprintf("备用电话 1399876%04d，晚上联系", 5430+i),
		})
	}
	return cs
}()

// secrets are the values no cs_agent response may contain.
func secrets() []string {
	var s []string
	for _, c := range planted {
		s = append(s, c.Mobile, c.IDCard, c.BankCard, c.Email, c.Name, c.Address, c.Note[len("备用电话 "):len("备用电话 ")+11])
	}
	return s
}

// crm is the planted upstream. It maps paths literally (no cleaning, no redirects), the way
// many legacy upstreams do; caseless makes it resolve paths case-insensitively.
type crm struct{ caseless bool }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (c crm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if c.caseless {
		p = strings.ToLower(p)
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case p == "/api/customers" && r.Method == http.MethodGet:
		n := len(planted)
		if v, err := strconv.Atoi(r.URL.Query().Get("pageSize")); err == nil && v < n {
			n = v
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": planted[:n], "total": len(planted)})
	case p == "/api/customers/export" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "name", "mobile", "id_card", "bank_card", "email", "address", "owner_id", "note"})
		for _, c := range planted {
			cw.Write([]string{c.ID, c.Name, c.Mobile, c.IDCard, c.BankCard, c.Email, c.Address, c.OwnerID, c.Note})
		}
		cw.Flush()
	case len(segs) == 3 && segs[0] == "api" && segs[1] == "customers":
		for _, cu := range planted {
			if cu.ID != segs[2] {
				continue
			}
			switch r.Method {
			case http.MethodGet:
				writeJSON(w, http.StatusOK, cu)
			case http.MethodDelete:
				w.WriteHeader(http.StatusNoContent)
			default:
				writeJSON(w, http.StatusOK, cu) // a write answers with the whole record
			}
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "customer " + segs[2] + " not found"})
	case p == "/api/products":
		writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{"id": "P001", "name": "保温杯", "price": 49.9}}})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such path"})
	}
}

// seen is a request as the upstream received it.
type seen struct {
	Method     string
	Path       string // decoded
	RawPath    string // escaped, as on the wire
	RawQuery   string
	RequestURI string
	Host       string
	Header     http.Header
	Body       []byte
}

// recorder records every request the upstream receives before serving it.
type recorder struct {
	h  http.Handler
	mu sync.Mutex
	rs []seen
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	rc.mu.Lock()
	rc.rs = append(rc.rs, seen{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: b,
	})
	rc.mu.Unlock()
	rc.h.ServeHTTP(w, r)
}

// take returns the requests recorded since the last take.
func (rc *recorder) take() []seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rs := rc.rs
	rc.rs = nil
	return rs
}

// decided is one policy evaluation: its input and its outcome.
type decided struct {
	In  policy.Input
	Out policy.Decision
	Err error
}

// recordingPolicy wraps a Decider and records every input it is asked about.
type recordingPolicy struct {
	inner proxy.Decider
	mu    sync.Mutex
	ds    []decided
}

func (p *recordingPolicy) Decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	d, err := p.inner.Decide(ctx, in)
	p.mu.Lock()
	p.ds = append(p.ds, decided{in, d, err})
	p.mu.Unlock()
	return d, err
}

func (p *recordingPolicy) Revision() string { return p.inner.Revision() }

func (p *recordingPolicy) take() []decided {
	p.mu.Lock()
	defer p.mu.Unlock()
	ds := p.ds
	p.ds = nil
	return ds
}

// fixedPolicy decides the same for every request.
type fixedPolicy struct{ d policy.Decision }

func (f fixedPolicy) Decide(context.Context, policy.Input) (policy.Decision, error) { return f.d, nil }
func (f fixedPolicy) Revision() string                                              { return "fixed" }

// maskAll is a plan that masks every planted field and scans free text.
var maskAll = policy.Decision{Allow: true, Fields: map[string]string{
	"name": "mask:name", "mobile": "mask:phone", "phone": "mask:phone", "id_card": "mask:id_card",
	"bank_card": "mask:bank_card", "email": "mask:email", "address": "mask:address",
}, Detect: []string{"phone", "id_card", "bank_card", "email"}}

var (
	shippedOnce sync.Once
	shipped     *policy.Engine
	shippedErr  error
)

// shippedPolicy is the policy Veil ships, compiled once for the whole suite.
func shippedPolicy(t testing.TB) *policy.Engine {
	t.Helper()
	shippedOnce.Do(func() {
		shipped, shippedErr = policy.New(context.Background(), policy.Options{FS: policies.FS})
	})
	if shippedErr != nil {
		t.Fatalf("shipped policy: %v", shippedErr)
	}
	return shipped
}

func str(s string) *string { return &s }

// resources are the planted upstream's resources, as `veil demo` configures them.
func resources() []generic.Resource {
	return []generic.Resource{
		{Match: "/api/customers", Type: "customers", Records: str("data"), PageSizeParam: "pageSize"},
		{Match: "/api/customers/export", Type: "customers", Export: true, Format: "csv"},
		{Match: "/api/customers/{id}", Type: "customers"},
		{Match: "/api/products", Type: "products", Records: str("data")},
	}
}

// env is Veil in front of a recording upstream, with a recording policy.
type env struct {
	*veiltest.Rig
	up  *recorder
	pol *recordingPolicy
}

// newEnv starts Veil with o; zero fields take the planted upstream, the generic adapter over
// resources(), the /api/ prefix and the shipped policy.
func newEnv(t *testing.T, o veiltest.Options) *env {
	t.Helper()
	e := &env{}
	if o.Upstream == nil {
		o.Upstream = crm{}
	}
	e.up = &recorder{h: o.Upstream}
	o.Upstream = e.up
	if o.Adapter == nil {
		ad, err := generic.New(generic.Options{Resources: resources()})
		if err != nil {
			t.Fatal(err)
		}
		o.Adapter = ad
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/api/"
	}
	if o.Policy == nil {
		o.Policy = shippedPolicy(t)
	}
	e.pol = &recordingPolicy{inner: o.Policy}
	o.Policy = e.pol
	e.Rig = veiltest.New(t, o)
	return e
}

// as sends a request as user u1 with roles through Go's client, checks the response with the
// oracle and returns it.
func (e *env) as(t *testing.T, roles, method, target string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b := e.Do(method, target, "u1", roles, body, hdr...)
	noLeak(t, resp.Header, b)
	return resp, b
}

// response is one response read off a raw connection.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error // the body could not be read to its end (an aborted response)
}

// raw writes payload to a new connection to Veil and reads every response until the
// connection closes or goes quiet for quiet. The oracle checks the raw bytes and each
// response.
func (e *env) raw(t *testing.T, payload string, quiet time.Duration) []response {
	t.Helper()
	return rawTo(t, e.Veil.Listener.Addr().String(), payload, quiet)
}

func rawTo(t *testing.T, addr, payload string, quiet time.Duration) []response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	br := bufio.NewReader(io.TeeReader(&deadlineConn{c, quiet}, &all))
	var out []response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				br.Reset(strings.NewReader("")) // quiet: nothing more is coming
			}
			break
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{Status: resp.StatusCode, Header: resp.Header, Body: b, Err: rerr}
		noLeak(t, r.Header, r.Body)
		out = append(out, r)
		if rerr != nil || resp.Close {
			break
		}
	}
	io.Copy(io.Discard, br)
	if l := veiltest.Leaks(all.Bytes(), secrets()); len(l) > 0 {
		t.Errorf("raw bytes from Veil leak %q", l)
	}
	return out
}

// deadlineConn pushes the read deadline forward on every read: reads fail once the peer has
// been quiet for quiet.
type deadlineConn struct {
	net.Conn
	quiet time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.SetReadDeadline(time.Now().Add(d.quiet))
	return d.Conn.Read(p)
}

// csAgent is the trusted identity of a raw request as cs_agent, each line ending in CRLF.
const csAgent = "X-Veil-User: u1\r\nX-Veil-Roles: cs_agent\r\n"

// noLeak is the oracle: no planted secret in the body — raw, as decoded from its content
// codings, as JSON strings — nor in any header value.
func noLeak(t *testing.T, h http.Header, body []byte) {
	t.Helper()
	views := [][]byte{body}
	if ce := h.Values("Content-Encoding"); len(ce) > 0 && len(body) > 0 {
		dec, err := decode(body, ce)
		if err != nil {
			t.Errorf("Content-Encoding %q: the oracle cannot decode the body: %v", ce, err)
		}
		views = append(views, dec)
	}
	var hv strings.Builder
	for k, vs := range h {
		hv.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
		if u, err := url.QueryUnescape(strings.Join(vs, ",")); err == nil {
			hv.WriteString(u + "\n")
		}
	}
	views = append(views, []byte(hv.String()))
	for _, v := range views {
		if l := veiltest.Leaks(v, secrets()); len(l) > 0 {
			t.Errorf("response leaks %q (headers %v, %d body bytes)", l, h, len(body))
			return
		}
	}
}

// decode undoes the codings listed in Content-Encoding, last applied first.
func decode(body []byte, ce []string) ([]byte, error) {
	var codings []string
	for _, v := range ce {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	for i := len(codings) - 1; i >= 0; i-- {
		var r io.Reader
		var err error
		switch codings[i] {
		case "gzip", "x-gzip":
			r, err = gzip.NewReader(bytes.NewReader(body))
		case "deflate":
			r, err = zlib.NewReader(bytes.NewReader(body))
			if err != nil {
				r, err = flate.NewReader(bytes.NewReader(body)), nil
			}
		case "br":
			r = brotli.NewReader(bytes.NewReader(body))
		case "zstd":
			var d *zstd.Decoder
			d, err = zstd.NewReader(bytes.NewReader(body))
			if err == nil {
				defer d.Close()
				r = d
			}
		default:
			return nil, fmt.Errorf("unknown coding %q", codings[i])
		}
		if err != nil {
			return nil, err
		}
		if body, err = io.ReadAll(r); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// encode applies codings in order.
func encode(t testing.TB, body []byte, codings ...string) []byte {
	t.Helper()
	for _, c := range codings {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch strings.ToLower(c) {
		case "gzip", "x-gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w = zlib.NewWriter(&buf)
		case "br":
			w = brotli.NewWriter(&buf)
		case "zstd":
			zw, err := zstd.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w = zw
		default:
			t.Fatalf("encode: unknown coding %q", c)
		}
		w.Write(body)
		w.Close()
		body = buf.Bytes()
	}
	return body
}

// sameRequest checks that the upstream received exactly the request policy decided on: one
// policy input, one upstream request, equal method, path and query (the page size may be the
// policy's cap), and the audit record's path. It returns what the upstream saw.
func (e *env) sameRequest(t *testing.T) seen {
	t.Helper()
	ups, ds := e.up.take(), e.pol.take()
	if len(ups) != 1 || len(ds) != 1 {
		t.Fatalf("upstream got %d requests, policy %d decisions; want 1 and 1", len(ups), len(ds))
	}
	up, in, d := ups[0], ds[0].In, ds[0].Out
	if up.Method != in.Request.Method {
		t.Errorf("upstream method %q, policy saw %q", up.Method, in.Request.Method)
	}
	if up.Path != in.Request.Path || up.RawPath != (&url.URL{Path: in.Request.Path}).EscapedPath() {
		t.Errorf("upstream path %q (wire %q), policy saw %q", up.Path, up.RawPath, in.Request.Path)
	}
	q, err := url.ParseQuery(up.RawQuery)
	if err != nil {
		t.Errorf("upstream query %q does not parse: %v", up.RawQuery, err)
	}
	want := url.Values{}
	for k, v := range in.Request.Query {
		want[k] = slices.Clone(v)
	}
	if d.MaxPageSize > 0 && in.Resource.PageSize != 0 && in.Resource.PageSize > d.MaxPageSize {
		want.Set("pageSize", strconv.Itoa(d.MaxPageSize))
	}
	if d.MaxPageSize > 0 && in.Resource.PageSize == 0 && in.Resource.Action == "list" {
		want.Set("pageSize", strconv.Itoa(d.MaxPageSize))
	}
	if q.Encode() != want.Encode() {
		t.Errorf("upstream query %q, policy saw %q", q.Encode(), want.Encode())
	}
	if strings.ContainsAny(up.RequestURI, "#") {
		t.Errorf("upstream request-target %q holds a fragment", up.RequestURI)
	}
	return up
}

// nothingForwarded checks that the upstream received nothing.
func (e *env) nothingForwarded(t *testing.T) {
	t.Helper()
	if ups := e.up.take(); len(ups) > 0 {
		t.Errorf("upstream received %d requests, first %s %s; want none", len(ups), ups[0].Method, ups[0].RequestURI)
	}
	e.pol.take()
}

// status fails the test unless got is one of want.
func status(t *testing.T, what string, got int, want ...int) {
	t.Helper()
	if !slices.Contains(want, got) {
		t.Errorf("%s = %d, want %v", what, got, want)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			sum += d.GetCounter().GetValue() + d.GetGauge().GetValue()
		}
	}
	return sum
}
