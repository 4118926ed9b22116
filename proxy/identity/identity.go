// Package identity establishes who is calling: a verified JWT, identity headers from trusted
// peers, or a static API key.
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// Mode names, as routes list them in their identity configuration.
const (
	ModeJWT            = "jwt"
	ModeTrustedHeaders = "trusted_headers"
	ModeAPIKeys        = "api_keys"
)

// Sources, as User.Source reports them.
const (
	SourceJWT            = "jwt"
	SourceTrustedHeaders = "trusted_headers"
	SourceAPIKey         = "api_key"
)

// User is an authenticated caller.
type User struct {
	ID         string
	Department string
	Email      string
	Roles      []string
	// Claims holds the verified JWT claims (nil for other sources). Time claims (exp, iat,
	// nbf) are Unix seconds. It never contains the raw token.
	Claims map[string]any
	// Source says how the user was established: "jwt", "trusted_headers" or "api_key".
	Source string
}

// Config enables the identity modes; a nil mode is off.
type Config struct {
	JWT            *JWTConfig            // nil: JWT mode off
	TrustedHeaders *TrustedHeadersConfig // nil: trusted-header mode off; no peer is trusted
	APIKeys        *APIKeysConfig        // nil: API-key mode off
}

// JWTConfig configures bearer-token (JWT) verification. Exactly one key source must be set:
// JWKS, JWKSURL or HMACSecret.
type JWTConfig struct {
	// Issuer must equal the token's iss claim. Required.
	Issuer string
	// Audience must be one of the token's aud values. Required.
	Audience string
	// JWKS is a JWK Set document (as read from a file by the caller). Only its asymmetric
	// signing keys are used; a set holding a symmetric (oct) key is refused.
	JWKS []byte
	// JWKSURL is fetched at New (which fails if the first fetch fails), cached, and refreshed
	// in the background no more often than every 5 minutes and at least hourly. A token
	// naming an unknown kid triggers at most one extra refresh a minute. It must be https,
	// or http to a loopback address.
	JWKSURL string
	// HMACSecret is the shared secret for HS256/HS384/HS512; only when no JWKS is set. It
	// must be at least 32 bytes long (RFC 7518 §3.2), and as long as the largest hash in
	// Algorithms. The token's kid is not consulted.
	HMACSecret []byte
	// Algorithms is the allow-list of signature algorithms. Zero: ["RS256", "ES256"] with a
	// JWKS, ["HS256"] with a secret. With a JWKS only RS*, PS*, ES* and EdDSA may be listed;
	// with a secret only HS*.
	Algorithms []string
	// Claims names the claims that hold the user's attributes; a zero field takes its default.
	Claims ClaimNames
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means 30s; negative is refused.
	Leeway time.Duration
	// HTTPClient fetches JWKSURL. Nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// LogValue hides the key material when the config is logged.
func (c JWTConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.String("jwks_url", c.JWKSURL),
		slog.Bool("jwks", len(c.JWKS) > 0),
		slog.Bool("hmac_secret", len(c.HMACSecret) > 0),
		slog.Any("algorithms", c.Algorithms),
	)
}

// ClaimNames names the JWT claims that hold the user's attributes. A name is first looked up
// as a top-level claim; if there is none and the name contains dots, it is read as a path
// into nested objects ("realm_access.roles").
type ClaimNames struct {
	User       string // zero: "sub"; the claim must be a non-empty string
	Roles      string // zero: "roles"; a string array, or a space- or comma-separated string
	Department string // zero: "department"; a string when present
	Email      string // zero: "email"; a string when present
}

// TrustedHeadersConfig configures identity headers set by a trusted front proxy.
type TrustedHeadersConfig struct {
	User       string // header with the user id; zero: "X-Veil-User"
	Roles      string // comma-separated roles; zero: "X-Veil-Roles"
	Department string // zero: "X-Veil-Department"
	Email      string // zero: "X-Veil-Email"
	// TrustedPeers are the socket peers allowed to send the headers, and the proxies whose
	// X-Forwarded-For entries ClientIP follows. Required (at least one).
	TrustedPeers []netip.Prefix
}

// APIKeysConfig configures static API keys. A key is presented in Header only (never in
// Authorization, which belongs to bearer tokens), exactly once.
type APIKeysConfig struct {
	Header string // zero: "X-Api-Key"
	Keys   []APIKey
}

// APIKey is one static key, known by its SHA-256 hash only.
type APIKey struct {
	SHA256     [32]byte // sha256 of the key as presented; compared in constant time
	User       string   // required
	Roles      []string
	Department string
}

