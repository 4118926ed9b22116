package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// vendorServer answers an identity call the way one vendor does: the fixture for the one valid
// token sent the vendor's way, the vendor's rejection for anything else.
type vendorServer struct {
	*httptest.Server
	calls atomic.Int32

	mu      sync.Mutex
	uri     string // the request URI the profile must call
	header  string // where the vendor reads the token
	scheme  string // "" for a bare header value
	valid   string
	answer  []byte
	status  int // of a valid answer; 0: 200
	reject  func(http.ResponseWriter)
	gate    chan struct{} // when set, answers wait until it is closed
	lastReq http.Header
}

func newVendorServer(t *testing.T, v *vendorServer) *vendorServer {
	t.Helper()
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.calls.Add(1)
		v.mu.Lock()
		gate, uri, header, scheme, valid, answer, status, reject := v.gate, v.uri, v.header, v.scheme, v.valid, v.answer, v.status, v.reject
		v.lastReq = r.Header.Clone()
		v.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if r.URL.RequestURI() != uri {
			http.Error(w, "unexpected path "+r.URL.RequestURI(), http.StatusNotFound)
			return
		}
		got := r.Header.Get(header)
		if scheme != "" {
			s, rest, _ := strings.Cut(got, " ")
			if !strings.EqualFold(s, scheme) {
				got = ""
			} else {
				got = rest
			}
		}
		if got != valid {
			reject(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
		}
		w.Write(answer)
	}))
	t.Cleanup(v.Close)
	return v
}

func (v *vendorServer) setGate(g chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gate = g
}

func (v *vendorServer) setAnswer(status int, answer []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.status, v.answer = status, answer
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "upstream", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonReject(status int, body []byte) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
}

