package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/mask"
	"github.com/veilproxy/veil/proxy/policy"
)

// allowedMethods are the methods Veil describes, decides on and forwards. Anything else is
// refused before routing: CONNECT and TRACE (a tunnel and an echo of the request, neither of
// which Veil can police), WebDAV and custom methods no adapter describes, and other spellings
// of these ("get", "Delete") that an upstream may read as the method a policy denies.
var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// allowHeader lists allowedMethods for the Allow header of a 405.
const allowHeader = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// checkMethod refuses a method outside allowedMethods with 405 and an Allow header.
func checkMethod(w http.ResponseWriter, method string) error {
	if allowedMethods[method] {
		return nil
	}
	w.Header().Set("Allow", allowHeader)
	return &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Reason: "this method is not allowed through Veil", Decision: audit.DecisionDeny}
}

// methodOverrideHeaders are the headers frameworks read as the method to execute (REDTEAM 6),
// folded (see foldName).
var methodOverrideHeaders = map[string]bool{"x-http-method-override": true, "x-http-method": true, "x-method-override": true}

// foldName is a header or parameter name the way servers that read "_" as "-" see it (CGI,
// PHP, WSGI, nginx with underscores_in_headers): lower case, "_" as "-".
func foldName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// stripMethodOverride removes every method-override header, under any spelling, before
// anything reads the headers: the upstream executes the method policy saw.
func stripMethodOverride(h http.Header) {
	for k := range h {
		if methodOverrideHeaders[foldName(k)] {
			delete(h, k)
		}
	}
}

// isMethodParam reports whether a form or JSON field name is the method-override parameter.
func isMethodParam(name string) bool {
	return strings.EqualFold(strings.TrimSpace(name), "_method")
}

// checkBodyOverride refuses a request body that carries a _method field where frameworks read
// one as the method to execute: form bodies (Rack::MethodOverride, Symfony, Laravel; Rack
// also reads a POST without Content-Type as a form), multipart form data, and JSON objects
// (Laravel merges JSON into its input). The query parameter is stripped in parse; a body is
// not rewritten, so it is refused (400). A multipart body that does not parse is refused too:
// Veil cannot tell what the upstream would read in it.
func checkBodyOverride(contentType string, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	refuse := badRequest("method override fields are not allowed in the request body")
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "application/x-www-form-urlencoded", nil
	}
	if err != nil {
		return badRequest("the request's Content-Type is malformed")
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		for pair := range strings.FieldsFuncSeq(string(body), func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(pair, "=")
			if u, err := url.QueryUnescape(k); err == nil {
				k = u
			}
			if isMethodParam(k) {
				return refuse
			}
		}
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return badRequest("the multipart request body is malformed")
			}
			if isMethodParam(p.FormName()) {
				return refuse
			}
		}
	case strings.Contains(mt, "json"):
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) == nil {
			for k := range obj {
				if isMethodParam(k) {
					return refuse
				}
			}
		}
	}
	return nil
}

// clientAddressHeaders are the headers proxies and CDNs use to name the client, folded (see
// foldName). Veil reads the client from the socket and trusted X-Forwarded-For hops only
// (REDTEAM 10); once it has, these are removed, so that neither the policy input nor the
// upstream sees an address the client made up, and the upstream is told the client Veil used.
var clientAddressHeaders = map[string]bool{
	"x-forwarded-for": true, "forwarded": true, "x-real-ip": true, "true-client-ip": true,
	"x-client-ip": true, "cf-connecting-ip": true, "fastly-client-ip": true,
	"x-cluster-client-ip": true, "x-originating-ip": true, "x-forwarded": true, "forwarded-for": true,
}

// stripClientAddress removes every client-address header, under any spelling.
func stripClientAddress(h http.Header) {
	for k := range h {
		if clientAddressHeaders[foldName(k)] {
			delete(h, k)
		}
	}
}

// forwardedFor is the X-Forwarded-For Veil sends upstream: the client policy saw, then the
// peer that told Veil about it when that was a trusted proxy.
func forwardedFor(client, peer netip.Addr) string {
	if !client.IsValid() {
		return peer.String()
	}
	if !peer.IsValid() || client == peer {
		return client.String()
	}
	return client.String() + ", " + peer.String()
}

// trailerless is the upstream transport minus trailers: Veil never relays an upstream's
// trailers, which ReverseProxy would copy to the client after the body, past the rewrite. The
// response ReverseProxy sees is a copy without them, so the transport, which fills in the
// trailers of its own response when the body ends, never writes to a value Veil reads.
type trailerless struct{ rt http.RoundTripper }

func (t trailerless) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	out := *resp
	out.Trailer = nil
	return &out, nil
}

// maskHeaders runs the plan's detectors over every upstream response header value: upstreams
// echo records into Location, Set-Cookie, Content-Disposition, Link and headers of their own
// (REDTEAM 22). Field rules name fields of records and cannot apply to headers; the detectors
// can. A hit is masked in place; a value that still holds a hit once percent-decoded (an
// escaped "@" in a Location) is removed. Monitor mode sends headers as the upstream did.
func (ex *exchange) maskHeaders(h http.Header) {
	det := ex.plan.Detect
	if ex.mode == policy.ModeMonitor || len(det) == 0 {
		return
	}
	for k, vs := range h {
		kept := vs[:0]
		for _, v := range vs {
			out, hits := mask.Scan(det, v)
			ex.countDetections(hits)
			if u, err := url.QueryUnescape(out); err == nil && u != out {
				if _, more := mask.Scan(det, u); more != nil {
					ex.countDetections(more)
					continue
				}
			}
			kept = append(kept, out)
		}
		if len(kept) == 0 {
			delete(h, k)
		} else {
			h[k] = kept
		}
	}
}

func (ex *exchange) countDetections(hits map[string]int) {
	if m := ex.h.d.Metrics; m != nil {
		for d, n := range hits {
			m.Detections.WithLabelValues(d).Add(float64(n))
		}
	}
}

// sanitizeHeaders is everything Veil does to the request headers before anything reads them,
// in one place: identity headers the peer may not send are removed (REDTEAM 9), the client
// address is read from the socket and trusted hops and the client-address headers removed
// (10), method-override headers are removed (6), and a header with a name that is not a token
// or a value with control characters refuses the request (11). It returns the client address.
func sanitizeHeaders(a Authenticator, h http.Header, peer netip.Addr) (netip.Addr, error) {
	a.Sanitize(h, peer)
	client := a.ClientIP(h, peer)
	stripClientAddress(h)
	stripMethodOverride(h)
	return client, checkHeaders(h)
}

// checkHeaders refuses header names that are not tokens and values with control characters
// other than tab (REDTEAM 11). Go's server already refuses most of these, and bare CR/LF and
// space before the colon; this holds whatever server or test builds the request.
func checkHeaders(h http.Header) error {
	for k, vs := range h {
		if !isToken(k) {
			return badRequest("a header name is not a valid token")
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return badRequest("header " + k + " contains control characters")
				}
			}
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token: the characters a header name may hold.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
