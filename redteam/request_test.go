package redteam

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/policy"
)

// quiet is how long a raw connection may stay silent before the reader gives up.
const quiet = 2 * time.Second

// request builds a raw HTTP/1.1 request as cs_agent that closes the connection after the
// response; lines are extra header lines without line ends.
func request(method, target string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: veil.test\r\n%sConnection: close\r\n", method, target, csAgent)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// one returns the single response of rs.
func one(t *testing.T, rs []response) response {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("got %d responses, want 1", len(rs))
	}
	return rs[0]
}

// refused checks that Veil answered one of want before asking the policy or the upstream.
func (e *env) refused(t *testing.T, rs []response, want ...int) {
	t.Helper()
	if len(rs) == 0 {
		t.Errorf("no response; want one of %v", want)
	} else {
		status(t, "status", rs[0].Status, want...)
	}
	if ds := e.pol.take(); len(ds) > 0 {
		t.Errorf("policy was asked about %q; want a refusal before the policy", ds[0].In.Request.Path)
	}
	e.nothingForwarded(t)
}

// deniedAt checks that the policy decided on path (and nothing else) and denied it, and that
// the upstream got nothing.
func (e *env) deniedAt(t *testing.T, rs []response, path string) {
	t.Helper()
	if len(rs) == 0 {
		t.Fatalf("no response; want 403")
	}
	status(t, "status", rs[0].Status, http.StatusForbidden)
	ds := e.pol.take()
	if len(ds) != 1 || ds[0].In.Request.Path != path {
		var got []string
		for _, d := range ds {
			got = append(got, d.In.Request.Path)
		}
		t.Errorf("policy saw paths %q, want [%q]", got, path)
	}
	if ups := e.up.take(); len(ups) > 0 {
		t.Errorf("upstream received %s %s; want nothing", ups[0].Method, ups[0].RequestURI)
	}
}

// allowedAt checks a 200 whose request reached the upstream exactly as policy saw it, at path.
func (e *env) allowedAt(t *testing.T, rs []response, path string) seen {
	t.Helper()
	r := one(t, rs)
	status(t, "status", r.Status, http.StatusOK)
	up := e.sameRequest(t)
	if up.Path != path {
		t.Errorf("upstream path %q, want %q", up.Path, path)
	}
	return up
}

// case01 — dot segments are removed before anything reads the path.
func case01(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	deny := []struct{ name, target, path string }{
		{"parent", "/api/x/../customers/export", "/api/customers/export"},
		{"dot_then_parent", "/api/./x/./../customers/export", "/api/customers/export"},
		{"encoded_parent", "/api/x/%2e%2e/customers/export", "/api/customers/export"},
		{"mixed_case_encoding", "/api/x/.%2E/customers/export", "/api/customers/export"},
		{"encoded_both_cases", "/api/x/%2E%2e/customers/export", "/api/customers/export"},
		{"encoded_dot", "/api/customers/%2e/export", "/api/customers/export"},
		{"absolute_form", "http://veil.test/api/x/../customers/export", "/api/customers/export"},
		{"trailing_parent", "/api/customers/export/x/..", "/api/customers/export/"},
	}
	for _, tt := range deny {
		t.Run(tt.name, func(t *testing.T) {
			e.deniedAt(t, e.raw(t, request("GET", tt.target), quiet), tt.path)
		})
	}
	t.Run("allowed_after_normalizing", func(t *testing.T) {
		e.allowedAt(t, e.raw(t, request("GET", "/api/x/%2E%2E/customers"), quiet), "/api/customers")
	})
	t.Run("escape_the_route", func(t *testing.T) {
		e.refused(t, e.raw(t, request("GET", "/api/../admin/export"), quiet), http.StatusNotFound)
	})
	refuse := []struct{ name, target string }{
		{"overlong_utf8_dot", "/api/x/%C0%AE%C0%AE/customers/export"},
		{"iis_unicode_escape", "/api/x/%u002e%u002e/customers/export"},
		{"semicolon_parent", "/api/x/..;/customers/export"},
		{"double_encoded", "/api/x/%252e%252e/customers/export"},
		{"encoded_tab", "/api/x/%09../customers/export"},
		{"raw_tab", "/api/x/\t../customers/export"},
	}
	for _, tt := range refuse {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, e.raw(t, request("GET", tt.target), quiet), http.StatusBadRequest)
		})
	}
	t.Run("fullwidth_dots_are_a_name", func(t *testing.T) {
		// U+FF0E FULLWIDTH FULL STOP is not a dot segment: policy and upstream both see it.
		e.deniedAt(t, e.raw(t, request("GET", "/api/customers/%EF%BC%8E%EF%BC%8E/export"), quiet), "/api/customers/．．/export")
	})
}