func (v *vendorServer) upstream(t *testing.T) *url.URL {
	u, err := url.Parse(v.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newResolver(t *testing.T, c TokenResolverConfig) *TokenResolver {
	t.Helper()
	r, err := NewTokenResolver(c)
	if err != nil {
		t.Fatalf("NewTokenResolver: %v", err)
	}
	return r
}

func builtin(t *testing.T, name string) Profile {
	t.Helper()
	p, ok := BuiltinProfile(name)
	if !ok {
		t.Fatalf("BuiltinProfile(%q) not found", name)
	}
	return p
}

// tokenRequest returns a request carrying token in header (with scheme, when not "").
func tokenRequest(header, scheme, token string) *http.Request {
	r := bearerRequest("")
	r.Header.Del("Authorization")
	v := token
	if scheme != "" {
		v = scheme + " " + token
	}
	r.Header.Set(header, v)
	return r
}

// Each built-in profile against an upstream answering like its vendor: the valid token maps
// to the user; the vendor's own rejection is a 401; the token reaches the upstream the way
// the vendor expects it and never appears in an error.
func TestBuiltinProfilesAgainstVendors(t *testing.T) {
	tests := []struct {
		profile string
		vendor  *vendorServer
		send    [2]string // header, scheme the client uses
		want    User
		tenant  string
	}{
		{
			profile: ProfileSalesforce,
			vendor: &vendorServer{uri: "/services/oauth2/userinfo", header: "Authorization", scheme: "Bearer",
				valid:  "00D5g000004Xyz!AQ0AQH0dMHZfz972Szmpkb58urFRkgeBGsxL_QJWwYMfAbUeeG7c1E6LYUfiDUkWe6H34r1AAwOR8B8fLEz6n04NPGRrq0FM",
				answer: fixture(t, "salesforce-userinfo.json"),
				reject: func(w http.ResponseWriter) { http.Error(w, "Bad_OAuth_Token", http.StatusForbidden) }},
			send: [2]string{"Authorization", "Bearer"},
			want: User{ID: "0055g00000AbCdEAAV", Email: "li.na@example.com", Source: SourceUpstreamToken, Claims: map[string]any{
				"profile": "salesforce", "id": "0055g00000AbCdEAAV", "email": "li.na@example.com", "name": "Li Na",
				"tenant": "00D5g000004XyzAEAS", "organization_id": "00D5g000004XyzAEAS",
				"username": "li.na@example.com.crm", "user_type": "STANDARD",
			}},
			tenant: "00D5g000004XyzAEAS",
		},
		{
			profile: ProfileZoho,
			vendor: &vendorServer{uri: "/crm/v8/users?type=CurrentUser", header: "Authorization", scheme: "Zoho-oauthtoken",
				valid:  "1000.8cb99dxxxxxxxxxxxxx9be93.9b8xxxxxxxxxxxxxxxf",
				answer: fixture(t, "zoho-current-user.json"),
				reject: jsonReject(http.StatusUnauthorized, fixture(t, "zoho-invalid-token.json"))},
			send: [2]string{"Authorization", "Zoho-oauthtoken"},
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"客服主管", "Standard"},
				Source: SourceUpstreamToken, Claims: map[string]any{
					"profile": "zoho", "id": "4876876000000333001", "email": "wang.fang@example.com", "name": "王芳",
					"vendor_roles": []any{"客服主管", "Standard"}, "zuid": "60012345678", "status": "active",
					"role": "客服主管", "crm_profile": "Standard",
				}},
		},
		{
			profile: ProfileLark,
			vendor: &vendorServer{uri: "/open-apis/authen/v1/user_info", header: "Authorization", scheme: "Bearer",
				valid:  "u-7f1bcd13fc57d46bac21793a18e560",
				answer: fixture(t, "lark-user-info.json"),
				reject: jsonReject(http.StatusBadRequest, fixture(t, "lark-invalid-token.json"))},
			send: [2]string{"Authorization", "Bearer"},
			want: User{ID: "5d9bdxx1", Email: "zhang.wei@corp.example.cn", Source: SourceUpstreamToken, Claims: map[string]any{
				"profile": "lark", "id": "5d9bdxx1", "email": "zhang.wei@corp.example.cn", "name": "张伟",
				"tenant": "736588c9260f175d", "tenant_key": "736588c9260f175d", "open_id": "ou_3f1c2a9d8e7b6a5c4d3e2f1a0b9c8d7e",
				"union_id": "on_8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", "employee_no": "E1024",
			}},
			tenant: "736588c9260f175d",
		},
		{
			profile: ProfileNocoDB,
			vendor: &vendorServer{uri: "/api/v1/auth/user/me", header: "Xc-Token",
				valid:  "nc_pat_Yk3uJ9x2LmQ8Vw1Rt5Zp0Aa7Sd4Fg6Hh",
				answer: fixture(t, "nocodb-me.json"),
				// NocoDB answers an unknown token with a guest user and 200.
				reject: jsonReject(http.StatusOK, fixture(t, "nocodb-me-guest.json"))},
			send: [2]string{"Xc-Token", ""},
			want: User{ID: "us_b3l2lzd9x7k1q0", Email: "chen.jie@example.com", Roles: []string{"org-level-creator"},
				Source: SourceUpstreamToken, Claims: map[string]any{
					"profile": "nocodb", "id": "us_b3l2lzd9x7k1q0", "email": "chen.jie@example.com", "name": "陈杰",
					"vendor_roles": []any{"org-level-creator"}, "base_roles": map[string]any{"editor": true},
					"workspace_roles": map[string]any{},
				}},
		},
		{
			profile: ProfileAirtable,
			vendor: &vendorServer{uri: "/v0/meta/whoami", header: "Authorization", scheme: "Bearer",
				valid:  "patQ1w2e3r4t5y6u7i.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				answer: fixture(t, "airtable-whoami.json"),
				reject: jsonReject(http.StatusUnauthorized, fixture(t, "airtable-unauthorized.json"))},
			send: [2]string{"Authorization", "Bearer"},
			want: User{ID: "usrL2PNC5o3H4lBEi", Email: "liu.yang@example.com", Source: SourceUpstreamToken, Claims: map[string]any{
				"profile": "airtable", "id": "usrL2PNC5o3H4lBEi", "email": "liu.yang@example.com",
				"scopes": []any{"data.records:read", "data.records:write", "user.email:read"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			v := newVendorServer(t, tt.vendor)
			p := builtin(t, tt.profile)
			r := newResolver(t, TokenResolverConfig{Profile: p, Upstream: v.upstream(t), Tenant: tt.tenant})
			a := newAuth(t, Config{})
			rt := Route{Modes: []string{ModeUpstreamToken}, Token: r}

			got, err := a.AuthenticateRoute(t.Context(), tokenRequest(tt.send[0], tt.send[1], tt.vendor.valid), untrustedPeer, rt)
			if err != nil {
				t.Fatalf("AuthenticateRoute(valid %s token) error = %v", tt.profile, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AuthenticateRoute(valid %s token) user (-want +got):\n%s", tt.profile, diff)
			}
			if got := v.lastReq.Get("Accept"); got != "application/json" {
				t.Errorf("identity call Accept = %q, want application/json", got)
			}

			bad := "not-" + tt.vendor.valid[4:]
			_, err = a.AuthenticateRoute(t.Context(), tokenRequest(tt.send[0], tt.send[1], bad), untrustedPeer, rt)
			e := checkError(t, err, http.StatusUnauthorized, bad, tt.vendor.valid)
			if e.Reason != "invalid upstream token" {
				t.Errorf("rejected %s token: reason %q, want %q", tt.profile, e.Reason, "invalid upstream token")
			}
			if got := v.calls.Load(); got != 2 {
				t.Errorf("%s identity calls = %d, want 2", tt.profile, got)
			}
		})
	}
}

// The Zoho profile also takes "Authorization: Bearer", and forwards the scheme it was given.
func TestZohoAcceptsBearer(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/crm/v8/users?type=CurrentUser", header: "Authorization", scheme: "Bearer",
		valid: "1000.tok", answer: fixture(t, "zoho-current-user.json"),
		reject: jsonReject(http.StatusUnauthorized, fixture(t, "zoho-invalid-token.json"))})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileZoho), Upstream: v.upstream(t)})
	a := newAuth(t, Config{})
	u, err := a.AuthenticateRoute(t.Context(), tokenRequest("Authorization", "bearer", "1000.tok"), untrustedPeer,
		Route{Modes: []string{ModeUpstreamToken}, Token: r})
	if err != nil || u.ID != "4876876000000333001" {
		t.Errorf("AuthenticateRoute(Bearer zoho token) = %q, %v; want 4876876000000333001", u.ID, err)
	}
}

