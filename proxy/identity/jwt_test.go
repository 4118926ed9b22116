package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwtAuthenticators returns an HS256 authenticator and a JWKS (RS256 + ES256) authenticator.
func jwtAuthenticators(t *testing.T) (hs, set *Authenticator) {
	t.Helper()
	rk, rk2, ek := testKeys(t)
	hs = newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret}})
	doc := jwksDoc(t,
		publicJWK(t, rk, "rsa-1", ""),
		publicJWK(t, ek, "ec-1", "ES256"),
		publicJWK(t, rk2, "rsa-2", "RS256"),
	)
	set = newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: doc,
		Algorithms: []string{"RS256", "RS384", "ES256"}}})
	return hs, set
}

func pemPKIX(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestAuthenticateJWT(t *testing.T) {
	rk, rk2, ek := testKeys(t)
	hs, set := jwtAuthenticators(t)
	now := time.Now()

	rsaJWK, err := json.Marshal(publicJWK(t, rk, "rsa-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)})
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, jwa.HS256(), testHMACSecret, "", claims(nil))
	parts := strings.Split(valid, ".")

	wantAlice := User{ID: "alice", Roles: []string{"cs_agent", "viewer"}, Department: "cs", Email: "alice@example.com", Source: SourceJWT}
	tests := []struct {
		name   string
		auth   *Authenticator
		token  string
		status int // 0: success
		reason string
		cause  string // substring of the error: the check that must have refused the token
		want   User
	}{
		{name: "HS256 ok", auth: hs, token: valid, want: wantAlice},
		{name: "RS256 ok, kid without alg", auth: set, token: sign(t, jwa.RS256(), rk, "rsa-1", claims(nil)), want: wantAlice},
		{name: "RS256 ok, kid with alg", auth: set, token: sign(t, jwa.RS256(), rk2, "rsa-2", claims(nil)), want: wantAlice},
		{name: "RS384 ok on a key without alg", auth: set, token: sign(t, jwa.RS384(), rk, "rsa-1", claims(nil)), want: wantAlice},
		{name: "ES256 ok", auth: set, token: sign(t, jwa.ES256(), ek, "ec-1", claims(nil)), want: wantAlice},
		{name: "roles as a space and comma separated string", auth: hs,
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"roles": " admin, ops  viewer,,"})),
			want:  User{ID: "alice", Roles: []string{"admin", "ops", "viewer"}, Department: "cs", Email: "alice@example.com", Source: SourceJWT}},
		{name: "no roles claim", auth: hs,
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"roles": nil, "department": nil, "email": nil})),
			want:  User{ID: "alice", Roles: nil, Source: SourceJWT}},
		{name: "aud array containing the audience", auth: hs,
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"aud": []string{"other", testAudience}})), want: wantAlice},
		{name: "exp just passed, within leeway", auth: hs,
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), want: wantAlice},

		// REDTEAM 39: algorithm attacks.
		{name: "alg none, empty signature", cause: "malformed token", auth: hs, status: 401, reason: "invalid bearer token",
			token: b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims(nil)) + "."},
		{name: "alg none with a signature", cause: "algorithm \"none\" is not allowed", auth: hs, status: 401, reason: "invalid bearer token",
			token: b64(map[string]any{"alg": "none"}) + "." + b64(claims(nil)) + "." + parts[2]},
		{name: "alg None on a jwks", cause: "unknown SignatureAlgorithm", auth: set, status: 401, reason: "invalid bearer token",
			token: b64(map[string]any{"alg": "None", "kid": "rsa-1"}) + "." + b64(claims(nil)) + ".AAAA"},
		{name: "RS256 key (PKIX PEM) as HS256 secret", cause: "algorithm \"HS256\" is not allowed", auth: set, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(nil), pemPKIX(t, &rk.PublicKey))},
		{name: "RS256 key (PKCS1 PEM) as HS256 secret", cause: "algorithm \"HS256\" is not allowed", auth: set, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "kid": "rsa-1"}, claims(nil), pkcs1)},
		{name: "RS256 key (JWK JSON) as HS256 secret", cause: "algorithm \"HS256\" is not allowed", auth: set, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "kid": "rsa-1"}, claims(nil), rsaJWK)},
		{name: "RS256 key (DER) as HS256 secret, no kid", cause: "algorithm \"HS256\" is not allowed", auth: set, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256"}, claims(nil), der)},
		{name: "RS256 token on an HS256 authenticator", cause: "algorithm \"RS256\" is not allowed", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.RS256(), rk, "rsa-1", claims(nil))},
		{name: "alg outside the allow-list (PS256)", cause: "algorithm \"PS256\" is not allowed", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.PS256(), rk, "rsa-1", claims(nil))},
		{name: "alg allowed but not the key's alg (RS384 on an RS256 key)", cause: "no key with kid \"rsa-2\" accepts algorithm \"RS384\"", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.RS384(), rk2, "rsa-2", claims(nil))},
		{name: "ES256 header on an RSA kid", cause: "no key with kid \"rsa-1\" accepts algorithm \"ES256\"", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.ES256(), ek, "rsa-1", claims(nil))},
		{name: "unknown kid", cause: "unknown kid", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.RS256(), rk, "nope", claims(nil))},
		{name: "no kid with several keys", cause: "token has no kid", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.RS256(), rk, "", claims(nil))},
		{name: "right kid, signed by another key", cause: "invalid ECDSA signature", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.ES256(), otherEC, "ec-1", claims(nil))},
		{name: "HS256 with the wrong secret", cause: "invalid HMAC signature", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), []byte("another-secret-another-secret-xx"), "", claims(nil))},
		{name: "payload swapped", cause: "invalid HMAC signature", auth: hs, status: 401, reason: "invalid bearer token",
			token: parts[0] + "." + b64(claims(map[string]any{"sub": "admin"})) + "." + parts[2]},
		{name: "crit header", cause: "\"crit\" header", auth: hs, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "crit": []string{"exp"}, "exp": 1}, claims(nil), testHMACSecret)},
		{name: "b64 false header", cause: "\"crit\" header", auth: hs, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "b64": false, "crit": []string{"b64"}}, claims(nil), testHMACSecret)},
		{name: "nested JWT", cause: "nested tokens", auth: hs, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256", "cty": "JWT"}, claims(nil), testHMACSecret)},

		// REDTEAM 40: claims.
		{name: "expired", cause: "\"exp\" not satisfied", auth: hs, status: 401, reason: "bearer token expired",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": now.Add(-time.Hour).Unix()}))},
		{name: "nbf in the future", cause: "\"nbf\" not satisfied", auth: hs, status: 401, reason: "bearer token not yet valid",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"nbf": now.Add(time.Hour).Unix()}))},
		{name: "iat in the future", cause: "\"iat\" not satisfied", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"iat": now.Add(time.Hour).Unix()}))},
		{name: "missing exp", cause: "required claim \"exp\" is missing", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": nil}))},
		{name: "exp not a number", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"exp": "tomorrow"}))},
		{name: "wrong aud", cause: "\"aud\" not satisfied", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"aud": "crm"}))},
		{name: "missing aud", cause: "\"aud\" not satisfied", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"aud": nil}))},
		{name: "wrong iss", cause: "\"iss\" not satisfied", auth: set, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.RS256(), rk, "rsa-1", claims(map[string]any{"iss": "https://evil.example.com/"}))},
		{name: "missing iss", cause: "\"iss\" not satisfied", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"iss": nil}))},
		{name: "missing sub", cause: "claim \"sub\" is missing", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"sub": nil}))},
		{name: "empty sub", cause: "claim \"sub\" is missing", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"sub": " "}))},
		{name: "null sub", auth: hs, status: 401, reason: "invalid bearer token",
			token: handHS256(map[string]any{"alg": "HS256"}, claims(map[string]any{"sub": json.RawMessage("null")}), testHMACSecret)},
		{name: "numeric sub", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"sub": 42}))},
		{name: "roles array with a number", cause: "claim \"roles\"", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"roles": []any{"a", 1}}))},
		{name: "roles an object", cause: "claim \"roles\"", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"roles": map[string]any{"a": true}}))},
		{name: "email not a string", cause: "claim \"email\"", auth: hs, status: 401, reason: "invalid bearer token",
			token: sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{"email": []string{"a@b"}}))},

		// Syntax.
		{name: "JSON serialization", auth: hs, status: 401, reason: "invalid bearer token",
			token: `{"payload":"` + parts[1] + `","signatures":[]}`},
		{name: "JWE-shaped", auth: hs, status: 401, reason: "invalid bearer token", token: "a.b.c.d.e"},
		{name: "padding", auth: hs, status: 401, reason: "invalid bearer token", token: parts[0] + "=." + parts[1] + "." + parts[2]},
		{name: "garbage", auth: hs, status: 401, reason: "invalid bearer token", token: "not-a-token"},
		{name: "empty token", auth: hs, status: 401, reason: "invalid bearer token", token: ""},
		{name: "oversized", auth: hs, status: 401, reason: "invalid bearer token", token: parts[0] + "." + strings.Repeat("A", maxTokenLen) + "." + parts[2]},
		{name: "header not JSON", auth: hs, status: 401, reason: "invalid bearer token", token: b64("{alg") + "." + parts[1] + "." + parts[2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.auth.Authenticate(context.Background(), bearerRequest(tt.token), untrustedPeer, nil)
			if tt.status != 0 {
				e := checkError(t, err, tt.status, tt.token, signatureOf(tt.token))
				if !strings.Contains(err.Error(), tt.cause) {
					t.Errorf("error = %v, want its cause to mention %q", err, tt.cause)
				}
				if e.Reason != tt.reason {
					t.Errorf("reason = %q, want %q (err %v)", e.Reason, tt.reason, err)
				}
				if !cmp.Equal(got, User{}) {
					t.Errorf("user = %+v on error, want zero", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate(%s) error = %v, want success", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(User{}, "Claims"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Authenticate(%s) user mismatch (-want +got):\n%s", tt.name, diff)
			}
			if got.Claims["sub"] != got.ID {
				t.Errorf("Claims[sub] = %v, want %q", got.Claims["sub"], got.ID)
			}
			if _, ok := got.Claims["exp"].(int64); !ok {
				t.Errorf("Claims[exp] = %T, want int64 Unix seconds", got.Claims["exp"])
			}
			if s := fmt.Sprintf("%#v", got); strings.Contains(s, signatureOf(tt.token)) {
				t.Errorf("user %s carries the token", s)
			}
		})
	}
}

