package upstreamauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// upstream accepts only the service credential (one header, one value) and records every
// request it sees in full, so the test can look for the client's token anywhere in it.
type upstream struct {
	*httptest.Server
	header, value string

	mu   sync.Mutex
	seen []string // each request dumped (request line, headers, body)
}

func newUpstream(t *testing.T, header, value string) *upstream {
	u := &upstream{header: header, value: value}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, err := httputil.DumpRequest(r, true)
		if err != nil {
			t.Error(err)
		}
		u.mu.Lock()
		u.seen = append(u.seen, string(dump))
		u.mu.Unlock()
		if vs := r.Header.Values(u.header); len(vs) != 1 || vs[0] != u.value {
			http.Error(w, `{"error":"invalid credential"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// veil is the smallest proxy that does what the real one does with a Replacer: apply it to
// the outgoing request, and refuse to forward when it fails.
func veil(t *testing.T, target string, rp *Replacer) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rev := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		if err := rp.Apply(r.Context(), out); err != nil {
			http.Error(w, "upstream credential unavailable", http.StatusBadGateway)
			return
		}
		rev.ServeHTTP(w, out)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, rawURL string, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The client's token, in every place a client could put it, never reaches the upstream; the
// upstream, which accepts only the service credential, answers.
func TestStaticCredentialReplacesClientToken(t *testing.T) {
	const clientToken = "nc_pat_client_own_token"
	tests := []struct {
		name    string
		adapter string
		header  string
		value   string
		client  http.Header
		query   string
	}{
		{name: "nocodb xc-token", adapter: "nocodb", header: "xc-token", value: "nc_pat_SERVICE",
			client: http.Header{"Xc-Token": {clientToken}, "Xc-Auth": {clientToken}, "Cookie": {"session=" + clientToken}},
			query:  "limit=25&access_token=" + clientToken},
		{name: "airtable bearer", adapter: "airtable", header: "Authorization", value: "Bearer patSERVICE.0123",
			client: http.Header{"Authorization": {"Bearer " + clientToken}, "Proxy-Authorization": {"Basic " + clientToken}},
			query:  "pageSize=100&ACCESS_TOKEN=" + clientToken},
		{name: "sheets api key in the query", adapter: "sheets", header: "Authorization", value: "Bearer ya29.service",
			client: http.Header{"X-Goog-Api-Key": {clientToken}, "X_Api_Key": {clientToken}},
			query:  "majorDimension=ROWS&key=" + clientToken + "&%6Bey=" + clientToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, tt.header, tt.value)
			inj, err := NewStatic(tt.header, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			rp, err := New(Config{Injector: inj, Adapter: tt.adapter})
			if err != nil {
				t.Fatal(err)
			}
			v := veil(t, up.URL, rp)

			// Directly, the client's token does not work: the upstream takes only the service one.
			if status, _ := get(t, up.URL+"/api?"+tt.query, tt.client.Clone()); status != http.StatusUnauthorized {
				t.Fatalf("client token straight to the upstream: status %d, want 401", status)
			}
			seenBefore := len(up.requests())

			status, body := get(t, v.URL+"/api?"+tt.query, tt.client.Clone())
			if status != http.StatusOK {
				t.Fatalf("through Veil: status %d %s, want 200", status, body)
			}
			for _, dump := range up.requests()[seenBefore:] {
				if strings.Contains(strings.ToLower(dump), strings.ToLower(clientToken)) {
					t.Errorf("the client's token reached the upstream:\n%s", dump)
				}
			}
			var got struct{ Query string }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(tt.query, "&"); !strings.HasPrefix(got.Query, first) {
				t.Errorf("upstream query = %q, want the other parameters kept (%q)", got.Query, first)
			}
		})
	}
}

func TestStripQueryKeepsOtherParametersByteForByte(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=1&access_token=x&b=%20%2F", "a=1&b=%20%2F"},
		{"access_token=x", ""},
		{"a=1;b=2&Access_Token=x", "a=1;b=2"},
		{"%zz=1&a=2", "a=2"}, // undecodable names go too
		{"q=access_token", "q=access_token"},
	}
	for _, tt := range tests {
		if got := stripQuery(tt.in, []string{"access_token"}); got != tt.want {
			t.Errorf("stripQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// tokenEndpoint is an OAuth 2.0 token endpoint that issues numbered tokens and counts calls.
type tokenEndpoint struct {
	*httptest.Server
	calls     atomic.Int32
	expiresIn int
	fail      atomic.Bool
	gate      chan struct{}
	forms     chan url.Values
}

func newTokenEndpoint(t *testing.T, expiresIn int, check func(r *http.Request) bool) *tokenEndpoint {
	e := &tokenEndpoint{expiresIn: expiresIn, forms: make(chan url.Values, 100)}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.calls.Add(1)
		if e.gate != nil {
			<-e.gate
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		select {
		case e.forms <- r.PostForm:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		if e.fail.Load() || !check(r) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"client secret is s3cr3t-wrong"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"svc-token-%d","token_type":"Bearer","expires_in":%d}`, n, e.expiresIn)
	}))
	t.Cleanup(e.Close)
	return e
}