// A home-grown API: absolute URL, gjson paths, a numeric id kept exact, roles through a map.
func TestGenericProfile(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/internal/me?fields=all", header: "X-Session", valid: "s3ss10n",
		answer: fixture(t, "generic-me.json"),
		reject: func(w http.ResponseWriter) { http.Error(w, "no", http.StatusUnauthorized) }})
	p := builtin(t, ProfileGeneric).Override(Profile{
		URL:         v.URL + "/internal/me?fields=all",
		Credentials: []Credential{{Header: "x-session"}},
		ID:          []string{"data.user.id", "data.user.uid"},
		Email:       []string{"data.user.mail"},
		DisplayName: []string{"data.user.nick"},
		Department:  []string{"data.user.dept"},
		Roles:       []string{"data.user.groups"},
		ResultPath:  "ok",
		ResultOK:    "true",
	})
	r := newResolver(t, TokenResolverConfig{Profile: p, RoleMap: map[string][]string{"OPS": {"ops_manager", "viewer"}}})
	got, err := r.Resolve(t.Context(), "s3ss10n")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := User{ID: "10086", Email: "ops.lead@example.com", Department: "运营部", Roles: []string{"ops_manager", "viewer"},
		Source: SourceUpstreamToken, Claims: map[string]any{
			"profile": "generic", "id": "10086", "email": "ops.lead@example.com", "name": "运营老王",
			"department": "运营部", "vendor_roles": []any{"ops", "Exporters"},
		}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve user (-want +got):\n%s", diff)
	}
	if got := v.lastReq.Get("X-Session"); got != "s3ss10n" {
		t.Errorf("identity call X-Session = %q, want the token", got)
	}

	// A result code other than ResultOK is a failure, not a user.
	v.setAnswer(http.StatusOK, []byte(`{"ok":false,"data":{"user":{"uid":1}}}`))
	r = newResolver(t, TokenResolverConfig{Profile: p})
	_, err = r.Resolve(t.Context(), "s3ss10n")
	if e := checkError(t, err, http.StatusServiceUnavailable); e.Code != CodeIdentityUnavailable {
		t.Errorf("result not ok: code %q, want %q", e.Code, CodeIdentityUnavailable)
	}
}

