package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

// larkVendor serves the Lark identity call for token u-lark.
func larkVendor(t *testing.T) *vendorServer {
	return newVendorServer(t, &vendorServer{uri: "/open-apis/authen/v1/user_info", header: "Authorization", scheme: "Bearer",
		valid: "u-lark", answer: fixture(t, "lark-user-info.json"),
		reject: jsonReject(http.StatusBadRequest, fixture(t, "lark-invalid-token.json"))})
}

// On a route with jwt and upstream_token, a JWS-shaped bearer token is jwt's and an opaque
// one is upstream_token's, whatever the order of the modes.
func TestRouteSplitsBearerTokensByShape(t *testing.T) {
	v := larkVendor(t)
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileLark), Upstream: v.upstream(t)})
	a := newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret}})
	valid := sign(t, jwa.HS256(), testHMACSecret, "", claims(nil))
	expired := sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": int64(1000)}))
	orders := [][]string{{ModeJWT, ModeUpstreamToken}, {ModeUpstreamToken, ModeJWT}}
	tests := []struct {
		name   string
		token  string
		want   string // user id
		source string
		status int
	}{
		{name: "jwt", token: valid, want: "alice", source: SourceJWT},
		{name: "expired jwt is not tried upstream", token: expired, status: 401},
		{name: "malformed jwt (empty signature) stays jwt's", token: "eyJhbGciOiJub25lIn0.e30.", status: 401},
		{name: "opaque token", token: "u-lark", want: "5d9bdxx1", source: SourceUpstreamToken},
		{name: "opaque token upstream rejects", token: "u-other", status: 401},
	}
	for _, modes := range orders {
		for _, tt := range tests {
			t.Run(strings.Join(modes, ",")+"/"+tt.name, func(t *testing.T) {
				before := v.calls.Load()
				u, err := a.AuthenticateRoute(t.Context(), bearerRequest(tt.token), untrustedPeer, Route{Modes: modes, Token: r})
				if tt.status != 0 {
					checkError(t, err, tt.status, tt.token)
				} else if err != nil || u.ID != tt.want || u.Source != tt.source {
					t.Fatalf("AuthenticateRoute = %q (%s), %v; want %q (%s)", u.ID, u.Source, err, tt.want, tt.source)
				}
				if jwsShaped(tt.token) && v.calls.Load() != before {
					t.Errorf("a JWS-shaped token reached the upstream identity call")
				}
			})
		}
	}

	// Without jwt on the route, upstream_token takes any bearer token, JWS-shaped or not.
	before := v.calls.Load()
	_, err := a.AuthenticateRoute(t.Context(), bearerRequest(valid), untrustedPeer, Route{Modes: []string{ModeUpstreamToken}, Token: r})
	checkError(t, err, http.StatusUnauthorized, valid)
	if v.calls.Load() != before+1 {
		t.Errorf("upstream-only route: the JWS-shaped token was not sent to the identity call")
	}
	// A route that lists upstream_token without a resolver skips the mode.
	_, err = a.AuthenticateRoute(t.Context(), bearerRequest("u-lark"), untrustedPeer, Route{Modes: []string{ModeUpstreamToken}})
	if err != ErrNoIdentity {
		t.Errorf("upstream_token without a resolver: error = %v, want ErrNoIdentity", err)
	}
}

func TestJWSShaped(t *testing.T) {
	tests := map[string]bool{
		"eyJh.eyJz.c2ln":                        true,
		"a.b.":                                  true,
		"..":                                    true,
		"00D5g000004Xyz!AQ0AQH0dMHZ":            false,
		"u-7f1bcd13fc57d46bac21793a18e560":      false,
		"patQ1w2e3r4t5y6u7i.0123456789abcdef":   false,
		"nc_pat_Yk3uJ9x2LmQ8Vw1Rt5Zp0Aa7Sd4Fg6": false,
		"a.b.c.d":                               false,
		"a.b.c=":                                false,
	}
	for tok, want := range tests {
		if got := jwsShaped(tok); got != want {
			t.Errorf("jwsShaped(%q) = %v, want %v", tok, got, want)
		}
	}
}

