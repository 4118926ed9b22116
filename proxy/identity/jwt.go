package identity

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

const (
	defaultLeeway = 30 * time.Second
	// maxTokenLen bounds the bearer token; large Azure AD tokens with group claims stay well
	// below it.
	maxTokenLen = 32 << 10
	minHMACLen  = 32
)

var (
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	hmacAlgs       = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64} // alg ⇒ minimum secret length
)

// keySource returns the keys that may verify a token with the given kid ("" when the token
// names none).
type keySource interface {
	keys(ctx context.Context, kid string) ([]verificationKey, error)
}

// jwtVerifier verifies bearer tokens and maps their claims to a User. It is the jws.KeyProvider
// for its own tokens, so that every key handed to jwx has passed the algorithm allow-list.
type jwtVerifier struct {
	issuer   string
	audience string
	claims   ClaimNames
	leeway   time.Duration
	allowed  map[string]bool
	source   keySource
}

func newJWTVerifier(ctx context.Context, c JWTConfig) (*jwtVerifier, error) {
	if c.Issuer == "" {
		return nil, errors.New("issuer is required")
	}
	if c.Audience == "" {
		return nil, errors.New("audience is required")
	}
	if c.Leeway < 0 {
		return nil, fmt.Errorf("leeway %s is negative", c.Leeway)
	}
	sources := 0
	for _, set := range []bool{len(c.JWKS) > 0, c.JWKSURL != "", len(c.HMACSecret) > 0, c.Discovery} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("exactly one of jwks, jwks_url, hmac secret and discovery must be set")
	}
	v := &jwtVerifier{
		issuer:   c.Issuer,
		audience: c.Audience,
		claims:   c.Claims,
		leeway:   c.Leeway,
		allowed:  make(map[string]bool),
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	v.claims.User = cmp.Or(v.claims.User, "sub")
	v.claims.Roles = cmp.Or(v.claims.Roles, "roles")
	v.claims.Department = cmp.Or(v.claims.Department, "department")
	v.claims.Email = cmp.Or(v.claims.Email, "email")

	algs := c.Algorithms
	if len(c.HMACSecret) > 0 {
		if len(algs) == 0 {
			algs = []string{"HS256"}
		}
		minLen := minHMACLen
		for _, alg := range algs {
			n, ok := hmacAlgs[alg]
			if !ok {
				return nil, fmt.Errorf("algorithm %q cannot be used with an hmac secret (allowed: HS256, HS384, HS512)", alg)
			}
			minLen = max(minLen, n)
			v.allowed[alg] = true
		}
		if len(c.HMACSecret) < minLen {
			return nil, fmt.Errorf("hmac secret is %d bytes, want at least %d", len(c.HMACSecret), minLen)
		}
		v.source = newHMACSource(c.HMACSecret, v.allowed)
		return v, nil
	}

	client := c.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	jwksURL := c.JWKSURL
	if c.Discovery {
		doc, err := discover(ctx, c.Issuer, client)
		if err != nil {
			return nil, err
		}
		jwksURL = doc.JWKSURI
		if len(algs) == 0 {
			algs = doc.signingAlgs()
		}
	}
	if len(algs) == 0 {
		algs = []string{"RS256", "ES256"}
	}
	for _, alg := range algs {
		if !slices.Contains(asymmetricAlgs, alg) {
			return nil, fmt.Errorf("algorithm %q cannot be used with a jwks (allowed: %s)", alg, strings.Join(asymmetricAlgs, ", "))
		}
		v.allowed[alg] = true
	}
	var err error
	if len(c.JWKS) > 0 {
		v.source, err = newStaticSource(c.JWKS, v.allowed)
	} else {
		v.source, err = newRemoteSource(ctx, jwksURL, client, v.allowed)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// FetchKeys implements jws.KeyProvider: it hands jwx only keys whose allowed algorithms
// include the token's alg, and refuses header features Veil does not accept.
func (v *jwtVerifier) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if _, ok := h.Critical(); ok {
		return errors.New(`"crit" header is not accepted`)
	}
	if _, ok := h.B64(); ok {
		return errors.New(`"b64" header is not accepted`)
	}
	if cty, ok := h.ContentType(); ok && strings.EqualFold(cty, "JWT") {
		return errors.New("nested tokens are not accepted")
	}
	alg, ok := h.Algorithm()
	if !ok {
		return errors.New(`no "alg" header`)
	}
	name := alg.String()
	if !v.allowed[name] {
		return fmt.Errorf("algorithm %q is not allowed", name)
	}
	kid, _ := h.KeyID()
	keys, err := v.source.keys(ctx, kid)
	if err != nil {
		return err
	}
	found := false
	for _, k := range keys {
		if k.algs[name] {
			sink.Key(alg, k.raw)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no key with kid %q accepts algorithm %q", kid, name)
	}
	return nil
}

// authenticate verifies the bearer token in h and returns it. found is false when h carries
// no bearer token or, with leaveOpaque, a bearer token that is not shaped like a JWS (it then
// belongs to the route's upstream_token mode).
func (v *jwtVerifier) authenticate(ctx context.Context, h http.Header, leaveOpaque bool) (u User, token string, found bool, _ *Error) {
	vals := h.Values("Authorization")
	if len(vals) == 0 {
		return User{}, "", false, nil
	}
	if len(vals) > 1 {
		return User{}, "", true, errorf(http.StatusBadRequest, "multiple Authorization headers", "%d Authorization headers", len(vals))
	}
	token, ok := bearerToken(vals[0])
	if !ok || (leaveOpaque && !jwsShaped(token)) {
		return User{}, "", false, nil
	}
	if err := checkCompactSyntax(token); err != nil {
		return User{}, "", true, &Error{Status: http.StatusUnauthorized, Reason: "invalid bearer token", Err: err}
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKeyProvider(v),
		jwt.WithContext(ctx),
		jwt.WithStrictStringClaims(true),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAcceptableSkew(v.leeway),
	)
	if err != nil {
		reason := "invalid bearer token"
		switch {
		case errors.Is(err, jwt.TokenExpiredError()):
			reason = "bearer token expired"
		case errors.Is(err, jwt.TokenNotYetValidError()):
			reason = "bearer token not yet valid"
		}
		return User{}, "", true, &Error{Status: http.StatusUnauthorized, Reason: reason, Err: fmt.Errorf("jwt: %w", err)}
	}
	u, err = v.user(tok)
	if err != nil {
		return User{}, "", true, &Error{Status: http.StatusUnauthorized, Reason: "invalid bearer token", Err: err}
	}
	return u, token, true, nil
}

// jwsShaped reports whether token looks like a JWS compact serialization: base64url
// characters in exactly three dot-separated segments (which may be empty, so that malformed
// JWTs still reach the verifier and are refused there). Opaque vendor tokens (Salesforce
// session ids with "!", Lark "u-…", Airtable "pat….…", NocoDB "nc_pat_…") are not.
func jwsShaped(token string) bool {
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// bearerToken returns the token of an "Authorization: Bearer <token>" value (the scheme is
// case-insensitive, RFC 9110 §11.1). ok is false for any other scheme.
func bearerToken(v string) (token string, ok bool) {
	v = strings.TrimLeft(v, " \t")
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.Trim(rest, " \t"), true
}

// checkCompactSyntax accepts only the JWS compact serialization: three base64url segments, a
// non-empty signature, no padding, bounded length. Anything else (JSON serialization, JWE,
// unsigned tokens) never reaches the parser.
func checkCompactSyntax(token string) error {
	if token == "" {
		return errors.New("empty token")
	}
	if len(token) > maxTokenLen {
		return fmt.Errorf("token is %d bytes, limit %d", len(token), maxTokenLen)
	}
	dots := 0
	segLen := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return errors.New("malformed token: empty segment")
			}
			dots++
			segLen = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			segLen++
		default:
			return errors.New("malformed token: not base64url")
		}
	}
	if dots != 2 || segLen == 0 {
		return errors.New("malformed token: want header.payload.signature")
	}
	return nil
}