// The cache: a hit makes no call, an answer expires after CacheTTL, a rejection is
// remembered for RejectTTL, and the bound evicts the least recently used token.
func TestTokenCacheHitMissExpiry(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/v0/meta/whoami", header: "Authorization", scheme: "Bearer",
		valid: "pat.good", answer: fixture(t, "airtable-whoami.json"),
		reject: jsonReject(http.StatusUnauthorized, fixture(t, "airtable-unauthorized.json"))})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileAirtable), Upstream: v.upstream(t),
		CacheTTL: time.Minute, RejectTTL: 10 * time.Second})
	now := time.Unix(1_800_000_000, 0)
	r.now = func() time.Time { return now }

	resolve := func(token string) error {
		_, err := r.Resolve(t.Context(), token)
		return err
	}
	steps := []struct {
		name    string
		advance time.Duration
		token   string
		ok      bool
		calls   int32
	}{
		{name: "first use: miss", token: "pat.good", ok: true, calls: 1},
		{name: "again: hit", token: "pat.good", ok: true, calls: 1},
		{name: "just before expiry: hit", advance: 59 * time.Second, token: "pat.good", ok: true, calls: 1},
		{name: "after expiry: miss", advance: 2 * time.Second, token: "pat.good", ok: true, calls: 2},
		{name: "bad token: miss", token: "pat.bad", calls: 3},
		{name: "bad token again: remembered", advance: 9 * time.Second, token: "pat.bad", calls: 3},
		{name: "bad token after reject ttl: miss", advance: 2 * time.Second, token: "pat.bad", calls: 4},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		err := resolve(s.token)
		if s.ok && err != nil {
			t.Fatalf("%s: Resolve error = %v", s.name, err)
		}
		if !s.ok {
			checkError(t, err, http.StatusUnauthorized, s.token)
		}
		if got := v.calls.Load(); got != s.calls {
			t.Fatalf("%s: identity calls = %d, want %d", s.name, got, s.calls)
		}
	}
	st := r.Stats()
	want := TokenStats{Hits: 3, Misses: 4, Calls: 4, Rejected: 2, Entries: 2}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestTokenCacheSizeBound(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/api/v1/auth/user/me", header: "Xc-Token", valid: "a",
		answer: fixture(t, "nocodb-me.json"), reject: jsonReject(http.StatusOK, fixture(t, "nocodb-me.json"))})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileNocoDB), Upstream: v.upstream(t), CacheSize: 2})
	ctx := t.Context()
	for _, tok := range []string{"a", "b", "a", "c"} { // c evicts b, the least recently used
		if _, err := r.Resolve(ctx, tok); err != nil {
			t.Fatalf("Resolve(%s): %v", tok, err)
		}
	}
	if got := r.Stats().Entries; got != 2 {
		t.Errorf("entries = %d, want 2", got)
	}
	before := v.calls.Load()
	if _, err := r.Resolve(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := v.calls.Load(); got != before {
		t.Errorf("token a was evicted (calls %d → %d); want b evicted", before, got)
	}
	if _, err := r.Resolve(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := v.calls.Load(); got != before+1 {
		t.Errorf("token b made %d calls, want 1 (it was evicted)", got-before)
	}
}

// Fifty concurrent first requests with one token make one identity call.
func TestTokenConcurrentFirstRequestsMakeOneCall(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/open-apis/authen/v1/user_info", header: "Authorization", scheme: "Bearer",
		valid: "u-concurrent", answer: fixture(t, "lark-user-info.json"),
		reject: jsonReject(http.StatusBadRequest, fixture(t, "lark-invalid-token.json"))})
	gate := make(chan struct{})
	v.setGate(gate)
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileLark), Upstream: v.upstream(t)})
	a := newAuth(t, Config{})
	rt := Route{Modes: []string{ModeUpstreamToken}, Token: r}

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := a.AuthenticateRoute(context.Background(), tokenRequest("Authorization", "Bearer", "u-concurrent"), untrustedPeer, rt)
			if err != nil {
				errs <- err
				return
			}
			ids <- u.ID
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Misses < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests reached the resolver", r.Stats().Misses, n)
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Errorf("AuthenticateRoute error = %v", err)
	}
	for id := range ids {
		if id != "5d9bdxx1" {
			t.Errorf("user = %q, want 5d9bdxx1", id)
		}
	}
	if got := v.calls.Load(); got != 1 {
		t.Errorf("identity calls for %d concurrent first requests = %d, want 1", n, got)
	}
}