// Roles: the directory entry when the user is listed, else the answer's mapped roles.
func TestDirectoryPrecedence(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/crm/v8/users?type=CurrentUser", header: "Authorization", scheme: "Zoho-oauthtoken",
		valid: "1000.tok", answer: fixture(t, "zoho-current-user.json"),
		reject: jsonReject(http.StatusUnauthorized, fixture(t, "zoho-invalid-token.json"))})
	directory := map[string]DirectoryEntry{
		"4876876000000333001": {Roles: []string{"cs_agent"}, Department: "cs"},
		"boss@example.com":    {Roles: []string{"security_admin"}},
	}
	lookup := func(id, email string) (DirectoryEntry, bool) {
		if e, ok := directory[id]; ok {
			return e, true
		}
		e, ok := directory[email]
		return e, ok
	}
	roleMap := map[string][]string{"客服主管": {"cs_lead"}}
	tests := []struct {
		name          string
		dir           Directory
		directoryOnly bool
		want          User
		status        int
	}{
		{name: "listed by id", dir: lookup,
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"cs_agent"}, Department: "cs"}},
		{name: "not listed: mapped vendor roles", dir: func(string, string) (DirectoryEntry, bool) { return DirectoryEntry{}, false },
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"cs_lead"}}},
		{name: "no directory: mapped vendor roles",
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"cs_lead"}}},
		{name: "listed by email", dir: func(id, email string) (DirectoryEntry, bool) { return lookup("", "boss@example.com") },
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"security_admin"}}},
		{name: "directory only, not listed", directoryOnly: true, status: http.StatusForbidden},
		{name: "directory only, listed", dir: lookup, directoryOnly: true,
			want: User{ID: "4876876000000333001", Email: "wang.fang@example.com", Roles: []string{"cs_agent"}, Department: "cs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileZoho), Upstream: v.upstream(t),
				RoleMap: roleMap, DirectoryOnly: tt.directoryOnly})
			a := newAuth(t, Config{Directory: tt.dir})
			u, err := a.AuthenticateRoute(t.Context(), tokenRequest("Authorization", "Zoho-oauthtoken", "1000.tok"), untrustedPeer,
				Route{Modes: []string{ModeUpstreamToken}, Token: r})
			if tt.status != 0 {
				if e := checkError(t, err, tt.status); e.Code != CodeNotEnrolled {
					t.Errorf("code = %q, want %q", e.Code, CodeNotEnrolled)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := User{ID: u.ID, Email: u.Email, Roles: u.Roles, Department: u.Department}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

// Once the vendor token is resolved, other credentials the profile knows (and its Strip
// headers) are removed; the resolved token itself stays for the upstream, StripCredentials
// included. Two of the profile's credentials at once are refused.
func TestUpstreamTokenCredentialHandling(t *testing.T) {
	v := newVendorServer(t, &vendorServer{uri: "/api/v1/auth/user/me", header: "Xc-Token", valid: "nc_pat_1",
		answer: fixture(t, "nocodb-me.json"), reject: jsonReject(http.StatusOK, fixture(t, "nocodb-me-guest.json"))})
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileNocoDB), Upstream: v.upstream(t)})
	a := newAuth(t, Config{})
	rt := Route{Modes: []string{ModeUpstreamToken}, Token: r}

	req := tokenRequest("Xc-Token", "", "nc_pat_1")
	req.Header.Set("Cookie", "nc_session=someone-else")
	req.Header.Set("Xc-Preview", "owner")
	u, err := a.AuthenticateRoute(t.Context(), req, untrustedPeer, rt)
	if err != nil {
		t.Fatal(err)
	}
	a.StripCredentials(req.Header, u)
	var left []string
	for k := range req.Header {
		left = append(left, k)
	}
	slices.Sort(left)
	if diff := cmp.Diff([]string{"Xc-Token"}, left); diff != "" {
		t.Errorf("headers left for the upstream (-want +got):\n%s", diff)
	}

	both := tokenRequest("Xc-Token", "", "nc_pat_1")
	both.Header.Set("Xc-Auth", "eyJh.eyJz.c2ln")
	_, err = a.AuthenticateRoute(t.Context(), both, untrustedPeer, rt)
	checkError(t, err, http.StatusBadRequest, "nc_pat_1")
}

// A fake revocation list that records its questions.
type fakeRevocations struct {
	revoked map[string]bool
	err     error
	asked   []string
}

func (f *fakeRevocations) Revoked(_ context.Context, user, tokenHash string) (bool, error) {
	f.asked = append(f.asked, user+"|"+tokenHash)
	if f.err != nil {
		return false, f.err
	}
	return f.revoked[strings.ToLower(user)] || f.revoked[tokenHash], nil
}