// case02 — encoded separators, backslashes and NUL are refused.
func case02(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, target string }{
		{"encoded_slash", "/api/customers%2Fexport"},
		{"encoded_slash_lower", "/api/customers%2fexport"},
		{"encoded_backslash", "/api/customers%5Cexport"},
		{"encoded_backslash_lower", "/api/x/..%5c/customers/export"},
		{"raw_backslash", "/api/x\\..\\customers\\export"},
		{"double_encoded_slash", "/api/customers%252Fexport"},
		{"overlong_slash", "/api/customers%C0%AFexport"},
		{"encoded_nul", "/api/customers/export%00.json"},
		{"encoded_del", "/api/customers/export%7F"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, e.raw(t, request("GET", tt.target), quiet), http.StatusBadRequest)
		})
	}
}

// case03 — duplicate slashes are merged for everyone.
func case03(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	t.Run("inner", func(t *testing.T) {
		e.allowedAt(t, e.raw(t, request("GET", "/api//customers"), quiet), "/api/customers")
	})
	t.Run("leading", func(t *testing.T) {
		e.deniedAt(t, e.raw(t, request("GET", "///api/customers/export"), quiet), "/api/customers/export")
	})
	t.Run("before_export", func(t *testing.T) {
		e.deniedAt(t, e.raw(t, request("GET", "/api/customers//export"), quiet), "/api/customers/export")
	})
	t.Run("trailing", func(t *testing.T) {
		e.deniedAt(t, e.raw(t, request("GET", "/api/customers/export//"), quiet), "/api/customers/export/")
	})
}

// case04 — fragments and stray '?' never become part of the matched path.
func case04(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, target string }{
		{"raw_fragment", "/api/customers/export#x"},
		{"fragment_hides_parent", "/api/customers#/../customers/export"},
		{"encoded_hash", "/api/customers%23x"},
		{"fragment_in_query", "/api/customers?pageSize=1#x"},
		{"encoded_question_mark", "/api/customers%3F/export"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, e.raw(t, request("GET", tt.target), quiet), http.StatusBadRequest)
		})
	}
	t.Run("second_question_mark", func(t *testing.T) {
		up := e.allowedAt(t, e.raw(t, request("GET", "/api/customers?x=1?y=2"), quiet), "/api/customers")
		if strings.Contains(up.RawQuery, "?") {
			t.Errorf("upstream query %q holds a raw '?'", up.RawQuery)
		}
	})
	t.Run("empty_query", func(t *testing.T) {
		e.deniedAt(t, e.raw(t, request("GET", "/api/customers/export?"), quiet), "/api/customers/export")
	})
}

// case05 — case: a case-sensitive route does not match other cases; a case-insensitive one
// folds the path for policy and upstream alike.
func case05(t *testing.T) {
	t.Run("case_sensitive_route", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{})
		e.refused(t, e.raw(t, request("GET", "/API/customers/export"), quiet), http.StatusNotFound)
		rs := e.raw(t, request("GET", "/api/CUSTOMERS/export"), quiet)
		status(t, "GET /api/CUSTOMERS/export", one(t, rs).Status, http.StatusForbidden)
		e.nothingForwarded(t)
	})
	e := newEnv(t, veiltest.Options{Upstream: crm{caseless: true}, CaseInsensitive: true})
	for _, tt := range []struct{ name, target string }{
		{"upper_case", "/API/CUSTOMERS/EXPORT"},
		{"mixed_case", "/api/Customers/eXport"},
		{"encoded_upper_case", "/api/customers/%45XPORT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.deniedAt(t, e.raw(t, request("GET", tt.target), quiet), "/api/customers/export")
		})
	}
	t.Run("allowed_upper_case", func(t *testing.T) {
		e.allowedAt(t, e.raw(t, request("GET", "/API/Customers"), quiet), "/api/customers")
	})
}

// methodPolicy wraps a policy and denies every DELETE, the way a rule "nobody deletes" reads.
type methodPolicy struct{}

func (methodPolicy) Revision() string { return "methods" }

