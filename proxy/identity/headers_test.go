package identity

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

var trustedPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}

func headerAuth(t *testing.T) *Authenticator {
	return newAuth(t, Config{TrustedHeaders: &TrustedHeadersConfig{TrustedPeers: trustedPrefixes}})
}

func TestSanitize(t *testing.T) {
	a := headerAuth(t)
	custom := newAuth(t, Config{TrustedHeaders: &TrustedHeadersConfig{User: "X-Auth-User", Roles: "X-Auth-Groups", TrustedPeers: trustedPrefixes}})
	off := newAuth(t, Config{})
	spoofed := func() http.Header {
		return http.Header{
			"X-Veil-User":         {"admin"},
			"X-Veil-Roles":        {"security_admin"},
			"X-Veil-Department":   {"sec"},
			"X-Veil-Email":        {"admin@example.com"},
			"X_veil_user":         {"admin"}, // as Go's server keys "x_veil_user"
			"X-Auth-User":         {"admin"},
			"X-Auth-Groups":       {"admin"},
			"X-Forwarded-User":    {"admin"},
			"X-Forwarded-Email":   {"admin@example.com"},
			"X_forwarded_email":   {"admin@example.com"},
			"X-Auth-Request-User": {"admin"},
			"Remote-User":         {"admin"},
			"Authorization":       {"Bearer x.y.z"},
			"X-Api-Key":           {"k"},
			"Accept":              {"application/json"},
		}
	}
	keys := func(h http.Header) []string {
		var out []string
		for k := range h {
			out = append(out, k)
		}
		return out
	}
	tests := []struct {
		name string
		a    *Authenticator
		peer netip.Addr
		want []string // headers left
	}{
		{"untrusted peer", a, untrustedPeer, []string{"X-Auth-User", "X-Auth-Groups", "Authorization", "X-Api-Key", "Accept"}},
		{"untrusted peer, custom names", custom, untrustedPeer, []string{"Authorization", "X-Api-Key", "Accept"}},
		{"mode off: every peer untrusted", off, trustedPeer, []string{"X-Auth-User", "X-Auth-Groups", "Authorization", "X-Api-Key", "Accept"}},
		{"invalid peer", a, netip.Addr{}, []string{"X-Auth-User", "X-Auth-Groups", "Authorization", "X-Api-Key", "Accept"}},
		{"trusted peer keeps canonical names only", a, trustedPeer, []string{
			"X-Veil-User", "X-Veil-Roles", "X-Veil-Department", "X-Veil-Email", "X-Auth-User", "X-Auth-Groups",
			"X-Forwarded-User", "X-Forwarded-Email", "X-Auth-Request-User", "Remote-User", "Authorization", "X-Api-Key", "Accept"}},
		{"trusted IPv4-mapped peer", a, netip.MustParseAddr("::ffff:10.1.2.3"), []string{
			"X-Veil-User", "X-Veil-Roles", "X-Veil-Department", "X-Veil-Email", "X-Auth-User", "X-Auth-Groups",
			"X-Forwarded-User", "X-Forwarded-Email", "X-Auth-Request-User", "Remote-User", "Authorization", "X-Api-Key", "Accept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := spoofed()
			tt.a.Sanitize(h, tt.peer)
			if diff := cmp.Diff(tt.want, keys(h), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("Sanitize(peer %v) left headers (-want +got):\n%s", tt.peer, diff)
			}
		})
	}
}