// Every mode's user is checked against the revocation list, by id, e-mail and credential hash.
func TestRevocationAppliesToEveryMode(t *testing.T) {
	v := larkVendor(t)
	key := "vk_test_key_0001"
	jwtTok := sign(t, jwa.HS256(), testHMACSecret, "", claims(nil))
	cfg := func(rev Revocations, onErr string) Config {
		return Config{
			JWT:                &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret},
			TrustedHeaders:     &TrustedHeadersConfig{TrustedPeers: trustedPrefixes},
			APIKeys:            &APIKeysConfig{Keys: []APIKey{{SHA256: sha256.Sum256([]byte(key)), User: "svc"}}},
			Revocations:        rev,
			RevocationsOnError: onErr,
		}
	}
	r := newResolver(t, TokenResolverConfig{Profile: builtin(t, ProfileLark), Upstream: v.upstream(t)})
	modes := []string{ModeJWT, ModeUpstreamToken, ModeTrustedHeaders, ModeAPIKeys}
	requests := map[string]func() (*http.Request, string){
		"jwt":            func() (*http.Request, string) { return bearerRequest(jwtTok), "alice" },
		"upstream_token": func() (*http.Request, string) { return bearerRequest("u-lark"), "5d9bdxx1" },
		"api key":        func() (*http.Request, string) { return &http.Request{Header: http.Header{"X-Api-Key": {key}}}, "svc" },
		"trusted headers": func() (*http.Request, string) {
			return &http.Request{Header: http.Header{"X-Veil-User": {"bob"}}}, "bob"
		},
	}
	for name, mk := range requests {
		t.Run(name, func(t *testing.T) {
			req, id := mk()
			peer := untrustedPeer
			if name == "trusted headers" {
				peer = trustedPeer
			}
			// Not revoked: allowed.
			a := newAuth(t, cfg(&fakeRevocations{}, ""))
			if _, err := a.AuthenticateRoute(t.Context(), req, peer, Route{Modes: modes, Token: r}); err != nil {
				t.Fatalf("not revoked: %v", err)
			}
			// Revoked by id (case-insensitively).
			req, _ = mk()
			a = newAuth(t, cfg(&fakeRevocations{revoked: map[string]bool{strings.ToLower(id): true}}, ""))
			_, err := a.AuthenticateRoute(t.Context(), req, peer, Route{Modes: modes, Token: r})
			if e := checkError(t, err, http.StatusForbidden); e.Reason != "access revoked" || e.Code != CodeRevoked {
				t.Errorf("revoked user: %q %q, want access revoked / %s", e.Reason, e.Code, CodeRevoked)
			}
			// The list cannot answer: 503, or allowed with on_error allow.
			req, _ = mk()
			a = newAuth(t, cfg(&fakeRevocations{err: errors.New("redis down")}, ""))
			_, err = a.AuthenticateRoute(t.Context(), req, peer, Route{Modes: modes, Token: r})
			checkError(t, err, http.StatusServiceUnavailable)
			req, _ = mk()
			a = newAuth(t, cfg(&fakeRevocations{err: errors.New("redis down")}, "allow"))
			if _, err := a.AuthenticateRoute(t.Context(), req, peer, Route{Modes: modes, Token: r}); err != nil {
				t.Errorf("on_error allow: %v", err)
			}
		})
	}

	// Revoked by credential: the JWT, the API key, the vendor token, each by TokenHash.
	for _, c := range []struct {
		name, cred string
		req        func() *http.Request
	}{
		{"jwt", jwtTok, func() *http.Request { return bearerRequest(jwtTok) }},
		{"api key", key, func() *http.Request { return &http.Request{Header: http.Header{"X-Api-Key": {key}}} }},
		{"upstream token", "u-lark", func() *http.Request { return bearerRequest("u-lark") }},
	} {
		a := newAuth(t, cfg(&fakeRevocations{revoked: map[string]bool{TokenHash(c.cred): true}}, ""))
		_, err := a.AuthenticateRoute(t.Context(), c.req(), untrustedPeer, Route{Modes: modes, Token: r})
		checkError(t, err, http.StatusForbidden, c.cred)
	}

	// Revoked by e-mail: the list is asked about the e-mail too.
	f := &fakeRevocations{revoked: map[string]bool{"zhang.wei@corp.example.cn": true}}
	a := newAuth(t, cfg(f, ""))
	_, err := a.AuthenticateRoute(t.Context(), bearerRequest("u-lark"), untrustedPeer, Route{Modes: modes, Token: r})
	checkError(t, err, http.StatusForbidden)
	if want := []string{"5d9bdxx1|" + TokenHash("u-lark"), "zhang.wei@corp.example.cn|"}; !slices.Equal(f.asked, want) {
		t.Errorf("revocation questions = %q, want %q", f.asked, want)
	}

	if _, err := New(t.Context(), Config{RevocationsOnError: "maybe"}); err == nil {
		t.Error("New accepted revocations on_error \"maybe\"")
	}
}