func (m methodPolicy) Decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if in.Request.Method != http.MethodGet && in.Request.Method != http.MethodPost && in.Request.Method != http.MethodPatch && in.Request.Method != http.MethodHead {
		return policy.Decision{Allow: false, Reason: "only reads and writes"}, nil
	}
	return maskAll, nil
}

// case06 — method overrides are stripped or refused; the effective method is what policy saw.
func case06(t *testing.T) {
	e := newEnv(t, veiltest.Options{Policy: methodPolicy{}})
	overrides := []struct{ name, line string }{
		{"x_http_method_override", "X-HTTP-Method-Override: DELETE"},
		{"x_http_method", "X-HTTP-Method: DELETE"},
		{"x_method_override", "X-Method-Override: DELETE"},
		{"lower_case_name", "x-http-method-override: DELETE"},
		{"underscore_name", "X_HTTP_Method_Override: DELETE"},
		{"underscore_x_method_override", "X_Method_Override: DELETE"},
	}
	for _, tt := range overrides {
		t.Run(tt.name, func(t *testing.T) {
			rs := e.raw(t, request("GET", "/api/customers/C10001", tt.line), quiet)
			if len(rs) == 1 && rs[0].Status == http.StatusBadRequest {
				e.nothingForwarded(t)
				return
			}
			up := e.allowedAt(t, rs, "/api/customers/C10001")
			noOverride(t, up)
		})
	}
	for _, q := range []string{"_method=DELETE", "_METHOD=DELETE", "%5Fmethod=DELETE", "_Method=DELETE&_method=DELETE"} {
		t.Run("query_"+q, func(t *testing.T) {
			up := e.allowedAt(t, e.raw(t, request("GET", "/api/customers/C10001?"+q), quiet), "/api/customers/C10001")
			noOverride(t, up)
		})
	}
	for _, tt := range []struct{ name, ctype, body string }{
		{"form_body", "application/x-www-form-urlencoded", "level=VIP&_method=DELETE"},
		{"form_body_upper", "application/x-www-form-urlencoded; charset=utf-8", "_METHOD=DELETE"},
		{"json_body", "application/json", `{"level":"VIP","_method":"DELETE"}`},
		{"multipart_body", "multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := e.raw(t, request("POST", "/api/customers/C10001", "Content-Type: "+tt.ctype, fmt.Sprintf("Content-Length: %d", len(tt.body)))+tt.body, quiet)
			r := one(t, rs)
			if r.Status == http.StatusBadRequest {
				e.nothingForwarded(t)
				return
			}
			up := e.sameRequest(t)
			noOverride(t, up)
		})
	}
}

// noOverride fails if the upstream received anything that could override the method.
func noOverride(t *testing.T, up seen) {
	t.Helper()
	for k, v := range up.Header {
		f := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if strings.Contains(f, "method") {
			t.Errorf("upstream received header %s: %v", k, v)
		}
	}
	if strings.Contains(strings.ToLower(up.RawQuery), "method") || strings.Contains(strings.ToLower(up.RawQuery), "%5f") {
		t.Errorf("upstream received query %q", up.RawQuery)
	}
	if strings.Contains(strings.ToLower(string(up.Body)), "_method") {
		t.Errorf("upstream received body %q", up.Body)
	}
}

// case07 — HEAD is authorized as GET, and its headers do not reveal the unmasked body.
func case07(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	getResp, getBody := e.as(t, "cs_agent", "GET", "/api/customers/C10001", nil)
	status(t, "GET", getResp.StatusCode, http.StatusOK)
	e.sameRequest(t)
	rs := e.raw(t, request("HEAD", "/api/customers/C10001"), quiet)
	r := one(t, rs)
	status(t, "HEAD", r.Status, http.StatusOK)
	up := e.sameRequest(t)
	if up.Method != http.MethodGet {
		t.Errorf("upstream method %s, want GET", up.Method)
	}
	if cl := r.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(getBody)) {
		t.Errorf("HEAD Content-Length %s, want the masked length %d or none", cl, len(getBody))
	}
	for _, h := range []string{"Etag", "Last-Modified", "Content-Md5", "Digest", "Repr-Digest"} {
		if r.Header.Get(h) != "" {
			t.Errorf("HEAD header %s = %q, want none", h, r.Header.Get(h))
		}
	}
	t.Run("export", func(t *testing.T) {
		e.deniedAt(t, e.raw(t, request("HEAD", "/api/customers/export"), quiet), "/api/customers/export")
	})
	t.Run("upstream_length_header", func(t *testing.T) {
		// An upstream that answers with a digest and a length of the unmasked body.
		e := newEnv(t, veiltest.Options{Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.Sum256([]byte(planted[0].Mobile))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Digest", fmt.Sprintf("sha-256=:%x:", sum))
			w.Header().Set("Etag", fmt.Sprintf("%q", planted[0].Mobile))
			writeJSON(w, http.StatusOK, planted[0])
		})})
		r := one(t, e.raw(t, request("HEAD", "/api/customers/C10001"), quiet))
		status(t, "HEAD", r.Status, http.StatusOK)
		for _, h := range []string{"Content-Digest", "Etag"} {
			if r.Header.Get(h) != "" {
				t.Errorf("HEAD header %s = %q, want none", h, r.Header.Get(h))
			}
		}
	})
}

