// Package identity establishes who is calling: a verified JWT, identity headers from trusted
// peers, a static API key, the upstream's own token, or a verified client certificate.
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Mode names, as routes list them in their identity configuration.
const (
	ModeJWT            = "jwt"
	ModeTrustedHeaders = "trusted_headers"
	ModeAPIKeys        = "api_keys"
	// ModeUpstreamToken resolves the vendor token the client already sends to a user by asking
	// the upstream (see TokenResolver). It needs a per-route resolver (Route.Token).
	ModeUpstreamToken = "upstream_token"
	// ModeMTLS takes the user from the verified client certificate.
	ModeMTLS = "mtls"
)

// Sources, as User.Source reports them.
const (
	SourceJWT            = "jwt"
	SourceTrustedHeaders = "trusted_headers"
	SourceAPIKey         = "api_key"
	SourceUpstreamToken  = "upstream_token"
	SourceMTLS           = "mtls"
)

// User is an authenticated caller.
type User struct {
	ID         string
	Department string
	Email      string
	Roles      []string
	// Claims holds the verified JWT claims, the fields Veil read from an upstream identity
	// answer, or the client certificate's names (nil for other sources). Time claims (exp,
	// iat, nbf) are Unix seconds. It never contains a raw token.
	Claims map[string]any
	// Source says how the user was established: "jwt", "trusted_headers", "api_key",
	// "upstream_token" or "mtls".
	Source string
}

// Config enables the identity modes; a nil mode is off. The upstream_token mode is configured
// per route (Route.Token), not here.
type Config struct {
	JWT            *JWTConfig            // nil: JWT mode off
	TrustedHeaders *TrustedHeadersConfig // nil: trusted-header mode off; no peer is trusted
	APIKeys        *APIKeysConfig        // nil: API-key mode off
	MTLS           *MTLSConfig           // nil: client-certificate mode off

	// Directory gives upstream_token and mtls users their roles and department. Nil: no user
	// is listed, and such users keep the roles mapped from their identity answer.
	Directory Directory
	// Revocations is consulted after every successful authentication, whatever the mode: a
	// revoked user or credential is refused with 403 "access revoked". Nil: nothing is
	// revoked.
	Revocations Revocations
	// RevocationsOnError says what happens when Revocations cannot answer: "deny" (zero)
	// refuses the request with 503; "allow" lets it through and logs the failure.
	RevocationsOnError string
	// Logger receives the failures Veil tolerates (RevocationsOnError "allow"). Nil: discard.
	Logger *slog.Logger
}

// Route is what one route accepts: its identity modes and, for upstream_token, the resolver
// that asks its upstream who a token belongs to.
type Route struct {
	// Modes are tried in order. Empty: every mode configured in Config, in the order jwt,
	// trusted_headers, api_keys, mtls (upstream_token only when listed).
	Modes []string
	// Token resolves upstream tokens for this route. Nil: the upstream_token mode is skipped.
	Token *TokenResolver
}

// DirectoryEntry is what the staff directory (data.veil.directory) says about a user.
type DirectoryEntry struct {
	Roles      []string
	Department string // "": keep the department from the identity answer
}

// Directory looks a user up by id and then by e-mail (which may be ""). ok is false when the
// user is listed under neither. It is called on every request, so it must be fast and safe
// for concurrent use; it is typically backed by the current policy data.
type Directory func(id, email string) (entry DirectoryEntry, ok bool)

// JWTConfig configures bearer-token (JWT) verification. Exactly one key source must be set:
// JWKS, JWKSURL, HMACSecret or Discovery.
type JWTConfig struct {
	// Issuer must equal the token's iss claim. Required.
	Issuer string
	// Discovery finds the key set through OpenID Connect discovery: New fetches
	// <Issuer>/.well-known/openid-configuration (Issuer must then be https, or http to a
	// loopback host), checks that the document's issuer equals Issuer exactly, and uses its
	// jwks_uri as JWKSURL would be used (cached, refreshed, and re-fetched when a token names
	// an unknown kid, so key rotation needs no restart). Without Algorithms, the document's
	// id_token_signing_alg_values_supported that Veil accepts with a JWKS are allowed.
	Discovery bool
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
	// HTTPClient fetches JWKSURL and the discovery document. Nil means a client with a 10s
	// timeout.
	HTTPClient *http.Client
}