func signatureOf(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 && len(token)-i > 8 {
		return token[i+1:]
	}
	return ""
}

func TestAuthenticateJWTClaimNames(t *testing.T) {
	a := newAuth(t, Config{JWT: &JWTConfig{
		Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret,
		Claims: ClaimNames{User: "preferred_username", Roles: "realm_access.roles", Department: "https://veil.example/dept", Email: "mail"},
	}})
	tok := sign(t, jwa.HS256(), testHMACSecret, "", claims(map[string]any{
		"preferred_username":        "bob",
		"realm_access":              map[string]any{"roles": []string{"ops_manager"}},
		"https://veil.example/dept": "ops",
		"mail":                      "bob@example.com",
	}))
	got, err := a.Authenticate(context.Background(), bearerRequest(tok), untrustedPeer, []string{ModeJWT})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := User{ID: "bob", Roles: []string{"ops_manager"}, Department: "ops", Email: "bob@example.com", Source: SourceJWT}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(User{}, "Claims")); diff != "" {
		t.Errorf("Authenticate user mismatch (-want +got):\n%s", diff)
	}
}

func TestAuthenticateJWTSingleKeyWithoutKid(t *testing.T) {
	rk, _, _ := testKeys(t)
	a := newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience,
		JWKS: jwksDoc(t, publicJWK(t, rk, "only", ""))}})
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, bearerRequest(sign(t, jwa.RS256(), rk, "", claims(nil))), untrustedPeer, nil); err != nil {
		t.Errorf("token without kid, one key in the set: error %v, want success", err)
	}
	_, err := a.Authenticate(ctx, bearerRequest(sign(t, jwa.RS256(), rk, "other", claims(nil))), untrustedPeer, nil)
	checkError(t, err, http.StatusUnauthorized)
}