// A failed identity call is a 503 by default and is not cached; with on_error stale, an
// expired answer for the same token is served instead.
func TestTokenIdentityCallFailures(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/v0/meta/whoami", header: "Authorization", scheme: "Bearer",
		valid: "pat.good", answer: fixture(t, "airtable-whoami.json"),
		reject: jsonReject(http.StatusUnauthorized, fixture(t, "airtable-unauthorized.json"))})
	failing := []struct {
		name   string
		status int
		body   string
	}{
		{"server error", http.StatusInternalServerError, `{"error":"boom"}`},
		{"rate limited", http.StatusTooManyRequests, `{"error":"slow down"}`},
		{"html", http.StatusOK, `<html>maintenance</html>`},
		{"redirect", http.StatusFound, ``},
	}
	for _, f := range failing {
		t.Run(f.name, func(t *testing.T) {
			r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileAirtable), Upstream: v.upstream(t)})
			v.setAnswer(f.status, []byte(f.body))
			before := v.calls.Load()
			for range 2 {
				_, err := r.Resolve(t.Context(), "pat.good")
				if e := checkError(t, err, http.StatusServiceUnavailable, "pat.good"); e.Code != CodeIdentityUnavailable {
					t.Errorf("code = %q, want %q", e.Code, CodeIdentityUnavailable)
				}
			}
			if got := v.calls.Load() - before; got != 2 {
				t.Errorf("calls = %d, want 2: failures are not cached", got)
			}
		})
	}

	t.Run("stale", func(t *testing.T) {
		r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileAirtable), Upstream: v.upstream(t),
			CacheTTL: time.Minute, OnError: "stale", StaleTTL: time.Hour})
		now := time.Unix(1_800_000_000, 0)
		r.now = func() time.Time { return now }
		v.setAnswer(0, fixture(t, "airtable-whoami.json"))
		if _, err := r.Resolve(t.Context(), "pat.good"); err != nil {
			t.Fatal(err)
		}
		v.setAnswer(http.StatusBadGateway, []byte("{}"))
		now = now.Add(30 * time.Minute)
		u, err := r.Resolve(t.Context(), "pat.good")
		if err != nil || u.ID != "usrL2PNC5o3H4lBEi" {
			t.Errorf("Resolve during an outage within stale ttl = %q, %v; want the stale user", u.ID, err)
		}
		now = now.Add(time.Hour)
		_, err = r.Resolve(t.Context(), "pat.good")
		checkError(t, err, http.StatusServiceUnavailable)
		if got := r.Stats().Stale; got != 1 {
			t.Errorf("stale answers = %d, want 1", got)
		}
	})
}

func TestTokenTenantPinned(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/services/oauth2/userinfo", header: "Authorization", scheme: "Bearer",
		valid: "00Dother!token", answer: fixture(t, "salesforce-userinfo.json"),
		reject: func(w http.ResponseWriter) { http.Error(w, "Bad_OAuth_Token", http.StatusForbidden) }})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileSalesforce), Upstream: v.upstream(t), Tenant: "00D000000000001AAA"})
	_, err := r.Resolve(t.Context(), "00Dother!token")
	if e := checkError(t, err, http.StatusUnauthorized, "00Dother!token"); e.Reason != "upstream token not accepted here" {
		t.Errorf("reason = %q, want %q", e.Reason, "upstream token not accepted here")
	}
}