func basicAuthIs(id, secret string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == id && p == secret && r.PostForm.Get("grant_type") == "client_credentials"
	}
}

func TestClientCredentialsInjectedCachedRefreshed(t *testing.T) {
	// Tokens live 3600s; refreshing 3599.7s early leaves each usable for 300ms.
	ep := newTokenEndpoint(t, 3600, basicAuthIs("veil", "client-secret"))
	tok, err := NewOAuth2(OAuth2Config{TokenURL: ep.URL, ClientID: "veil", ClientSecret: "client-secret",
		Scopes: []string{"api"}, Params: url.Values{"audience": {"crm"}}, AuthStyle: "header",
		RefreshBefore: 3600*time.Second - 300*time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, "Authorization", "Bearer svc-token-1")
	rp, err := New(Config{Injector: tok})
	if err != nil {
		t.Fatal(err)
	}
	v := veil(t, up.URL, rp)

	// Fifty concurrent first requests share one fetch.
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := get(t, v.URL+"/x", http.Header{"Authorization": {"Bearer client-own"}})
			statuses <- s
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("status %d, want 200", s)
		}
	}
	if got := ep.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls for 50 concurrent requests = %d, want 1", got)
	}
	form := <-ep.forms
	if form.Get("scope") != "api" || form.Get("audience") != "crm" || form.Get("client_secret") != "" {
		t.Errorf("token request form = %v, want scope api, audience crm, the secret only in Basic auth", form)
	}

	// Once the token is within RefreshBefore of its expiry, the next request gets a new one.
	time.Sleep(400 * time.Millisecond)
	h := http.Header{}
	if err := tok.Apply(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Authorization"); got != "Bearer svc-token-2" {
		t.Errorf("after the refresh point Authorization = %q, want Bearer svc-token-2", got)
	}
}

func TestTokenEndpointFailure(t *testing.T) {
	ep := newTokenEndpoint(t, 3600, basicAuthIs("veil", "right"))
	tok, err := NewOAuth2(OAuth2Config{TokenURL: ep.URL, ClientID: "veil", ClientSecret: "s3cr3t-wrong", AuthStyle: "header",
		RetryAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, "Authorization", "Bearer svc-token-1")
	rp, err := New(Config{Injector: tok})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, up.URL+"/x?access_token=client", nil)
	r.Header.Set("Authorization", "Bearer client-own")
	err = rp.Apply(t.Context(), r)
	if err == nil {
		t.Fatal("Apply with a failing token endpoint: no error")
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "401 (invalid_client)") {
		t.Errorf("error = %q, want the status and OAuth code without the endpoint's words", err)
	}
	if len(r.Header.Values("Authorization")) != 0 || strings.Contains(r.URL.RawQuery, "access_token") {
		t.Errorf("after a failure the request still carries a credential: %v %q", r.Header, r.URL.RawQuery)
	}
	// Failures are not retried for every request.
	for range 10 {
		if err := tok.Apply(t.Context(), http.Header{}); err == nil {
			t.Fatal("Apply succeeded with a failing endpoint")
		}
	}
	if got := ep.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls within RetryAfter = %d, want 1", got)
	}
	time.Sleep(250 * time.Millisecond)
	_ = tok.Apply(t.Context(), http.Header{})
	if got := ep.calls.Load(); got != 2 {
		t.Errorf("token endpoint calls after RetryAfter = %d, want 2", got)
	}
}