// case08 — parameter pollution: policy sees every value; parameters the adapter reads may not
// be given twice, under any spelling the upstream may read as the same.
func case08(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, query string }{
		{"page_size_twice", "pageSize=1&pageSize=100000"},
		{"page_size_other_case", "pageSize=1&PageSize=100000"},
		{"page_size_encoded_name", "pageSize=1&page%53ize=100000"},
		{"semicolon_separator", "pageSize=1;pageSize=100000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := e.raw(t, request("GET", "/api/customers?"+tt.query), quiet)
			status(t, "status", one(t, rs).Status, http.StatusBadRequest)
			e.nothingForwarded(t)
		})
	}
	t.Run("every_value_reaches_policy", func(t *testing.T) {
		e.allowedAt(t, e.raw(t, request("GET", "/api/customers?export=false&export=true"), quiet), "/api/customers")
	})
	t.Run("policy_sees_both_values", func(t *testing.T) {
		e.raw(t, request("GET", "/api/customers?export=false&export=true"), quiet)
		ds := e.pol.take()
		e.up.take()
		if len(ds) != 1 || !slices.Equal(ds[0].In.Request.Query["export"], []string{"false", "true"}) {
			t.Errorf("policy query = %v, want export=[false true]", ds)
		}
	})
}

// apiKeyIdentity authenticates the API key "k-cs" as a cs_agent and trusts identity headers
// only from 10.9.0.0/16, so loopback clients are untrusted peers.
func apiKeyIdentity() (*identity.Config, []string) {
	return &identity.Config{
		TrustedHeaders: &identity.TrustedHeadersConfig{TrustedPeers: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
		APIKeys:        &identity.APIKeysConfig{Keys: []identity.APIKey{{SHA256: sha256.Sum256([]byte("k-cs")), User: "apiuser", Roles: []string{"cs_agent"}}}},
	}, []string{"trusted_headers", "api_keys"}
}

// case09 — identity headers from an untrusted peer are removed before anything reads them.
func case09(t *testing.T) {
	idc, modes := apiKeyIdentity()
	e := newEnv(t, veiltest.Options{Identity: idc, IdentityModes: modes})
	for _, tt := range []struct{ name, line string }{
		{"canonical", "X-Veil-User: admin\r\nX-Veil-Roles: security_admin"},
		{"lower_case", "x-veil-user: admin\r\nx-veil-roles: security_admin"},
		{"underscores", "X_Veil_User: admin\r\nX_Veil_Roles: security_admin"},
		{"forwarded_user", "X-Forwarded-User: admin\r\nX-Forwarded-Groups: security_admin"},
		{"remote_user", "Remote-User: admin\r\nX-Remote-User: admin"},
		{"auth_request", "X-Auth-Request-User: admin\r\nX-Auth-Request-Groups: security_admin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := "GET /api/customers HTTP/1.1\r\nHost: veil.test\r\nX-Api-Key: k-cs\r\nConnection: close\r\n" + tt.line + "\r\n\r\n"
			rs := rawTo(t, e.Veil.Listener.Addr().String(), payload, quiet)
			status(t, "status", one(t, rs).Status, http.StatusOK)
			ds := e.pol.take()
			ups := e.up.take()
			if len(ds) != 1 || ds[0].In.User.ID != "apiuser" || !slices.Equal(ds[0].In.User.Roles, []string{"cs_agent"}) {
				t.Fatalf("policy saw %+v, want apiuser as cs_agent", ds)
			}
			for k := range ds[0].In.Request.Headers {
				if identityish(k) {
					t.Errorf("policy input holds header %s", k)
				}
			}
			if len(ups) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(ups))
			}
			for k, v := range ups[0].Header {
				if identityish(k) || strings.EqualFold(k, "X-Api-Key") {
					t.Errorf("upstream received %s: %v", k, v)
				}
			}
		})
	}
	t.Run("twice_from_trusted_peer", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{})
		rs := e.raw(t, request("GET", "/api/customers", "X-Veil-User: admin"), quiet)
		status(t, "status", one(t, rs).Status, http.StatusBadRequest)
		e.nothingForwarded(t)
	})
}

