package redteam

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/identity"
)

// idp is the identity provider of the JWT tests: one RSA key, published as kid "k1".
type idp struct {
	key  *rsa.PrivateKey
	jwks []byte
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK(&key.PublicKey, "k1")}})
	return &idp{key: key, jwks: jwks}
}

func rsaJWK(k *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claims are valid claims for user alice, a cs_agent.
func validClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": "https://idp.test", "aud": "veil", "sub": "alice", "roles": []string{"cs_agent"},
		"iat": now, "nbf": now - 10, "exp": now + 600}
}

// token signs header and claims with sign (nil: an empty signature).
func token(header, claims map[string]any, sign func(input []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64(sig)
}

func (p *idp) rs256(input []byte) []byte {
	d := sha256.Sum256(input)
	s, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return s
}

func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// jwtEnv is Veil accepting JWTs from p only.
func jwtEnv(t *testing.T, p *idp) *env {
	return newEnv(t, veiltest.Options{
		Identity:      &identity.Config{JWT: &identity.JWTConfig{Issuer: "https://idp.test", Audience: "veil", JWKS: p.jwks}},
		IdentityModes: []string{"jwt"},
	})
}

// bearer sends GET /api/customers with the token and returns the status.
func (e *env) bearer(t *testing.T, tok string) int {
	t.Helper()
	rs := rawTo(t, e.Veil.Listener.Addr().String(),
		"GET /api/customers HTTP/1.1\r\nHost: veil.test\r\nConnection: close\r\nAuthorization: Bearer "+tok+"\r\n\r\n", quiet)
	return one(t, rs).Status
}

// case39 — alg none, an RSA public key used as an HMAC secret, unknown kid: rejected.
func case39(t *testing.T) {
	p := newIdP(t)
	e := jwtEnv(t, p)
	rsHeader := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"}
	t.Run("valid_token_is_accepted", func(t *testing.T) {
		if got := e.bearer(t, token(rsHeader, validClaims(), p.rs256)); got != http.StatusOK {
			t.Fatalf("a valid token = %d, want 200 (the rejections below would prove nothing)", got)
		}
		e.sameRequest(t)
	})
	der, _ := x509.MarshalPKIXPublicKey(&p.key.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(rsaJWK(&p.key.PublicKey, "k1"))
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	attackerIdP := &idp{key: attacker}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := token(rsHeader, validClaims(), p.rs256)
	parts := strings.Split(valid, ".")
	for _, tt := range []struct{ name, tok string }{
		{"alg_none", token(map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), nil)},
		{"alg_None", token(map[string]any{"alg": "None", "typ": "JWT", "kid": "k1"}, validClaims(), nil)},
		{"alg_NONE_with_signature", token(map[string]any{"alg": "NONE", "kid": "k1"}, validClaims(), p.rs256)},
		{"no_alg", token(map[string]any{"typ": "JWT", "kid": "k1"}, validClaims(), p.rs256)},
		{"hs256_public_key_pem", token(map[string]any{"alg": "HS256", "kid": "k1"}, validClaims(), hs256(pemKey))},
		{"hs256_public_key_der", token(map[string]any{"alg": "HS256", "kid": "k1"}, validClaims(), hs256(der))},
		{"hs256_public_jwk", token(map[string]any{"alg": "HS256", "kid": "k1"}, validClaims(), hs256(jwkJSON))},
		{"hs256_modulus", token(map[string]any{"alg": "HS256", "kid": "k1"}, validClaims(), hs256(p.key.N.Bytes()))},
		{"unknown_kid", token(map[string]any{"alg": "RS256", "kid": "k2"}, validClaims(), attackerIdP.rs256)},
		{"kid_path_traversal", token(map[string]any{"alg": "RS256", "kid": "../../../../dev/null"}, validClaims(), attackerIdP.rs256)},
		{"embedded_jwk", token(map[string]any{"alg": "RS256", "kid": "k1", "jwk": rsaJWK(&attacker.PublicKey, "k1")}, validClaims(), attackerIdP.rs256)},
		{"jku", token(map[string]any{"alg": "RS256", "kid": "k1", "jku": "http://127.0.0.1:1/jwks.json"}, validClaims(), attackerIdP.rs256)},
		{"attacker_key_known_kid", token(rsHeader, validClaims(), attackerIdP.rs256)},
		{"ps256_not_allowed", token(map[string]any{"alg": "PS256", "kid": "k1"}, validClaims(), func(in []byte) []byte {
			d := sha256.Sum256(in)
			s, _ := rsa.SignPSS(rand.Reader, p.key, crypto.SHA256, d[:], nil)
			return s
		})},
		{"es256_on_rsa_kid", token(map[string]any{"alg": "ES256", "kid": "k1"}, validClaims(), func(in []byte) []byte {
			d := sha256.Sum256(in)
			s, _ := ecdsa.SignASN1(rand.Reader, ec, d[:])
			return s
		})},
		{"signature_stripped", parts[0] + "." + parts[1] + "."},
		{"claims_swapped", parts[0] + "." + b64(mustJSON(map[string]any{"iss": "https://idp.test", "aud": "veil", "sub": "alice", "roles": []string{"security_admin"}, "exp": time.Now().Unix() + 600})) + "." + parts[2]},
		{"jwe_shape", parts[0] + "." + parts[1] + "." + parts[2] + ".x.y"},
		{"garbage", "not-a-token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.bearer(t, tt.tok)
			status(t, "status", got, http.StatusUnauthorized, http.StatusBadRequest)
			e.nothingForwarded(t)
		})
	}
	t.Run("token_in_query", func(t *testing.T) {
		rs := rawTo(t, e.Veil.Listener.Addr().String(), "GET /api/customers?access_token="+valid+" HTTP/1.1\r\nHost: veil.test\r\nConnection: close\r\n\r\n", quiet)
		status(t, "status", one(t, rs).Status, http.StatusUnauthorized)
		e.nothingForwarded(t)
	})
}

// case40 — expired, not yet valid, no exp, wrong audience or issuer: rejected.
func case40(t *testing.T) {
	p := newIdP(t)
	e := jwtEnv(t, p)
	hdr := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"}
	now := time.Now().Unix()
	with := func(k string, v any) map[string]any {
		c := validClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tt := range []struct {
		name   string
		claims map[string]any
	}{
		{"expired", with("exp", now-3600)},
		{"expired_beyond_leeway", with("exp", now-60)},
		{"not_yet_valid", with("nbf", now+3600)},
		{"missing_exp", with("exp", nil)},
		{"exp_as_string_in_the_past", with("exp", strconv.FormatInt(now-3600, 10))},
		{"nbf_as_string_in_the_future", with("nbf", strconv.FormatInt(now+3600, 10))},
		{"exp_not_a_number", with("exp", map[string]any{"$numberLong": "9999999999"})},
		{"wrong_audience", with("aud", "other")},
		{"audience_list_without_veil", with("aud", []string{"other", "veil2"})},
		{"audience_case", with("aud", "VEIL")},
		{"missing_audience", with("aud", nil)},
		{"wrong_issuer", with("iss", "https://evil.test")},
		{"issuer_prefix", with("iss", "https://idp.test.evil.test")},
		{"missing_issuer", with("iss", nil)},
		{"missing_subject", with("sub", nil)},
		{"empty_subject", with("sub", "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.bearer(t, token(hdr, tt.claims, p.rs256))
			status(t, "status", got, http.StatusUnauthorized, http.StatusBadRequest)
			e.nothingForwarded(t)
		})
	}
}