// user maps verified claims to a User.
func (v *jwtVerifier) user(tok jwt.Token) (User, error) {
	claims := make(map[string]any, len(tok.Keys()))
	for _, k := range tok.Keys() {
		var val any
		if err := tok.Get(k, &val); err != nil {
			return User{}, fmt.Errorf("jwt: claim %q: %w", k, err)
		}
		if t, ok := val.(time.Time); ok {
			val = t.Unix()
		}
		claims[k] = val
	}
	u := User{Claims: claims, Source: SourceJWT}

	id, ok := lookupClaim(claims, v.claims.User).(string)
	if !ok || strings.TrimSpace(id) == "" {
		return User{}, fmt.Errorf("jwt: claim %q is missing, empty or not a string", v.claims.User)
	}
	u.ID = id

	roles, err := rolesClaim(lookupClaim(claims, v.claims.Roles))
	if err != nil {
		return User{}, fmt.Errorf("jwt: claim %q: %w", v.claims.Roles, err)
	}
	u.Roles = roles

	if u.Department, err = optionalString(claims, v.claims.Department); err != nil {
		return User{}, err
	}
	if u.Email, err = optionalString(claims, v.claims.Email); err != nil {
		return User{}, err
	}
	return u, nil
}

// lookupClaim returns the top-level claim name or, failing that, the value at the dotted path
// name in nested objects. It returns nil when there is none.
func lookupClaim(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	if !strings.Contains(name, ".") {
		return nil
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

func optionalString(claims map[string]any, name string) (string, error) {
	switch v := lookupClaim(claims, name).(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("jwt: claim %q is a %T, want a string", name, v)
	}
}

// rolesClaim accepts a string array, or a string of roles separated by spaces or commas (as
// the OAuth scope claim is).
func rolesClaim(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return splitRoles(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }), nil
	case []string:
		return cleanRoles(v), nil
	case []any:
		roles := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d is a %T, want a string", i, e)
			}
			roles = append(roles, s)
		}
		return cleanRoles(roles), nil
	default:
		return nil, fmt.Errorf("is a %T, want a string or an array of strings", v)
	}
}

func splitRoles(s string, sep func(rune) bool) []string {
	return cleanRoles(strings.FieldsFunc(s, sep))
}

// cleanRoles trims every role and drops empty ones.
func cleanRoles(in []string) []string {
	out := make([]string, 0, len(in))
	for _, r := range in {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