// Zoho-style: a refresh token redeemed for access tokens sent as "Zoho-oauthtoken"; a rotated
// refresh token is used from then on.
func TestRefreshTokenGrant(t *testing.T) {
	var mu sync.Mutex
	current := "1000.refresh-1"
	ep := newTokenEndpoint(t, 1, func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		ok := r.PostForm.Get("grant_type") == "refresh_token" && r.PostForm.Get("refresh_token") == current &&
			r.PostForm.Get("client_id") == "1000.CLIENT" && r.PostForm.Get("client_secret") == "zsecret"
		return ok
	})
	tok, err := NewOAuth2(OAuth2Config{Grant: GrantRefreshToken, TokenURL: ep.URL, ClientID: "1000.CLIENT", ClientSecret: "zsecret",
		RefreshToken: "1000.refresh-1", AuthStyle: "params", Scheme: "Zoho-oauthtoken", RefreshBefore: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := tok.Apply(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Authorization"); got != "Zoho-oauthtoken svc-token-1" {
		t.Errorf("Authorization = %q, want Zoho-oauthtoken svc-token-1", got)
	}
	// The token lives 1s and is refreshed 500ms early.
	time.Sleep(600 * time.Millisecond)
	if err := tok.Apply(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Authorization"); got != "Zoho-oauthtoken svc-token-2" {
		t.Errorf("after refresh Authorization = %q, want Zoho-oauthtoken svc-token-2", got)
	}
}

func TestLarkTenantToken(t *testing.T) {
	var calls atomic.Int32
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body map[string]string
		if r.URL.Path != "/open-apis/auth/v3/tenant_access_token/internal" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.NotFound(w, r)
			return
		}
		if body["app_id"] != "cli_a1b2c3" || body["app_secret"] != "lark-secret" {
			fmt.Fprint(w, `{"code":10014,"msg":"app secret invalid"}`)
			return
		}
		fmt.Fprint(w, `{"code":0,"msg":"ok","tenant_access_token":"t-g1044qeGEDXTB6NDJOGV4JQCYDGHRBARFTGT1234","expire":7200}`)
	}))
	defer ep.Close()
	tok, err := NewLarkTenantToken(LarkConfig{BaseURL: ep.URL, AppID: "cli_a1b2c3", AppSecret: "lark-secret"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h := http.Header{}
		if err := tok.Apply(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		if got := h.Get("Authorization"); got != "Bearer t-g1044qeGEDXTB6NDJOGV4JQCYDGHRBARFTGT1234" {
			t.Errorf("Authorization = %q", got)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("token calls = %d, want 1", got)
	}

	bad, err := NewLarkTenantToken(LarkConfig{BaseURL: ep.URL, AppID: "cli_a1b2c3", AppSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Apply(t.Context(), http.Header{})
	if err == nil || !strings.Contains(err.Error(), "code 10014") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("Apply with a wrong secret: %v, want code 10014 and no secret", err)
	}
}

func TestConfigErrors(t *testing.T) {
	inj, err := NewStatic("X-Api-Key", "k")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"no injector", func() error { _, err := New(Config{}); return err }, "no injector"},
		{"bad strip header", func() error { _, err := New(Config{Injector: inj, StripHeaders: []string{"a:b"}}); return err }, "valid header"},
		{"static empty", func() error { _, err := NewStatic("X-Key", ""); return err }, "empty"},
		{"static newline", func() error { _, err := NewStatic("X-Key", "a\r\nX-Evil: 1"); return err }, "control character"},
		{"token url over http", func() error {
			_, err := NewOAuth2(OAuth2Config{TokenURL: "http://login.example.com/token", ClientID: "a"})
			return err
		}, "use https"},
		{"no client id", func() error { _, err := NewOAuth2(OAuth2Config{TokenURL: "https://x/token"}); return err }, "client id"},
		{"refresh without token", func() error {
			_, err := NewOAuth2(OAuth2Config{Grant: GrantRefreshToken, TokenURL: "https://x/token", ClientID: "a"})
			return err
		}, "refresh token"},
		{"grant", func() error {
			_, err := NewOAuth2(OAuth2Config{Grant: "password", TokenURL: "https://x/token", ClientID: "a"})
			return err
		}, "client_credentials or refresh_token"},
		{"lark without secret", func() error { _, err := NewLarkTenantToken(LarkConfig{AppID: "a"}); return err }, "required"},
	}
	for _, tt := range tests {
		if err := tt.err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestLogValuesHideSecrets(t *testing.T) {
	s, _ := NewStatic("Xc-Token", "nc_pat_SECRET")
	tok, _ := NewOAuth2(OAuth2Config{TokenURL: "https://login.example.com/token", ClientID: "veil", ClientSecret: "SECRET"})
	for _, v := range []fmt.Stringer{s.LogValue(), tok.LogValue()} {
		if strings.Contains(v.String(), "SECRET") {
			t.Errorf("LogValue %s shows a secret", v)
		}
	}
}

func TestStripLists(t *testing.T) {
	h, q := Strip("nocodb")
	if diff := cmp.Diff([]string{"Xc-Token", "Xc-Auth", "Xc-Shared-Base-Id", "Xc-Preview"}, h); diff != "" || q != nil {
		t.Errorf("Strip(nocodb) headers (-want +got):\n%s query %v", diff, q)
	}
	if h, q := Strip("unknown"); h != nil || q != nil {
		t.Errorf("Strip(unknown) = %v, %v; want none", h, q)
	}
}

// Apply honours a cancelled context only in what it controls; it never panics or leaves a
// client credential behind.
func TestApplyWithCancelledContext(t *testing.T) {
	inj, _ := NewStatic("Authorization", "Bearer svc")
	rp, _ := New(Config{Injector: inj})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "http://up/x", nil)
	r.Header.Set("Authorization", "Bearer client")
	if err := rp.Apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer svc" {
		t.Errorf("Authorization = %q, want the service credential", got)
	}
}