func identityish(name string) bool {
	f := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	for _, s := range []string{"x-veil-", "x-forwarded-user", "x-forwarded-groups", "remote-user", "x-auth-request-"} {
		if strings.Contains(f, s) {
			return true
		}
	}
	return false
}

// case10 — the client IP in policy input comes from the socket or trusted hops, and the
// upstream is told the same client.
func case10(t *testing.T) {
	spoof := []string{"X-Forwarded-For: 6.6.6.6", "Forwarded: for=6.6.6.6", "X-Real-IP: 6.6.6.6", "True-Client-IP: 6.6.6.6", "X-Client-IP: 6.6.6.6", "CF-Connecting-IP: 6.6.6.6"}
	check := func(t *testing.T, e *env, payload, wantIP string) {
		t.Helper()
		rs := rawTo(t, e.Veil.Listener.Addr().String(), payload, quiet)
		status(t, "status", one(t, rs).Status, http.StatusOK)
		ds, ups := e.pol.take(), e.up.take()
		if len(ds) != 1 || len(ups) != 1 {
			t.Fatalf("policy %d, upstream %d; want 1 and 1", len(ds), len(ups))
		}
		if got := ds[0].In.Request.ClientIP; got != wantIP {
			t.Errorf("policy client_ip = %s, want %s", got, wantIP)
		}
		xff := strings.Split(ups[0].Header.Get("X-Forwarded-For"), ",")
		if strings.TrimSpace(xff[0]) != wantIP {
			t.Errorf("upstream X-Forwarded-For = %q, want it to start with %s", ups[0].Header.Get("X-Forwarded-For"), wantIP)
		}
		for k, v := range ups[0].Header {
			if strings.Contains(strings.Join(v, ","), "6.6.6.6") {
				t.Errorf("upstream received spoofed %s: %v", k, v)
			}
		}
	}
	t.Run("untrusted_peer", func(t *testing.T) {
		idc, modes := apiKeyIdentity()
		e := newEnv(t, veiltest.Options{Identity: idc, IdentityModes: modes})
		payload := "GET /api/customers HTTP/1.1\r\nHost: veil.test\r\nX-Api-Key: k-cs\r\nConnection: close\r\n" + strings.Join(spoof, "\r\n") + "\r\n\r\n"
		check(t, e, payload, "127.0.0.1")
	})
	t.Run("trusted_peer", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{})
		payload := request("GET", "/api/customers", "X-Forwarded-For: 6.6.6.6, 203.0.113.7", "X-Real-IP: 6.6.6.6", "Forwarded: for=6.6.6.6", "True-Client-IP: 6.6.6.6")
		check(t, e, payload, "203.0.113.7")
	})
}

// case11 — control characters, bare CR, space before the colon, bad names: 400.
func case11(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, line string }{
		{"control_character", "X-Note: a\x01b"},
		{"nul", "X-Note: a\x00b"},
		{"del", "X-Note: a\x7fb"},
		{"bare_cr", "X-Note: a\rX-Veil-Roles: security_admin"},
		{"space_before_colon", "X-Veil-Roles : security_admin"},
		{"nul_in_name", "X-No\x00te: a"},
		{"separator_in_name", "X-No(te): a"},
		{"escape_sequence", "X-Note: \x1b[31mred"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, e.raw(t, request("GET", "/api/customers", tt.line), quiet), http.StatusBadRequest)
		})
	}
	t.Run("obs_fold", func(t *testing.T) {
		// Go unfolds obs-fold into one line; Veil forwards exactly what it parsed.
		rs := e.raw(t, request("GET", "/api/customers", "X-Note: a\r\n b"), quiet)
		if one(t, rs).Status == http.StatusBadRequest {
			e.nothingForwarded(t)
			return
		}
		up := e.sameRequest(t)
		if v := up.Header.Get("X-Note"); strings.ContainsAny(v, "\r\n") {
			t.Errorf("upstream X-Note = %q", v)
		}
	})
	t.Run("bare_lf_line_ends", func(t *testing.T) {
		// RFC 9112 2.2 lets a recipient accept a bare LF as a line end; Go does. Veil must then
		// forward the headers it parsed, framed with CRLF, and nothing else.
		payload := strings.ReplaceAll(request("GET", "/api/customers"), "\r\n", "\n")
		rs := e.raw(t, payload, quiet)
		if one(t, rs).Status == http.StatusBadRequest {
			e.nothingForwarded(t)
			return
		}
		e.allowedAt(t, rs, "/api/customers")
	})
}