// Tokens that cannot be valid are refused without an identity call.
func TestTokenRefusedWithoutCall(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/v0/meta/whoami", header: "Authorization", scheme: "Bearer",
		valid: "x", answer: fixture(t, "airtable-whoami.json"), reject: jsonReject(401, []byte(`{}`))})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileAirtable), Upstream: v.upstream(t)})
	a := newAuth(t, Config{})
	rt := Route{Modes: []string{ModeUpstreamToken}, Token: r}
	tests := []struct {
		name   string
		h      http.Header
		status int
	}{
		{"scheme only", http.Header{"Authorization": {"Bearer"}}, 401},
		{"control character", http.Header{"Authorization": {"Bearer a\x01b"}}, 401},
		{"too long", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", maxTokenLen+1)}}, 401},
		{"two Authorization headers", http.Header{"Authorization": {"Bearer a", "Bearer b"}}, 400},
	}
	for _, tt := range tests {
		_, err := a.AuthenticateRoute(t.Context(), &http.Request{Header: tt.h}, untrustedPeer, rt)
		checkError(t, err, tt.status)
	}
	if got := v.calls.Load(); got != 0 {
		t.Errorf("identity calls = %d, want 0", got)
	}
	// Another scheme is not this mode's credential at all.
	_, err := a.AuthenticateRoute(t.Context(), &http.Request{Header: http.Header{"Authorization": {"Basic YTpi"}}}, untrustedPeer, rt)
	if err != ErrNoIdentity {
		t.Errorf("Basic credential: error = %v, want ErrNoIdentity", err)
	}
}

// A waiting request gives up with its own context; the call goes on for the others.
func TestTokenWaiterCancelled(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/v0/meta/whoami", header: "Authorization", scheme: "Bearer",
		valid: "pat.slow", answer: fixture(t, "airtable-whoami.json"), reject: jsonReject(401, []byte(`{}`))})
	gate := make(chan struct{})
	v.setGate(gate)
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileAirtable), Upstream: v.upstream(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Resolve(ctx, "pat.slow")
	checkError(t, err, http.StatusServiceUnavailable)
	close(gate)
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Entries == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := r.Resolve(t.Context(), "pat.slow"); err != nil {
		t.Fatalf("Resolve after the call finished: %v", err)
	}
	if got := v.calls.Load(); got != 1 {
		t.Errorf("identity calls = %d, want 1 (the abandoned call still filled the cache)", got)
	}
}

