package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// oidcProvider is an OpenID Provider over TLS: a discovery document and a JWKS that can rotate.
type oidcProvider struct {
	*httptest.Server
	discoveries atomic.Int32
	jwksFetches atomic.Int32

	mu     sync.Mutex
	issuer string // "" = the server's URL
	algs   []string
	jwks   []byte
	jwksAt string // jwks_uri; "" = <server>/keys
}

func newOIDCProvider(t *testing.T, jwks []byte) *oidcProvider {
	p := &oidcProvider{jwks: jwks}
	p.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			p.discoveries.Add(1)
			doc := map[string]any{
				"issuer":                                cmpOr(p.issuer, p.URL),
				"jwks_uri":                              cmpOr(p.jwksAt, p.URL+"/keys"),
				"authorization_endpoint":                p.URL + "/authorize",
				"token_endpoint":                        p.URL + "/token",
				"response_types_supported":              []string{"code"},
				"subject_types_supported":               []string{"public"},
				"id_token_signing_alg_values_supported": p.algs,
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(doc)
		case "/keys":
			p.jwksFetches.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write(p.jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *oidcProvider) set(f func(p *oidcProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestOIDCDiscoveryAndKeyRotation(t *testing.T) {
	rk, rk2, ek := testKeys(t)
	p := newOIDCProvider(t, jwksDoc(t, publicJWK(t, rk, "k1", "RS256")))
	p.set(func(p *oidcProvider) { p.algs = []string{"RS256", "HS256", "none"} })
	a, err := New(t.Context(), Config{JWT: &JWTConfig{Issuer: p.URL, Audience: testAudience, Discovery: true, HTTPClient: p.Client()}})
	if err != nil {
		t.Fatalf("New with discovery: %v", err)
	}
	tok := func(key any, kid string, alg jwa.SignatureAlgorithm) string {
		return sign(t, alg, key, kid, claims(map[string]any{"iss": p.URL}))
	}
	if u, err := a.Authenticate(t.Context(), bearerRequest(tok(rk, "k1", jwa.RS256())), untrustedPeer, nil); err != nil || u.ID != "alice" {
		t.Fatalf("Authenticate(token signed with the discovered key) = %q, %v", u.ID, err)
	}
	// The advertised algorithms become the allow-list (HS256 and none are never allowed with
	// a JWKS): ES256 is not advertised, so it is refused.
	_, err = a.Authenticate(t.Context(), bearerRequest(tok(ek, "k1", jwa.ES256())), untrustedPeer, nil)
	checkError(t, err, http.StatusUnauthorized)

	// Rotation: the provider publishes a new key; a token naming it triggers one refresh.
	p.set(func(p *oidcProvider) {
		p.jwks = jwksDoc(t, publicJWK(t, rk, "k1", "RS256"), publicJWK(t, rk2, "k2", "RS256"))
	})
	if _, err := a.Authenticate(t.Context(), bearerRequest(tok(rk2, "k2", jwa.RS256())), untrustedPeer, nil); err != nil {
		t.Fatalf("Authenticate with the rotated key: %v", err)
	}
	if got := p.jwksFetches.Load(); got != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (first, then one forced by the new kid)", got)
	}
	if got := p.discoveries.Load(); got != 1 {
		t.Errorf("discovery fetches = %d, want 1", got)
	}
	// A token from another issuer is refused.
	_, err = a.Authenticate(t.Context(), bearerRequest(sign(t, jwa.RS256(), rk, "k1", claims(nil))), untrustedPeer, nil)
	checkError(t, err, http.StatusUnauthorized)
}

func TestOIDCDiscoveryErrors(t *testing.T) {
	rk, _, _ := testKeys(t)
	doc := jwksDoc(t, publicJWK(t, rk, "k1", "RS256"))
	tests := []struct {
		name   string
		issuer func(p *oidcProvider) string
		setup  func(p *oidcProvider)
		want   string
	}{
		{name: "issuer in the document differs", issuer: func(p *oidcProvider) string { return p.URL },
			setup: func(p *oidcProvider) { p.issuer = "https://evil.example.com" }, want: "names issuer"},
		{name: "trailing slash matters", issuer: func(p *oidcProvider) string { return p.URL + "/" }, want: "names issuer"},
		{name: "jwks_uri over http", issuer: func(p *oidcProvider) string { return p.URL },
			setup: func(p *oidcProvider) { p.jwksAt = "http://keys.example.com/jwks" }, want: "http is allowed only to loopback"},
		{name: "no document", issuer: func(p *oidcProvider) string { return p.URL + "/tenant" }, want: "status 404"},
		{name: "issuer over http", issuer: func(*oidcProvider) string { return "http://idp.example.com" }, want: "http is allowed only to loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newOIDCProvider(t, doc)
			if tt.setup != nil {
				p.set(tt.setup)
			}
			_, err := New(t.Context(), Config{JWT: &JWTConfig{Issuer: tt.issuer(p), Audience: testAudience, Discovery: true, HTTPClient: p.Client()}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(t.Context(), Config{JWT: &JWTConfig{Issuer: "https://i", Audience: "a", Discovery: true, JWKS: doc}}); err == nil ||
		!strings.Contains(err.Error(), "exactly one") {
		t.Errorf("discovery with a jwks: error = %v, want exactly one key source", err)
	}
}