// case12 — smuggling: what reaches the upstream is one request per decision, never a second
// request read out of a body.
func case12(t *testing.T) {
	e := newEnv(t, veiltest.Options{Policy: methodPolicy{}})
	smuggled := "GET /api/customers/export HTTP/1.1\r\nHost: veil.test\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	for _, tt := range []struct{ name, payload string }{
		{"cl_and_te", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Content-Type: application/json\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" + body},
		{"te_and_cl", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n" + body},
		{"two_content_lengths", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			fmt.Sprintf("Content-Length: 2\r\nContent-Length: %d\r\n\r\n{}", 2+len(smuggled)) + smuggled},
		{"te_chunked_identity", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Transfer-Encoding: chunked, identity\r\n\r\n" + body},
		{"te_twice", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + body},
		{"te_upper_case", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Transfer-Encoding: CHUNKED\r\n\r\n" + body},
		{"http10_chunked", "POST /api/customers/C10001 HTTP/1.0\r\nHost: veil.test\r\n" + csAgent +
			"Transfer-Encoding: chunked\r\n\r\n" + body},
		{"content_length_sign", "POST /api/customers/C10001 HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			"Content-Length: +2\r\n\r\n{}" + smuggled},
		{"get_with_body", "GET /api/customers HTTP/1.1\r\nHost: veil.test\r\n" + csAgent +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"pipelined", request("GET", "/api/customers")[:len(request("GET", "/api/customers"))-len("Connection: close\r\n\r\n")] + "\r\n" + smuggled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.raw(t, tt.payload, 500*time.Millisecond)
			ds := e.pol.take()
			ups := e.up.take()
			decided := map[string]int{}
			for _, d := range ds {
				if d.Out.Allow {
					decided[d.In.Request.Method+" "+d.In.Request.Path]++
				}
			}
			for _, up := range ups {
				k := up.Method + " " + up.Path
				if decided[k] == 0 {
					t.Errorf("upstream received %s that no allow decision covers (decided %v)", k, decided)
				}
				decided[k]--
				if up.Header.Get("Transfer-Encoding") != "" || len(up.Header.Values("Content-Length")) > 1 {
					t.Errorf("upstream framing: TE %q, CL %q", up.Header.Values("Transfer-Encoding"), up.Header.Values("Content-Length"))
				}
				if strings.Contains(string(up.Body), "HTTP/1.1") {
					t.Logf("upstream body holds a request line (%q); framed by Content-Length %s, it is data", up.Body, up.Header.Get("Content-Length"))
				}
				if up.Path == "/api/customers/export" {
					t.Errorf("upstream received the smuggled export")
				}
			}
		})
	}
}

// case13 — protocol upgrades are refused on policed routes.
func case13(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct {
		name  string
		lines []string
	}{
		{"h2c", []string{"Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}},
		{"websocket", []string{"Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"}},
		{"websocket_mixed_case", []string{"upgrade: WebSocket"}},
		{"settings_only", []string{"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}},
		{"two_protocols", []string{"Upgrade: foo/1, h2c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines := append([]string{}, tt.lines...)
			rs := e.raw(t, strings.Replace(request("GET", "/api/customers", lines...), "Connection: close", "Connection: Upgrade, HTTP2-Settings", 1), 500*time.Millisecond)
			e.refused(t, rs, http.StatusBadRequest)
		})
	}
	t.Run("http2_preface", func(t *testing.T) {
		rs := e.raw(t, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", quiet)
		if len(rs) > 0 {
			status(t, "status", rs[0].Status, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusHTTPVersionNotSupported)
		}
		e.nothingForwarded(t)
	})
	t.Run("upstream_switches_protocols", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusSwitchingProtocols)
			w.Write([]byte(planted[0].Mobile))
		})})
		rs := e.raw(t, request("GET", "/api/customers"), quiet)
		status(t, "status", one(t, rs).Status, http.StatusBadGateway)
	})
}

// case14 — no route: 404 from Veil, never a default upstream; methods Veil cannot describe
// are refused.
func case14(t *testing.T) {
	e := newEnv(t, veiltest.Options{})
	for _, tt := range []struct{ name, payload string }{
		{"unrouted_path", request("GET", "/admin/export")},
		{"root", request("GET", "/")},
		{"prefix_without_slash", request("GET", "/apix/customers")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, e.raw(t, tt.payload, quiet), http.StatusNotFound)
		})
	}
	for _, m := range []string{"CONNECT", "TRACE", "PROPFIND", "delete", "Get"} {
		t.Run("method_"+m, func(t *testing.T) {
			e := newEnv(t, veiltest.Options{Policy: fixedPolicy{maskAll}})
			target := "/api/customers"
			if m == "CONNECT" {
				target = "veil.test:443"
			}
			rs := e.raw(t, request(m, target), quiet)
			if len(rs) == 0 {
				t.Fatalf("no response")
			}
			if rs[0].Status < 400 {
				t.Errorf("%s = %d, want a refusal", m, rs[0].Status)
			}
			e.nothingForwarded(t)
		})
	}
	t.Run("host_bound_route", func(t *testing.T) {
		e := newEnv(t, veiltest.Options{Host: "crm.example"})
		for _, tt := range []struct {
			payload string
			want    int
		}{
			{strings.Replace(request("GET", "/api/customers"), "Host: veil.test", "Host: other.example", 1), http.StatusNotFound},
			{strings.Replace(request("GET", "/api/customers"), "Host: veil.test", "Host: crm.example.", 1), http.StatusNotFound},
			{strings.Replace(request("GET", "http://other.example/api/customers"), "Host: veil.test", "Host: crm.example", 1), http.StatusNotFound},
			{strings.Replace(request("GET", "/api/customers"), "Host: veil.test", "Host: CRM.Example:8443", 1), http.StatusOK},
			{strings.Replace(request("GET", "http://crm.example/api/customers"), "Host: veil.test", "Host: other.example", 1), http.StatusOK},
		} {
			rs := e.raw(t, tt.payload, quiet)
			if got := one(t, rs).Status; got != tt.want {
				t.Errorf("%q = %d, want %d", strings.SplitN(tt.payload, "\r\n", 3)[:2], got, tt.want)
			}
			if tt.want == http.StatusOK {
				e.sameRequest(t)
			} else {
				e.nothingForwarded(t)
			}
		}
	})
}