func TestTrustedHeaders(t *testing.T) {
	a := headerAuth(t)
	tests := []struct {
		name   string
		peer   netip.Addr
		h      http.Header
		want   User
		status int  // 0: success
		noID   bool // ErrNoIdentity
	}{
		{name: "trusted peer", peer: trustedPeer,
			h:    http.Header{"X-Veil-User": {"alice"}, "X-Veil-Roles": {" cs_agent, ,viewer ,"}, "X-Veil-Department": {"cs"}, "X-Veil-Email": {"alice@example.com"}},
			want: User{ID: "alice", Roles: []string{"cs_agent", "viewer"}, Department: "cs", Email: "alice@example.com", Source: SourceTrustedHeaders}},
		{name: "utf-8 user", peer: trustedPeer, h: http.Header{"X-Veil-User": {"张三"}},
			want: User{ID: "张三", Source: SourceTrustedHeaders}},
		{name: "untrusted peer is ignored", peer: untrustedPeer, h: http.Header{"X-Veil-User": {"admin"}}, noID: true},
		{name: "roles without user", peer: trustedPeer, h: http.Header{"X-Veil-Roles": {"admin"}}, noID: true},
		{name: "duplicate user header", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice", "admin"}}, status: 400},
		{name: "duplicate roles header", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice"}, "X-Veil-Roles": {"a", "b"}}, status: 400},
		{name: "duplicate via underscore spelling", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice"}, "X_veil_user": {"admin"}}, status: 400},
		{name: "user with comma", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice, admin"}}, status: 400},
		{name: "empty user", peer: trustedPeer, h: http.Header{"X-Veil-User": {"  "}}, status: 400},
		{name: "control character", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice\x00admin"}}, status: 400},
		{name: "tab inside", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice\tadmin"}}, status: 400},
		{name: "DEL in roles", peer: trustedPeer, h: http.Header{"X-Veil-User": {"alice"}, "X-Veil-Roles": {"a\x7f"}}, status: 400},
		{name: "invalid utf-8", peer: trustedPeer, h: http.Header{"X-Veil-User": {"\xff\xfe"}}, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: tt.h}
			got, err := a.Authenticate(context.Background(), r, tt.peer, []string{ModeTrustedHeaders})
			switch {
			case tt.noID:
				if err != ErrNoIdentity {
					t.Errorf("Authenticate error = %v, want ErrNoIdentity", err)
				}
			case tt.status != 0:
				checkError(t, err, tt.status)
			case err != nil:
				t.Fatalf("Authenticate error = %v, want success", err)
			default:
				if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Authenticate user mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// A spoofed identity header from an untrusted peer is removed by Sanitize and does not
// authenticate, even on a route that lists only trusted headers.
func TestSpoofedIdentityHeadersNeverAuthenticate(t *testing.T) {
	a := headerAuth(t)
	r := &http.Request{Header: http.Header{"X-Veil-User": {"admin"}, "X-Veil-Roles": {"security_admin"}}}
	a.Sanitize(r.Header, untrustedPeer)
	if v := r.Header.Get("X-Veil-User"); v != "" {
		t.Errorf("after Sanitize X-Veil-User = %q, want removed", v)
	}
	if _, err := a.Authenticate(context.Background(), r, untrustedPeer, nil); err != ErrNoIdentity {
		t.Errorf("Authenticate error = %v, want ErrNoIdentity", err)
	}
}

func TestClientIP(t *testing.T) {
	a := headerAuth(t)
	off := newAuth(t, Config{})
	tests := []struct {
		name string
		a    *Authenticator
		peer string
		xff  []string
		want string
	}{
		{"no xff", a, "10.0.0.5", nil, "10.0.0.5"},
		{"untrusted peer ignores spoofed xff", a, "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"mode off ignores xff", off, "10.0.0.5", []string{"1.2.3.4"}, "10.0.0.5"},
		{"one trusted hop", a, "10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client spoofs a prefix", a, "10.0.0.5", []string{"1.1.1.1, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", a, "10.0.0.5", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9", "10.8.8.8"}, "198.51.100.7"},
		{"client spoofs a trusted address left of itself", a, "10.0.0.5", []string{"10.1.1.1, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"all hops trusted", a, "10.0.0.5", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage entry stops at last trusted hop", a, "10.0.0.5", []string{"198.51.100.7, unknown, 10.9.9.9"}, "10.9.9.9"},
		{"port forms", a, "10.0.0.5", []string{"[2001:db8::1]:443, 10.9.9.9:80"}, "2001:db8::1"},
		{"ipv4-mapped peer and entry", a, "::ffff:10.0.0.5", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"ipv6 trusted peer", a, "fd00::1", []string{"2001:db8::7"}, "2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			got := tt.a.ClientIP(h, netip.MustParseAddr(tt.peer))
			if want := netip.MustParseAddr(tt.want); got != want {
				t.Errorf("ClientIP(xff %q, peer %s) = %v, want %v", tt.xff, tt.peer, got, want)
			}
		})
	}
}

func TestAPIKeys(t *testing.T) {
	key := "vk_live_4f9a1c2e8b7d6a5f"
	a := newAuth(t, Config{APIKeys: &APIKeysConfig{Keys: []APIKey{
		{SHA256: sha256.Sum256([]byte("other-key")), User: "etl"},
		{SHA256: sha256.Sum256([]byte(key)), User: "reporting", Roles: []string{"ops_manager"}, Department: "ops"},
	}}})
	tests := []struct {
		name   string
		values []string
		want   User
		status int
		noID   bool
	}{
		{name: "ok", values: []string{key}, want: User{ID: "reporting", Roles: []string{"ops_manager"}, Department: "ops", Source: SourceAPIKey}},
		{name: "ok with spaces", values: []string{" " + key + " "}, want: User{ID: "reporting", Roles: []string{"ops_manager"}, Department: "ops", Source: SourceAPIKey}},
		{name: "wrong key", values: []string{key + "x"}, status: 401},
		{name: "prefix of key", values: []string{key[:8]}, status: 401},
		{name: "empty", values: []string{""}, status: 401},
		{name: "twice", values: []string{key, key}, status: 400},
		{name: "absent", noID: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			for _, v := range tt.values {
				r.Header.Add("X-Api-Key", v)
			}
			got, err := a.Authenticate(context.Background(), r, untrustedPeer, nil)
			switch {
			case tt.noID:
				if err != ErrNoIdentity {
					t.Errorf("Authenticate error = %v, want ErrNoIdentity", err)
				}
			case tt.status != 0:
				checkError(t, err, tt.status, key, key[:8])
			case err != nil:
				t.Fatalf("Authenticate error = %v, want success", err)
			default:
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Authenticate user mismatch (-want +got):\n%s", diff)
				}
				got.Roles[0] = "mutated"
				again, _ := a.Authenticate(context.Background(), r, untrustedPeer, nil)
				if again.Roles[0] != "ops_manager" {
					t.Errorf("mutating a returned User changed the configured roles to %q", again.Roles[0])
				}
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	sum := sha256.Sum256([]byte("k"))
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no trusted peers", Config{TrustedHeaders: &TrustedHeadersConfig{}}, "trusted_peers is required"},
		{"invalid prefix", Config{TrustedHeaders: &TrustedHeadersConfig{TrustedPeers: []netip.Prefix{{}}}}, "invalid trusted peer"},
		{"bad header name", Config{TrustedHeaders: &TrustedHeadersConfig{User: "X Bad", TrustedPeers: trustedPrefixes}}, "invalid header name"},
		{"same header twice", Config{TrustedHeaders: &TrustedHeadersConfig{User: "X-Who", Roles: "x_who", TrustedPeers: trustedPrefixes}}, "configured twice"},
		{"authorization as identity header", Config{TrustedHeaders: &TrustedHeadersConfig{User: "Authorization", TrustedPeers: trustedPrefixes}}, "Authorization"},
		{"no api keys", Config{APIKeys: &APIKeysConfig{}}, "no keys"},
		{"api key without user", Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{SHA256: sum}}}}, "user is required"},
		{"api key without hash", Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{User: "u"}}}}, "sha256 is required"},
		{"api key twice", Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{SHA256: sum, User: "u"}, {SHA256: sum, User: "v"}}}}, "twice"},
		{"api key in Authorization", Config{APIKeys: &APIKeysConfig{Header: "authorization", Keys: []APIKey{{SHA256: sum, User: "u"}}}}, "Authorization"},
		{"api key in an identity header", Config{APIKeys: &APIKeysConfig{Header: "X-Forwarded-User", Keys: []APIKey{{SHA256: sum, User: "u"}}}}, "identity header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) error = %v, want one containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestAPIKeyLogValueHidesHash(t *testing.T) {
	k := APIKey{SHA256: sha256.Sum256([]byte("k")), User: "etl"}
	if got, want := k.LogValue().String(), "[user=etl]"; got != want {
		t.Errorf("LogValue() = %s, want %s", got, want)
	}
}

// Modes are tried in the route's order; an invalid credential stops the search.
func TestAuthenticateModes(t *testing.T) {
	key := "vk_test_key_0001"
	a := newAuth(t, Config{
		JWT:            &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret},
		TrustedHeaders: &TrustedHeadersConfig{TrustedPeers: trustedPrefixes},
		APIKeys:        &APIKeysConfig{Keys: []APIKey{{SHA256: sha256.Sum256([]byte(key)), User: "svc"}}},
	})
	valid := sign(t, jwa.HS256(), testHMACSecret, "", claims(nil))
	expired := sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": int64(1000)}))
	tests := []struct {
		name   string
		h      http.Header
		peer   netip.Addr
		modes  []string
		want   string // user id
		status int
		noID   bool
	}{
		{name: "jwt first by default", h: http.Header{"Authorization": {"Bearer " + valid}, "X-Api-Key": {key}}, peer: untrustedPeer, want: "alice"},
		{name: "route order puts api keys first", h: http.Header{"Authorization": {"Bearer " + valid}, "X-Api-Key": {key}}, peer: untrustedPeer,
			modes: []string{ModeAPIKeys, ModeJWT}, want: "svc"},
		{name: "invalid jwt does not fall through to a valid api key", h: http.Header{"Authorization": {"Bearer " + expired}, "X-Api-Key": {key}},
			peer: untrustedPeer, status: 401},
		{name: "invalid jwt does not fall through to trusted headers", h: http.Header{"Authorization": {"Bearer " + expired}, "X-Veil-User": {"bob"}},
			peer: trustedPeer, status: 401},
		{name: "mode not listed is not used", h: http.Header{"X-Api-Key": {key}}, peer: untrustedPeer, modes: []string{ModeJWT}, noID: true},
		{name: "unknown and unimplemented modes are skipped", h: http.Header{"X-Api-Key": {key}}, peer: untrustedPeer,
			modes: []string{"upstream_token", "bogus", ModeAPIKeys}, want: "svc"},
		{name: "trusted headers after jwt without token", h: http.Header{"X-Veil-User": {"bob"}}, peer: trustedPeer, want: "bob"},
		{name: "nothing at all", h: http.Header{}, peer: untrustedPeer, noID: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Authenticate(context.Background(), &http.Request{Header: tt.h}, tt.peer, tt.modes)
			switch {
			case tt.noID:
				if err != ErrNoIdentity {
					t.Errorf("Authenticate error = %v, want ErrNoIdentity", err)
				}
			case tt.status != 0:
				checkError(t, err, tt.status, key, expired)
			case err != nil:
				t.Fatalf("Authenticate error = %v, want user %q", err, tt.want)
			case got.ID != tt.want:
				t.Errorf("Authenticate user = %q, want %q", got.ID, tt.want)
			}
		})
	}
}

func TestStripCredentials(t *testing.T) {
	a := newAuth(t, Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{SHA256: sha256.Sum256([]byte("k")), User: "svc"}}}})
	tests := []struct {
		source string
		want   []string
	}{
		{SourceJWT, []string{"X-Api-Key", "X-Veil-User"}},
		{SourceAPIKey, []string{"Authorization", "X-Veil-User"}},
		{SourceTrustedHeaders, []string{"Authorization", "X-Api-Key", "X-Veil-User"}},
	}
	for _, tt := range tests {
		h := http.Header{"Authorization": {"Bearer t"}, "X-Api-Key": {"k"}, "X-Veil-User": {"u"}}
		a.StripCredentials(h, User{Source: tt.source})
		var got []string
		for k := range h {
			got = append(got, k)
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("StripCredentials(%s) left (-want +got):\n%s", tt.source, diff)
		}
	}
}