func TestNewTokenResolverErrors(t *testing.T) {
	up, _ := url.Parse("https://crm.example.com/base")
	good := builtin(t, ProfileAirtable)
	tests := []struct {
		name string
		c    TokenResolverConfig
		want string
	}{
		{"no url", TokenResolverConfig{Profile: Profile{ID: []string{"id"}}}, "no identity url"},
		{"relative without upstream", TokenResolverConfig{Profile: good}, "no upstream"},
		{"relative without slash", TokenResolverConfig{Profile: good.Override(Profile{URL: "me"}), Upstream: up}, "starting with /"},
		{"ftp", TokenResolverConfig{Profile: good.Override(Profile{URL: "ftp://x/me"})}, "http or https"},
		{"no id", TokenResolverConfig{Profile: Profile{URL: "/me"}, Upstream: up}, "no id path"},
		{"empty path", TokenResolverConfig{Profile: good.Override(Profile{Email: []string{" "}}), Upstream: up}, "empty answer path"},
		{"method", TokenResolverConfig{Profile: good.Override(Profile{Method: "DELETE"}), Upstream: up}, "GET or POST"},
		{"tenant without path", TokenResolverConfig{Profile: good, Upstream: up, Tenant: "t"}, "no tenant path"},
		{"identity header as credential", TokenResolverConfig{Profile: good.Override(Profile{Credentials: []Credential{{Header: "X-Veil-User"}}}), Upstream: up}, "identity header"},
		{"bad header", TokenResolverConfig{Profile: good.Override(Profile{Credentials: []Credential{{Header: "a b"}}}), Upstream: up}, "valid header"},
		{"result codes without path", TokenResolverConfig{Profile: good.Override(Profile{ResultOK: "0"}), Upstream: up}, "no result path"},
		{"reject status 200", TokenResolverConfig{Profile: good.Override(Profile{RejectStatus: []int{200}}), Upstream: up}, "not an error status"},
		{"on_error", TokenResolverConfig{Profile: good, Upstream: up, OnError: "allow"}, "deny or stale"},
		{"negative ttl", TokenResolverConfig{Profile: good, Upstream: up, CacheTTL: -1}, "negative"},
		{"negative size", TokenResolverConfig{Profile: good, Upstream: up, CacheSize: -1}, "negative"},
		{"reserved claim", TokenResolverConfig{Profile: good.Override(Profile{Claims: map[string]string{"id": "x"}}), Upstream: up}, "reserved"},
	}
	for _, tt := range tests {
		_, err := NewTokenResolver(tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTokenResolver(%s) error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestIdentityURL(t *testing.T) {
	tests := []struct {
		raw, upstream, want string
	}{
		{"/services/oauth2/userinfo", "https://acme.my.salesforce.com", "https://acme.my.salesforce.com/services/oauth2/userinfo"},
		{"/api/v1/auth/user/me", "http://nocodb:8080/nocodb/", "http://nocodb:8080/nocodb/api/v1/auth/user/me"},
		{"/crm/v8/users?type=CurrentUser", "https://www.zohoapis.com.cn", "https://www.zohoapis.com.cn/crm/v8/users?type=CurrentUser"},
		{"https://api.airtable.com/v0/meta/whoami", "https://ignored.example.com", "https://api.airtable.com/v0/meta/whoami"},
	}
	for _, tt := range tests {
		up, _ := url.Parse(tt.upstream)
		got, err := identityURL(tt.raw, up)
		if err != nil || got != tt.want {
			t.Errorf("identityURL(%q, %q) = %q, %v; want %q", tt.raw, tt.upstream, got, err, tt.want)
		}
	}
}

func TestBuiltinProfilesAreFreshCopies(t *testing.T) {
	for _, name := range BuiltinProfiles() {
		p := builtin(t, name)
		if name != ProfileGeneric && (p.URL == "" || len(p.ID) == 0) {
			t.Errorf("profile %s has no URL or id path", name)
		}
		if len(p.ID) > 0 {
			p.ID[0] = "changed"
			if q := builtin(t, name); q.ID[0] == "changed" {
				t.Errorf("BuiltinProfile(%s) shares its slices between calls", name)
			}
		}
	}
	if _, ok := BuiltinProfile("hubspot"); ok {
		t.Error(`BuiltinProfile("hubspot") found a profile`)
	}
}

func TestProfileOverride(t *testing.T) {
	p := builtin(t, ProfileLark).Override(Profile{ID: []string{"data.open_id"}, Claims: map[string]string{"mobile": "data.mobile"}})
	want := builtin(t, ProfileLark)
	want.ID = []string{"data.open_id"}
	want.Claims = map[string]string{"mobile": "data.mobile"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Override (-want +got):\n%s", diff)
	}
}

// Claims survive a JSON round trip the way the policy input needs them: numbers exact.
func TestClaimValueNumbersExact(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/me", header: "Authorization", scheme: "Bearer", valid: "t",
		answer: []byte(`{"id":"1","org":{"id":1234567890123456789,"big":[1.5e3]}}`), reject: jsonReject(401, nil)})
	r := newResolver(t, TokenResolverConfig{Profile: Profile{URL: v.URL + "/me", ID: []string{"id"}, Claims: map[string]string{"org": "org"}}})
	u, err := r.Resolve(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u.Claims["org"])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"big":[1.5e3],"id":1234567890123456789}`; got != want {
		t.Errorf("claim org = %s, want %s", got, want)
	}
}