// LogValue hides the key material when the config is logged.
func (c JWTConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.String("jwks_url", c.JWKSURL),
		slog.Bool("discovery", c.Discovery),
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

// Error codes, as Error.Code reports them.
const (
	CodeUnauthenticated     = "unauthenticated"      // no, or no valid, credential (401); malformed (400)
	CodeRevoked             = "revoked"              // the user or credential is revoked (403)
	CodeNotEnrolled         = "not_enrolled"         // directory_only and the user is not listed (403)
	CodeIdentityUnavailable = "identity_unavailable" // the upstream identity call or the revocation list failed (503)
)

// Error is an authentication failure: an HTTP status, a reason safe to show to the client,
// and the internal cause. Neither ever contains a token or key.
type Error struct {
	// Status is the HTTP status: 400 for malformed identity headers, 401 for a missing or
	// invalid credential, 403 for a revoked or unenrolled user, 503 when an identity service
	// could not answer.
	Status int
	Reason string // safe to show to the client and to write to the audit log
	// Code names the kind of failure for logs, metrics and the error body; "" means
	// CodeUnauthenticated.
	Code string
	Err  error // internal detail for logs; may be nil
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
	mtls    *clientCerts
	// identityHeaders maps folded identity-header names (see foldHeaderName) to their
	// canonical spelling; Sanitize removes them from untrusted peers.
	identityHeaders map[string]string

	directory        Directory
	revocations      Revocations
	allowRevokeError bool
	log              *slog.Logger
}

// New validates c and returns an Authenticator. With a JWKSURL it fetches the key set once
// before returning; ctx bounds that fetch and the background refreshes that follow (cancel
// ctx to stop them).
func New(ctx context.Context, c Config) (*Authenticator, error) {
	a := &Authenticator{
		identityHeaders: make(map[string]string),
		directory:       c.Directory,
		revocations:     c.Revocations,
		log:             c.Logger,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	switch c.RevocationsOnError {
	case "", "deny":
	case "allow":
		a.allowRevokeError = true
	default:
		return nil, fmt.Errorf("identity: revocations on_error %q: want deny or allow", c.RevocationsOnError)
	}
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
	if c.MTLS != nil {
		if a.mtls, err = newClientCerts(*c.MTLS); err != nil {
			return nil, fmt.Errorf("identity: mtls: %w", err)
		}
	}
	if c.JWT != nil {
		if a.jwt, err = newJWTVerifier(ctx, *c.JWT); err != nil {
			return nil, fmt.Errorf("identity: jwt: %w", err)
		}
	}
	return a, nil
}

// Authenticate returns the caller's identity, trying modes in the order given. It is
// AuthenticateRoute with a route that has no upstream-token resolver, so "upstream_token" is
// skipped here; see AuthenticateRoute for the rules.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, peer netip.Addr, modes []string) (User, error) {
	return a.AuthenticateRoute(ctx, r, peer, Route{Modes: modes})
}

// AuthenticateRoute returns the caller's identity, trying the route's modes in order ("jwt",
// "trusted_headers", "api_keys", "upstream_token", "mtls"). Names of modes that are not
// configured (upstream_token without rt.Token) or unknown are skipped. The first mode that
// finds a credential decides: a credential that is present but invalid is an *Error, never a
// reason to try a weaker mode. A request with no credential at all gets ErrNoIdentity.
//
// JWT mode looks at "Authorization: Bearer <token>" only; any other Authorization scheme is
// not its credential. When the route accepts both jwt and an upstream_token profile that reads
// bearer tokens, a bearer token shaped like a JWS (three dot-separated base64url segments)
// belongs to jwt mode and any other bearer token to upstream_token, whatever their order.
// Trusted headers count only when peer is a trusted peer. mtls reads only a certificate chain
// the TLS listener verified.
//
// Once a mode has found the user, upstream_token and mtls users get their roles and
// department from the Directory (when listed there), and every user is checked against
// Revocations. For an upstream_token user the profile's other credential headers and its
// Strip headers are removed from r.Header, so the upstream sees only the token Veil resolved.
// Call Sanitize before anything else reads the request headers.
func (a *Authenticator) AuthenticateRoute(ctx context.Context, r *http.Request, peer netip.Addr, rt Route) (User, error) {
	modes := rt.Modes
	if len(modes) == 0 {
		modes = []string{ModeJWT, ModeTrustedHeaders, ModeAPIKeys, ModeMTLS}
	}
	// splitBearer: bearer tokens are shared between jwt and upstream_token by shape.
	splitBearer := a.jwt != nil && rt.Token != nil && rt.Token.readsBearer() &&
		slices.Contains(modes, ModeJWT) && slices.Contains(modes, ModeUpstreamToken)
	for _, mode := range modes {
		var (
			u     User
			cred  string // the credential as presented, for revocation by token hash
			found bool
			err   *Error
		)
		switch {
		case mode == ModeJWT && a.jwt != nil:
			u, cred, found, err = a.jwt.authenticate(ctx, r.Header, splitBearer)
		case mode == ModeTrustedHeaders && a.headers != nil:
			u, found, err = a.headers.authenticate(r.Header, peer)
		case mode == ModeAPIKeys && a.apiKeys != nil:
			u, cred, found, err = a.apiKeys.authenticate(r.Header)
		case mode == ModeUpstreamToken && rt.Token != nil:
			var used string
			u, cred, used, found, err = rt.Token.authenticate(ctx, r.Header, splitBearer)
			if found && err == nil {
				rt.Token.stripOthers(r.Header, used)
			}
		case mode == ModeMTLS && a.mtls != nil:
			u, cred, found, err = a.mtls.authenticate(r)
		default:
			continue
		}
		if err != nil {
			return User{}, err
		}
		if !found {
			continue
		}
		if u, err = a.admit(ctx, u, cred, rt); err != nil {
			return User{}, err
		}
		return u, nil
	}
	return User{}, ErrNoIdentity
}

// admit applies the directory and the revocation list to a user a mode has found.
func (a *Authenticator) admit(ctx context.Context, u User, cred string, rt Route) (User, *Error) {
	switch u.Source {
	case SourceUpstreamToken:
		var err *Error
		if u, err = a.applyDirectory(u, rt.Token.directoryOnly); err != nil {
			return User{}, err
		}
	case SourceMTLS:
		var err *Error
		if u, err = a.applyDirectory(u, a.mtls.directoryOnly); err != nil {
			return User{}, err
		}
	}
	if a.revocations == nil {
		return u, nil
	}
	hash := ""
	if cred != "" {
		hash = TokenHash(cred)
	}
	revoked, err := a.revocations.Revoked(ctx, u.ID, hash)
	if err == nil && !revoked && u.Email != "" && !strings.EqualFold(u.Email, u.ID) {
		revoked, err = a.revocations.Revoked(ctx, u.Email, "")
	}
	switch {
	case revoked:
		return User{}, &Error{Status: http.StatusForbidden, Reason: "access revoked", Code: CodeRevoked,
			Err: fmt.Errorf("user %q or its credential is on the revocation list", u.ID)}
	case err != nil && a.allowRevokeError:
		a.log.WarnContext(ctx, "revocation list unavailable; request allowed", "user", u.ID, "err", err)
	case err != nil:
		return User{}, &Error{Status: http.StatusServiceUnavailable, Reason: "the revocation list cannot be checked",
			Code: CodeIdentityUnavailable, Err: fmt.Errorf("revocations: %w", err)}
	}
	return u, nil
}

// applyDirectory gives u the roles (and department, when set) of its directory entry. A user
// that is not listed keeps the roles mapped from its identity answer, unless directoryOnly.
func (a *Authenticator) applyDirectory(u User, directoryOnly bool) (User, *Error) {
	var (
		e  DirectoryEntry
		ok bool
	)
	if a.directory != nil {
		e, ok = a.directory(u.ID, u.Email)
	}
	if !ok {
		if directoryOnly {
			return User{}, &Error{Status: http.StatusForbidden, Reason: "this user is not enrolled in Veil", Code: CodeNotEnrolled,
				Err: fmt.Errorf("user %q is not in the directory", u.ID)}
		}
		return u, nil
	}
	u.Roles = cleanRoles(e.Roles)
	if e.Department != "" {
		u.Department = e.Department
	}
	return u, nil
}

// StripCredentials removes from h the credential that authenticated u when it is Veil's own
// and means nothing to the upstream: the Authorization header for a JWT user, the API-key
// header for an API-key user. Trusted identity headers are left for the upstream, and so is
// the upstream token of an upstream_token user: it is the upstream's own credential (a
// route with upstream_auth replaces it afterwards). A client certificate is not a header.
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
