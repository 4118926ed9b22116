package identity

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzAuthenticateJWT")

const (
	corpusDir = "testdata/fuzz/FuzzAuthenticateJWT"
	fuzzKid   = "fuzz-rsa"
	// Fixed times keep the seed corpus valid until 2100.
	fuzzIat = int64(1700000000) // 2023-11-14
	fuzzExp = int64(4102444800) // 2100-01-01
)

// fuzzRSAKey is a fixed test-only key (testdata/fuzz-rsa-key.pem), so that the checked-in
// RS256 seeds and key-confusion seeds stay meaningful across runs.
func fuzzRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz-rsa-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("testdata/fuzz-rsa-key.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// fuzzAuthenticators returns an HS256 authenticator and an RS256 JWKS authenticator.
func fuzzAuthenticators(t testing.TB, rk *rsa.PrivateKey) []*Authenticator {
	t.Helper()
	hs := newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret}})
	set := newAuth(t, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience,
		JWKS: jwksDoc(t, publicJWK(t, rk, fuzzKid, ""))}})
	return []*Authenticator{hs, set}
}

func fuzzClaims(overrides map[string]any) map[string]any {
	c := claims(overrides)
	if _, ok := overrides["exp"]; !ok {
		c["exp"] = fuzzExp
	}
	if _, ok := overrides["iat"]; !ok {
		c["iat"] = fuzzIat
	}
	return c
}

// attackSeeds are the REDTEAM 39/40 tokens, by corpus file name. Names starting with
// "valid_" must authenticate; every other seed must be refused.
func attackSeeds(t testing.TB, rk *rsa.PrivateKey) map[string]string {
	t.Helper()
	valid := sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(nil))
	parts := strings.Split(valid, ".")
	der, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, err := json.Marshal(publicJWK(t, rk, fuzzKid, ""))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"valid_hs256":        valid,
		"valid_rs256":        sign(t, jwa.RS256(), rk, fuzzKid, fuzzClaims(nil)),
		"alg_none_empty_sig": b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
		"alg_none_with_sig":  b64(map[string]any{"alg": "none"}) + "." + parts[1] + "." + parts[2],
		"alg_NONE":           b64(map[string]any{"alg": "NONE", "kid": fuzzKid}) + "." + parts[1] + ".AAAA",
		"key_confusion_pem":  handHS256(map[string]any{"alg": "HS256", "typ": "JWT", "kid": fuzzKid}, fuzzClaims(nil), pemKey),
		"key_confusion_jwk":  handHS256(map[string]any{"alg": "HS256", "kid": fuzzKid}, fuzzClaims(nil), jwkJSON),
		"key_confusion_der":  handHS256(map[string]any{"alg": "HS256"}, fuzzClaims(nil), der),
		"unknown_kid":        sign(t, jwa.RS256(), rk, "unknown", fuzzClaims(nil)),
		"expired":            sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"exp": int64(1000000000)})),
		"nbf_future":         sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"nbf": int64(4000000000)})),
		"iat_future":         sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"iat": int64(4000000000)})),
		"missing_exp":        sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"exp": nil})),
		"wrong_aud":          sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"aud": "crm"})),
		"wrong_iss":          sign(t, jwa.RS256(), rk, fuzzKid, fuzzClaims(map[string]any{"iss": "https://evil.example.com/"})),
		"missing_sub":        sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"sub": nil})),
		"numeric_sub":        sign(t, jwa.HS256(), testHMACSecret, "", fuzzClaims(map[string]any{"sub": 7})),
		"crit_header":        handHS256(map[string]any{"alg": "HS256", "crit": []string{"b64"}, "b64": false}, fuzzClaims(nil), testHMACSecret),
		"nested_jwt":         handHS256(map[string]any{"alg": "HS256", "cty": "JWT"}, fuzzClaims(nil), testHMACSecret),
		"payload_swapped":    parts[0] + "." + b64(fuzzClaims(map[string]any{"sub": "admin"})) + "." + parts[2],
		"jwe_shaped":         parts[0] + ".." + parts[1] + "." + parts[2] + ".AAAA",
		"json_serialization": `{"payload":"` + parts[1] + `","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`,
		"two_tokens":         valid + ", Bearer " + valid,
		"empty":              "",
		"garbage":            "\x00\xff..",
	}
}