func TestAuthenticateAuthorizationHeader(t *testing.T) {
	hs, _ := jwtAuthenticators(t)
	valid := sign(t, jwa.HS256(), testHMACSecret, "", claims(nil))
	tests := []struct {
		name   string
		values []string
		status int // 0: success
		noID   bool
	}{
		{name: "lower-case scheme", values: []string{"bearer " + valid}},
		{name: "extra spaces", values: []string{"Bearer   " + valid + " "}},
		{name: "two Authorization headers", values: []string{"Bearer " + valid, "Bearer " + valid}, status: 400},
		{name: "two tokens in one header", values: []string{"Bearer " + valid + ", Bearer " + valid}, status: 401},
		{name: "Basic is not a bearer token", values: []string{"Basic YWxpY2U6c2VjcmV0"}, noID: true},
		{name: "scheme only", values: []string{"Bearer"}, status: 401},
		{name: "no header", noID: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearerRequest("")
			r.Header.Del("Authorization")
			for _, v := range tt.values {
				r.Header.Add("Authorization", v)
			}
			_, err := hs.Authenticate(context.Background(), r, untrustedPeer, nil)
			switch {
			case tt.noID:
				if err != ErrNoIdentity {
					t.Errorf("Authenticate(%q) error = %v, want ErrNoIdentity", tt.values, err)
				}
			case tt.status != 0:
				checkError(t, err, tt.status, valid)
			case err != nil:
				t.Errorf("Authenticate(%q) error = %v, want success", tt.values, err)
			}
		})
	}
}