// LogValue logs the key's user, never its hash.
func (k APIKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", k.User))
}

// Error is an authentication failure: an HTTP status, a reason safe to show to the client,
// and the internal cause. Neither ever contains a token or key.
type Error struct {
	Status int    // HTTP status: 400 for malformed identity headers, else 401
	Reason string // safe to show to the client and to write to the audit log
	Err    error  // internal detail for logs; may be nil
}

// Error returns the reason and the cause.
func (e *Error) Error() string {
	if e.Err == nil {
		return "identity: " + e.Reason
	}
	return "identity: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrNoIdentity is returned when the request carries no credential for any accepted mode.
var ErrNoIdentity = &Error{Status: http.StatusUnauthorized, Reason: "authentication required"}

func errorf(status int, reason, format string, args ...any) *Error {
	return &Error{Status: status, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Authenticator establishes the caller's identity. It is safe for concurrent use.
type Authenticator struct {
	jwt     *jwtVerifier
	headers *trustedHeaders // nil: no peer is trusted
	apiKeys *apiKeys
	// identityHeaders maps folded identity-header names (see foldHeaderName) to their
	// canonical spelling; Sanitize removes them from untrusted peers.
	identityHeaders map[string]string
}

// New validates c and returns an Authenticator. With a JWKSURL it fetches the key set once
// before returning; ctx bounds that fetch and the background refreshes that follow (cancel
// ctx to stop them).
func New(ctx context.Context, c Config) (*Authenticator, error) {
	a := &Authenticator{identityHeaders: make(map[string]string)}
	var err error
	names := wellKnownIdentityHeaders
	if c.TrustedHeaders != nil {
		if a.headers, err = newTrustedHeaders(*c.TrustedHeaders); err != nil {
			return nil, fmt.Errorf("identity: trusted headers: %w", err)
		}
		names = append(slices.Clone(names), a.headers.names()...)
	}
	for _, n := range names {
		a.identityHeaders[foldHeaderName(n)] = http.CanonicalHeaderKey(n)
	}
	if c.APIKeys != nil {
		if a.apiKeys, err = newAPIKeys(*c.APIKeys); err != nil {
			return nil, fmt.Errorf("identity: api keys: %w", err)
		}
		if _, clash := a.identityHeaders[foldHeaderName(a.apiKeys.header)]; clash {
			return nil, fmt.Errorf("identity: api keys: header %s is an identity header", a.apiKeys.header)
		}
	}
	if c.JWT != nil {
		if a.jwt, err = newJWTVerifier(ctx, *c.JWT); err != nil {
			return nil, fmt.Errorf("identity: jwt: %w", err)
		}
	}
	return a, nil
}

// Authenticate returns the caller's identity, trying modes in the order given ("jwt",
// "trusted_headers", "api_keys"). Empty modes means every configured mode in that order;
// names of modes that are not configured, or that this package does not implement (such as
// "upstream_token"), are skipped. The first mode that finds a credential decides: a
// credential that is present but invalid is an *Error (400 or 401), never a reason to try a
// weaker mode. A request with no credential at all gets ErrNoIdentity.
//
// JWT mode looks at "Authorization: Bearer <token>" only; any other Authorization scheme is
// not its credential. Trusted headers count only when peer is a trusted peer. Call Sanitize
// before anything else reads the request headers.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, peer netip.Addr, modes []string) (User, error) {
	if len(modes) == 0 {
		modes = []string{ModeJWT, ModeTrustedHeaders, ModeAPIKeys}
	}
	for _, mode := range modes {
		var (
			u     User
			found bool
			err   *Error
		)
		switch {
		case mode == ModeJWT && a.jwt != nil:
			u, found, err = a.jwt.authenticate(ctx, r.Header)
		case mode == ModeTrustedHeaders && a.headers != nil:
			u, found, err = a.headers.authenticate(r.Header, peer)
		case mode == ModeAPIKeys && a.apiKeys != nil:
			u, found, err = a.apiKeys.authenticate(r.Header)
		default:
			continue
		}
		if err != nil {
			return User{}, err
		}
		if found {
			return u, nil
		}
	}
	return User{}, ErrNoIdentity
}

// StripCredentials removes from h the credential that authenticated u when it is Veil's own
// and means nothing to the upstream: the Authorization header for a JWT user, the API-key
// header for an API-key user. Trusted identity headers are left for the upstream.
func (a *Authenticator) StripCredentials(h http.Header, u User) {
	switch u.Source {
	case SourceJWT:
		h.Del("Authorization")
	case SourceAPIKey:
		if a.apiKeys != nil {
			h.Del(a.apiKeys.header)
		}
	}
}