func corpusFile(tok string) string {
	return "go test fuzz v1\nstring(" + strconv.Quote(tok) + ")\n"
}

// readCorpus returns the seed files of dir by name.
func readCorpus(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seeds := make(map[string]string)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a go test fuzz v1 file with one string", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		seeds[e.Name()] = s
	}
	return seeds
}

// TestFuzzSeedCorpus checks the checked-in attack tokens: each valid_* seed authenticates
// and every other one is refused. With -update-corpus it rewrites them first.
func TestFuzzSeedCorpus(t *testing.T) {
	rk := fuzzRSAKey(t)
	if *updateCorpus {
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, tok := range attackSeeds(t, rk) {
			if err := os.WriteFile(filepath.Join(corpusDir, name), []byte(corpusFile(tok)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	seeds := readCorpus(t, corpusDir)
	for name := range attackSeeds(t, rk) {
		if _, ok := seeds[name]; !ok {
			t.Errorf("seed %s missing from %s (run with -update-corpus)", name, corpusDir)
		}
	}
	auths := fuzzAuthenticators(t, rk)
	for name, tok := range seeds {
		authenticated := 0
		for _, a := range auths {
			if _, err := a.Authenticate(context.Background(), bearerRequest(tok), untrustedPeer, nil); err == nil {
				authenticated++
			}
		}
		wantValid := strings.HasPrefix(name, "valid_")
		if got := authenticated > 0; got != wantValid {
			t.Errorf("seed %s authenticated = %v, want %v", name, got, wantValid)
		}
	}
}

// FuzzAuthenticateJWT: whatever the token bytes, Authenticate never panics, fails with a
// 400/401 *Error that does not echo the token, and succeeds only for a token whose signature
// verifies under the configured HMAC secret or RSA key (checked here without jwx).
func FuzzAuthenticateJWT(f *testing.F) {
	rk := fuzzRSAKey(f)
	for _, tok := range attackSeeds(f, rk) {
		f.Add(tok)
	}
	auths := fuzzAuthenticators(f, rk)
	f.Fuzz(func(t *testing.T, token string) {
		r := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
		for _, a := range auths {
			u, err := a.Authenticate(context.Background(), r, untrustedPeer, nil)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || (e.Status != http.StatusBadRequest && e.Status != http.StatusUnauthorized) {
					t.Fatalf("Authenticate(%q) error = %v, want a 400/401 *Error", token, err)
				}
				if len(token) >= 24 && strings.Contains(err.Error(), token) {
					t.Fatalf("error %q echoes the token", err)
				}
				continue
			}
			if !signedByTestKeys(token, &rk.PublicKey) {
				t.Fatalf("Authenticate(%q) = %+v, but the token is not signed by a configured key", token, u)
			}
			if u.ID == "" || u.Source != SourceJWT {
				t.Fatalf("Authenticate(%q) = %+v, want a JWT user with an id", token, u)
			}
		}
	})
}

// signedByTestKeys verifies a compact token's signature with crypto/hmac and crypto/rsa
// directly.
func signedByTestKeys(token string, pub *rsa.PublicKey) bool {
	token = strings.Trim(token, " \t")
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return false
	}
	input, sig64 := token[:i], token[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, testHMACSecret)
	mac.Write([]byte(input))
	if hmac.Equal(mac.Sum(nil), sig) {
		return true
	}
	sum := sha256.Sum256([]byte(input))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
}

func BenchmarkAuthenticate(b *testing.B) {
	rk, _, ek := testKeys(b)
	doc := jwksDoc(b, publicJWK(b, rk, "rsa-1", ""), publicJWK(b, ek, "ec-1", ""))
	set := newAuth(b, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: doc}})
	hs := newAuth(b, Config{JWT: &JWTConfig{Issuer: testIssuer, Audience: testAudience, HMACSecret: testHMACSecret}})
	cases := []struct {
		name  string
		a     *Authenticator
		token string
	}{
		{"HS256", hs, sign(b, jwa.HS256(), testHMACSecret, "", claims(nil))},
		{"RS256", set, sign(b, jwa.RS256(), rk, "rsa-1", claims(nil))},
		{"ES256", set, sign(b, jwa.ES256(), ek, "ec-1", claims(nil))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := bearerRequest(c.token)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.a.Authenticate(ctx, r, untrustedPeer, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