// case15 — a request body over the limit is 413, never a decision on a prefix.
func case15(t *testing.T) {
	e := newEnv(t, veiltest.Options{Policy: methodPolicy{}, Limits: proxy.Limits{MaxRequestBody: 1 << 10}})
	big := `{"level":"` + strings.Repeat("x", 2<<10) + `"}`
	t.Run("content_length", func(t *testing.T) {
		e.refused(t, e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", fmt.Sprintf("Content-Length: %d", len(big)))+big, quiet), http.StatusRequestEntityTooLarge)
	})
	t.Run("chunked", func(t *testing.T) {
		body := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)
		e.refused(t, e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", "Transfer-Encoding: chunked")+body, quiet), http.StatusRequestEntityTooLarge)
	})
	t.Run("expect_continue", func(t *testing.T) {
		e.refused(t, e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", "Expect: 100-continue", "Content-Length: 1073741824"), quiet), http.StatusRequestEntityTooLarge)
	})
	t.Run("at_the_limit", func(t *testing.T) {
		body := `{"level":"` + strings.Repeat("x", 1<<10-13) + `"}`
		rs := e.raw(t, request("PATCH", "/api/customers/C10001", "Content-Type: application/json", fmt.Sprintf("Content-Length: %d", len(body)))+body, quiet)
		status(t, "status", one(t, rs).Status, http.StatusOK)
		if up := e.sameRequest(t); string(up.Body) != body {
			t.Errorf("upstream body %d bytes, want the %d sent", len(up.Body), len(body))
		}
	})
}