func TestNewJWTConfigErrors(t *testing.T) {
	rk, _, ek := testKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	octKey, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := octKey.Set(jwk.KeyIDKey, "oct"); err != nil {
		t.Fatal(err)
	}
	good := jwksDoc(t, publicJWK(t, rk, "rsa-1", ""))
	// jwk.Import refuses short RSA keys, so the weak key's JWK is written by hand.
	weakDoc := []byte(fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"weak","n":%q,"e":"AQAB"}]}`, b64(weak.N.Bytes())))
	tests := []struct {
		name string
		c    JWTConfig
		want string // substring of the error
	}{
		{"no issuer", JWTConfig{Audience: "a", HMACSecret: testHMACSecret}, "issuer is required"},
		{"no audience", JWTConfig{Issuer: "i", HMACSecret: testHMACSecret}, "audience is required"},
		{"no key source", JWTConfig{Issuer: "i", Audience: "a"}, "exactly one"},
		{"two key sources", JWTConfig{Issuer: "i", Audience: "a", HMACSecret: testHMACSecret, JWKS: good}, "exactly one"},
		{"HS256 with a jwks", JWTConfig{Issuer: "i", Audience: "a", JWKS: good, Algorithms: []string{"RS256", "HS256"}}, `"HS256" cannot be used with a jwks`},
		{"RS256 with a secret", JWTConfig{Issuer: "i", Audience: "a", HMACSecret: testHMACSecret, Algorithms: []string{"RS256"}}, `"RS256" cannot be used with an hmac secret`},
		{"alg none", JWTConfig{Issuer: "i", Audience: "a", JWKS: good, Algorithms: []string{"none"}}, `"none" cannot be used`},
		{"short secret", JWTConfig{Issuer: "i", Audience: "a", HMACSecret: []byte("short")}, "at least 32"},
		{"secret short for HS512", JWTConfig{Issuer: "i", Audience: "a", HMACSecret: testHMACSecret, Algorithms: []string{"HS256", "HS512"}}, "at least 64"},
		{"negative leeway", JWTConfig{Issuer: "i", Audience: "a", HMACSecret: testHMACSecret, Leeway: -time.Second}, "negative"},
		{"oct key in jwks", JWTConfig{Issuer: "i", Audience: "a", JWKS: jwksDoc(t, publicJWK(t, rk, "rsa-1", ""), octKey)}, "symmetric"},
		{"weak rsa key", JWTConfig{Issuer: "i", Audience: "a", JWKS: weakDoc}, "1024 bits"},
		{"key alg does not fit key", JWTConfig{Issuer: "i", Audience: "a", JWKS: jwksDoc(t, publicJWK(t, ek, "ec", "RS256"))}, "does not fit"},
		{"no key for the allowed algs", JWTConfig{Issuer: "i", Audience: "a", JWKS: jwksDoc(t, publicJWK(t, ek, "ec", "")), Algorithms: []string{"RS256"}}, "no signing key"},
		{"jwks not JSON", JWTConfig{Issuer: "i", Audience: "a", JWKS: []byte("{")}, "parse jwks"},
		{"jwks url over http", JWTConfig{Issuer: "i", Audience: "a", JWKSURL: "http://idp.example.com/jwks"}, "https"},
		{"jwks url ftp", JWTConfig{Issuer: "i", Audience: "a", JWKSURL: "ftp://idp.example.com/jwks"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			_, err := New(context.Background(), Config{JWT: &c})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) error = %v, want one containing %q", tt.name, err, tt.want)
			}
			if err != nil && len(c.HMACSecret) > 0 && strings.Contains(err.Error(), string(c.HMACSecret)) {
				t.Errorf("New(%s) error %q contains the secret", tt.name, err)
			}
		})
	}
}

func TestJWTConfigLogValueHidesSecrets(t *testing.T) {
	c := JWTConfig{Issuer: "i", Audience: "a", HMACSecret: testHMACSecret, JWKS: []byte(`{"keys":[{"k":"c2VjcmV0"}]}`)}
	got := c.LogValue().String()
	for _, s := range []string{string(testHMACSecret), "c2VjcmV0"} {
		if strings.Contains(got, s) {
			t.Errorf("LogValue() = %s, contains %q", got, s)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	cause := errors.New("cause")
	err := error(&Error{Status: 401, Reason: "invalid bearer token", Err: cause})
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
	if got, want := err.Error(), "identity: invalid bearer token: cause"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := ErrNoIdentity.Error(), "identity: authentication required"; got != want {
		t.Errorf("ErrNoIdentity.Error() = %q, want %q", got, want)
	}
}

func TestAuthenticateJWTOtherAlgorithms(t *testing.T) {
	rk, _, _ := testKeys(t)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		alg  jwa.SignatureAlgorithm
		priv any
		pub  jwk.Key
	}{
		{jwa.EdDSA(), edPriv, publicJWK(t, edPriv.Public(), "k", "")},
		{jwa.PS256(), rk, publicJWK(t, rk, "k", "")},
		{jwa.ES384(), ec384, publicJWK(t, ec384, "k", "")},
	}
	for _, tt := range tests {
		t.Run(tt.alg.String(), func(t *testing.T) {
			a := newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience,
				JWKS: jwksDoc(t, tt.pub), Algorithms: []string{tt.alg.String()}}})
			got, err := a.Authenticate(context.Background(), bearerRequest(sign(t, tt.alg, tt.priv, "k", claims(nil))), untrustedPeer, nil)
			if err != nil || got.ID != "alice" {
				t.Errorf("Authenticate(%s) = %q, %v; want alice", tt.alg, got.ID, err)
			}
		})
	}
}
