package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "veil"
)

var testHMACSecret = []byte("0123456789abcdef0123456789abcdef-test-only")

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

// testKeys generates the test keys once per test binary (RSA generation is slow).
func testKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, rsaKey2, ecKey
}

// publicJWK returns the public JWK of priv with kid and, when alg is not "", alg.
func publicJWK(t testing.TB, priv any, kid, alg string) jwk.Key {
	t.Helper()
	var pub any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	default:
		pub = priv
	}
	key, err := jwk.Import(pub)
	if err != nil {
		t.Fatalf("jwk.Import: %v", err)
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if alg != "" {
		if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

// jwksDoc returns a JWK Set document holding keys.
func jwksDoc(t testing.TB, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claims returns valid claims for user alice, with overrides applied; a nil override value
// deletes the claim.
func claims(overrides map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":        testIssuer,
		"aud":        testAudience,
		"sub":        "alice",
		"exp":        now.Add(time.Hour).Unix(),
		"iat":        now.Add(-time.Minute).Unix(),
		"roles":      []string{"cs_agent", "viewer"},
		"department": "cs",
		"email":      "alice@example.com",
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign returns a compact JWS over the JSON of claims, signed by jwx.
func sign(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("jws.Sign: %v", err)
	}
	return string(tok)
}

func b64(v any) string {
	var b []byte
	switch v := v.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// handHS256 crafts an HS256 token by hand with any header and any secret: the way an
// attacker builds alg-confusion tokens.
func handHS256(header map[string]any, claims map[string]any, secret []byte) string {
	signingInput := b64(header) + "." + b64(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + b64(mac.Sum(nil))
}

func bearerRequest(token string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, "http://veil.test/api/customers", nil)
	if err != nil {
		panic(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func newAuth(t testing.TB, c Config) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

var (
	untrustedPeer = netip.MustParseAddr("203.0.113.9")
	trustedPeer   = netip.MustParseAddr("10.0.0.5")
)

// checkError reports whether err is an *Error with the given status, and that it leaks no
// secret.
func checkError(t *testing.T, err error, status int, secrets ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error with status %d", err, err, status)
	}
	if e.Status != status {
		t.Errorf("status = %d (%v), want %d", e.Status, err, status)
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(err.Error(), s) || strings.Contains(e.Reason, s)) {
			t.Errorf("error %q contains the secret %q", err, s)
		}
	}
	return e
}
