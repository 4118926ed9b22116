package identity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwksServer serves a JWK Set and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	doc     []byte
	status  int
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(doc []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = doc
}

func TestJWKSURLCachedAndRefreshedOnUnknownKid(t *testing.T) {
	rk, rk2, _ := testKeys(t)
	srv := newJWKSServer(t, jwksDoc(t, publicJWK(t, rk, "k1", "RS256")))
	a, err := New(t.Context(), Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL + "/jwks.json"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tok := sign(t, jwa.RS256(), rk, "k1", claims(nil))
	for i := range 100 {
		if _, err := a.Authenticate(t.Context(), bearerRequest(tok), untrustedPeer, nil); err != nil {
			t.Fatalf("Authenticate #%d: %v", i, err)
		}
	}
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("after 100 Authenticate calls the JWKS was fetched %d times, want 1", got)
	}

	// The issuer rotates to a new key: the first token naming it forces one refresh.
	srv.serve(jwksDoc(t, publicJWK(t, rk, "k1", "RS256"), publicJWK(t, rk2, "k2", "RS256")))
	if _, err := a.Authenticate(t.Context(), bearerRequest(sign(t, jwa.RS256(), rk2, "k2", claims(nil))), untrustedPeer, nil); err != nil {
		t.Fatalf("Authenticate with the rotated key: %v", err)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("fetches after a rotated kid = %d, want 2", got)
	}

	// Bogus kids do not hammer the issuer: no second forced refresh within the minute.
	bogus := sign(t, jwa.RS256(), rk2, "k3", claims(nil))
	for range 20 {
		_, err := a.Authenticate(t.Context(), bearerRequest(bogus), untrustedPeer, nil)
		checkError(t, err, http.StatusUnauthorized)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("fetches after 20 unknown kids = %d, want 2", got)
	}

	// Once the interval has passed, an unknown kid refreshes again, and is still refused.
	a.jwt.source.(*remoteSource).forceEvery = 0
	_, err = a.Authenticate(t.Context(), bearerRequest(bogus), untrustedPeer, nil)
	checkError(t, err, http.StatusUnauthorized)
	if got := srv.fetches.Load(); got != 3 {
		t.Errorf("fetches after the interval = %d, want 3", got)
	}
}

func TestJWKSURLFirstFetchFails(t *testing.T) {
	rk, _, _ := testKeys(t)
	octKey, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		status int
		doc    []byte
		want   string
	}{
		{"server error", http.StatusInternalServerError, []byte(`oops`), "fetch jwks"},
		{"not a jwks", http.StatusOK, []byte(`<html>`), "fetch jwks"},
		{"no usable key", http.StatusOK, jwksDoc(t, octKey), "no signing key"},
		{"only an encryption key", http.StatusOK, []byte(strings.Replace(string(jwksDoc(t, publicJWK(t, rk, "k1", ""))), `"kty"`, `"use":"enc","kty"`, 1)), "no signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, tt.doc)
			srv.status = tt.status
			start := time.Now()
			_, err := New(t.Context(), Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %v to fail, want it to fail on the first fetch", d)
			}
		})
	}
}
