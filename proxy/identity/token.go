package identity

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"
)

// Defaults of TokenResolverConfig.
const (
	DefaultTokenCacheTTL  = 5 * time.Minute
	DefaultTokenCacheSize = 10000
	DefaultRejectTTL      = 30 * time.Second
	DefaultStaleTTL       = time.Hour
	defaultTokenTimeout   = 10 * time.Second
	defaultTokenParallel  = 16
	// maxIdentityAnswer bounds the identity call's answer.
	maxIdentityAnswer = 1 << 20
)

// TokenResolverConfig configures the upstream_token mode of one route.
type TokenResolverConfig struct {
	// Profile says how to call the upstream and read its answer (see BuiltinProfile).
	// Its URL and ID are required.
	Profile Profile
	// Upstream is the route's upstream URL, the base of a relative Profile.URL.
	Upstream *url.URL
	// Tenant, when set, must equal the value at Profile.Tenant in every answer: a token
	// from another organisation of the same vendor is refused (401). Set it whenever the
	// route also has upstream_auth, which would otherwise lend Veil's service credential to
	// any account at the vendor.
	Tenant string
	// RoleMap translates the vendor's role names (matched case-insensitively) to Veil
	// roles; vendor roles it does not list are dropped. Nil: vendor roles are used as they
	// are. Directory entries take precedence over either.
	RoleMap map[string][]string
	// DirectoryOnly refuses (403) users the Directory does not list.
	DirectoryOnly bool
	// CacheTTL is how long an answer is reused for the same token. Zero: 5m.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached answers; the least recently used goes first.
	// Zero: 10000.
	CacheSize int
	// RejectTTL is how long a rejected token is remembered, so that a client retrying a bad
	// token does not make an identity call each time. Zero: 30s; negative: not remembered.
	RejectTTL time.Duration
	// Timeout bounds one identity call. Zero: 10s.
	Timeout time.Duration
	// MaxConcurrent bounds the identity calls in flight; others wait. Zero: 16.
	MaxConcurrent int
	// OnError says what a failed identity call (network error, 5xx, an answer that is not
	// JSON) does: "deny" (zero) refuses the request with 503; "stale" reuses an answer for
	// the same token that expired less than StaleTTL ago, and otherwise denies.
	OnError string
	// StaleTTL is how long past CacheTTL an answer may serve with OnError "stale". Zero: 1h.
	StaleTTL time.Duration
	// HTTPClient makes the identity calls; redirects are never followed (a redirect is a
	// failure). Nil: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives stale answers served during an outage. Nil: discard.
	Logger *slog.Logger
}

// reservedClaims are the claims the resolver sets itself.
var reservedClaims = []string{"profile", "id", "email", "name", "department", "tenant", "vendor_roles"}

// TokenStats counts what a TokenResolver did since it was created.
type TokenStats struct {
	Hits     uint64 // answers served from the cache (positive or negative)
	Misses   uint64 // lookups that had to wait for an identity call
	Calls    uint64 // identity calls made
	Rejected uint64 // calls whose answer rejected the token
	Failures uint64 // calls that failed
	Stale    uint64 // stale answers served during failures
	Entries  int    // answers in the cache now
}

// credential is a normalised Credential: a canonical header name and a scheme ("" for the
// whole value).
type credential struct {
	header string
	scheme string
}

func (c credential) value(token string) string {
	if c.scheme == "" {
		return token
	}
	return c.scheme + " " + token
}

// TokenResolver asks an upstream who a token belongs to, and remembers the answer by a keyed
// hash of the token (never the token itself) for a while. Concurrent lookups of one token
// share one identity call. It is safe for concurrent use.
type TokenResolver struct {
	profile       string
	method        string
	url           string
	creds         []credential
	headers       []string // the distinct headers of creds, in order
	strip         []string
	id            []string
	email         []string
	displayName   []string
	department    []string
	roles         []string
	tenantPath    string
	tenant        string
	claims        map[string]string
	rejectStatus  []int
	resultPath    string
	resultOK      string
	rejectResults []string
	roleMap       map[string][]string // lower-case vendor role ⇒ Veil roles; nil: as is
	directoryOnly bool

	ttl, rejectTTL, staleTTL time.Duration
	serveStale               bool
	timeout                  time.Duration
	client                   *http.Client
	sem                      chan struct{}
	hmacKey                  []byte
	cache                    *tokenCache
	group                    singleflight.Group
	now                      func() time.Time
	log                      *slog.Logger

	hits, misses, calls, rejected, failures, stale atomic.Uint64
}

// NewTokenResolver validates c and returns a resolver.
func NewTokenResolver(c TokenResolverConfig) (*TokenResolver, error) {
	p := c.Profile
	name := cmp.Or(p.Name, "upstream_token")
	t, err := newTokenResolver(c)
	if err != nil {
		return nil, fmt.Errorf("identity: upstream token profile %s: %w", name, err)
	}
	return t, nil
}

func newTokenResolver(c TokenResolverConfig) (*TokenResolver, error) {
	p := c.Profile
	t := &TokenResolver{
		profile:       cmp.Or(p.Name, "custom"),
		method:        cmp.Or(strings.ToUpper(p.Method), http.MethodGet),
		id:            slices.Clone(p.ID),
		email:         slices.Clone(p.Email),
		displayName:   slices.Clone(p.DisplayName),
		department:    slices.Clone(p.Department),
		roles:         slices.Clone(p.Roles),
		tenantPath:    p.Tenant,
		tenant:        c.Tenant,
		claims:        make(map[string]string, len(p.Claims)),
		rejectStatus:  slices.Clone(p.RejectStatus),
		resultPath:    p.ResultPath,
		resultOK:      p.ResultOK,
		rejectResults: slices.Clone(p.RejectResults),
		directoryOnly: c.DirectoryOnly,
		ttl:           c.CacheTTL,
		rejectTTL:     c.RejectTTL,
		staleTTL:      c.StaleTTL,
		timeout:       c.Timeout,
		now:           time.Now,
		log:           c.Logger,
	}
	if t.method != http.MethodGet && t.method != http.MethodPost {
		return nil, fmt.Errorf("method %q: want GET or POST", p.Method)
	}
	var err error
	if t.url, err = identityURL(p.URL, c.Upstream); err != nil {
		return nil, err
	}
	if len(t.id) == 0 {
		return nil, errors.New("no id path")
	}
	for _, path := range slices.Concat(t.id, t.email, t.displayName, t.department, t.roles) {
		if strings.TrimSpace(path) == "" {
			return nil, errors.New("empty answer path")
		}
	}
	if t.tenant != "" && t.tenantPath == "" {
		return nil, errors.New("tenant is set but the profile has no tenant path")
	}
	for name, path := range p.Claims {
		if name == "" || path == "" {
			return nil, fmt.Errorf("claim %q: name and path are required", name)
		}
		if slices.Contains(reservedClaims, name) {
			return nil, fmt.Errorf("claim %q is reserved", name)
		}
		t.claims[name] = path
	}
	if len(t.rejectStatus) == 0 {
		t.rejectStatus = []int{http.StatusUnauthorized, http.StatusForbidden}
	}
	for _, s := range t.rejectStatus {
		if s < 400 || s > 599 {
			return nil, fmt.Errorf("reject status %d is not an error status", s)
		}
	}
	if (t.resultOK != "" || len(t.rejectResults) > 0) && t.resultPath == "" {
		return nil, errors.New("result codes are set but the profile has no result path")
	}
	if err := t.setCredentials(p); err != nil {
		return nil, err
	}
	if c.RoleMap != nil {
		t.roleMap = make(map[string][]string, len(c.RoleMap))
		for vendor, roles := range c.RoleMap {
			k := strings.ToLower(strings.TrimSpace(vendor))
			t.roleMap[k] = append(t.roleMap[k], cleanRoles(roles)...)
		}
	}

	switch {
	case t.ttl == 0:
		t.ttl = DefaultTokenCacheTTL
	case t.ttl < 0:
		return nil, fmt.Errorf("cache ttl %s is negative", t.ttl)
	}
	if t.rejectTTL == 0 {
		t.rejectTTL = DefaultRejectTTL
	}
	switch c.OnError {
	case "", "deny":
	case "stale":
		t.serveStale = true
	default:
		return nil, fmt.Errorf("on_error %q: want deny or stale", c.OnError)
	}
	switch {
	case t.staleTTL == 0:
		t.staleTTL = DefaultStaleTTL
	case t.staleTTL < 0:
		return nil, fmt.Errorf("stale ttl %s is negative", t.staleTTL)
	}
	switch {
	case t.timeout == 0:
		t.timeout = defaultTokenTimeout
	case t.timeout < 0:
		return nil, fmt.Errorf("timeout %s is negative", t.timeout)
	}
	size := c.CacheSize
	switch {
	case size == 0:
		size = DefaultTokenCacheSize
	case size < 0:
		return nil, fmt.Errorf("cache size %d is negative", size)
	}
	parallel := c.MaxConcurrent
	switch {
	case parallel == 0:
		parallel = defaultTokenParallel
	case parallel < 0:
		return nil, fmt.Errorf("max concurrent %d is negative", parallel)
	}
	t.sem = make(chan struct{}, parallel)
	t.cache = newTokenCache(size, func() time.Time { return t.now() })

	base := c.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: defaultTokenTimeout}
	}
	client := *base
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t.client = &client

	t.hmacKey = make([]byte, 32)
	if _, err := rand.Read(t.hmacKey); err != nil {
		return nil, fmt.Errorf("cache key: %w", err)
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t, nil
}

// setCredentials normalises the profile's credentials and strip list.
func (t *TokenResolver) setCredentials(p Profile) error {
	creds := p.Credentials
	if len(creds) == 0 {
		creds = []Credential{{}}
	}
	for _, c := range creds {
		header := http.CanonicalHeaderKey(cmp.Or(c.Header, "Authorization"))
		if !validHeaderName(header) {
			return fmt.Errorf("credential header %q is not a valid header name", c.Header)
		}
		if slices.Contains(wellKnownIdentityHeaders, header) {
			return fmt.Errorf("credential header %s is an identity header", header)
		}
		scheme := strings.TrimSpace(c.Scheme)
		if scheme == "" && header == "Authorization" {
			scheme = "Bearer"
		}
		if strings.ContainsAny(scheme, " \t") {
			return fmt.Errorf("credential scheme %q holds a space", c.Scheme)
		}
		cred := credential{header: header, scheme: scheme}
		if slices.Contains(t.creds, cred) {
			continue
		}
		t.creds = append(t.creds, cred)
		if !slices.Contains(t.headers, header) {
			t.headers = append(t.headers, header)
		}
	}
	for _, h := range p.Strip {
		name := http.CanonicalHeaderKey(h)
		if !validHeaderName(name) {
			return fmt.Errorf("strip header %q is not a valid header name", h)
		}
		if !slices.Contains(t.headers, name) {
			t.strip = append(t.strip, name)
		}
	}
	return nil
}

// identityURL resolves the profile URL: absolute, or a path appended to the upstream's path.
func identityURL(raw string, upstream *url.URL) (string, error) {
	if raw == "" {
		return "", errors.New("no identity url")
	}
	ref, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("identity url: %w", err)
	}
	if ref.Fragment != "" || ref.User != nil {
		return "", fmt.Errorf("identity url %q: no fragment or user info allowed", raw)
	}
	if ref.IsAbs() {
		if (ref.Scheme != "http" && ref.Scheme != "https") || ref.Host == "" {
			return "", fmt.Errorf("identity url %q: want an http or https URL", raw)
		}
		return ref.String(), nil
	}
	if ref.Host != "" || !strings.HasPrefix(ref.Path, "/") {
		return "", fmt.Errorf("identity url %q: want an absolute URL or a path starting with /", raw)
	}
	if upstream == nil || upstream.Host == "" {
		return "", fmt.Errorf("identity url %q is relative and the route has no upstream", raw)
	}
	u := *upstream
	u.Path = strings.TrimSuffix(upstream.Path, "/") + ref.Path
	u.RawPath = ""
	switch {
	case upstream.RawQuery == "":
		u.RawQuery = ref.RawQuery
	case ref.RawQuery != "":
		u.RawQuery = upstream.RawQuery + "&" + ref.RawQuery
	}
	u.Fragment = ""
	return u.String(), nil
}

// Profile returns the name of the resolver's profile.
func (t *TokenResolver) Profile() string { return t.profile }

// Stats returns the resolver's counters.
func (t *TokenResolver) Stats() TokenStats {
	return TokenStats{
		Hits:     t.hits.Load(),
		Misses:   t.misses.Load(),
		Calls:    t.calls.Load(),
		Rejected: t.rejected.Load(),
		Failures: t.failures.Load(),
		Stale:    t.stale.Load(),
		Entries:  t.cache.len(),
	}
}

// readsBearer reports whether the profile reads "Authorization: Bearer" tokens.
func (t *TokenResolver) readsBearer() bool {
	return slices.Contains(t.creds, credential{header: "Authorization", scheme: "Bearer"})
}

// Resolve returns the user token belongs to, sending it the way the profile's first
// credential says. The error is an *Error: 401 when the upstream rejects the token (or names
// no user, or another tenant), 503 when the identity call fails. Roles are the answer's,
// through RoleMap; the Directory is applied by the Authenticator, not here.
func (t *TokenResolver) Resolve(ctx context.Context, token string) (User, error) {
	u, err := t.resolve(ctx, t.creds[0], token)
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// authenticate finds the profile's credential in h and resolves it. It returns the token and
// the header it came in. found is false when h carries none of the profile's credentials or,
// with leaveJWS, only a JWS-shaped bearer token (which belongs to jwt mode).
func (t *TokenResolver) authenticate(ctx context.Context, h http.Header, leaveJWS bool) (u User, token, header string, found bool, _ *Error) {
	var (
		cred  credential
		count int
	)
	for _, name := range t.headers {
		vals := h.Values(name)
		if len(vals) == 0 {
			continue
		}
		if len(vals) > 1 {
			return User{}, "", "", true, errorf(http.StatusBadRequest, "multiple credentials", "%d %s headers", len(vals), name)
		}
		c, tok, ok := t.match(name, vals[0])
		if !ok {
			continue
		}
		if leaveJWS && c.header == "Authorization" && c.scheme == "Bearer" && jwsShaped(tok) {
			continue
		}
		cred, token = c, tok
		count++
	}
	switch count {
	case 0:
		return User{}, "", "", false, nil
	case 1:
	default:
		return User{}, "", "", true, errorf(http.StatusBadRequest, "multiple credentials",
			"the request carries %d of the %s profile's credential headers", count, t.profile)
	}
	u, err := t.resolve(ctx, cred, token)
	return u, token, cred.header, true, err
}

// match returns the credential of header whose scheme v uses, and the token.
func (t *TokenResolver) match(header, v string) (credential, string, bool) {
	v = strings.Trim(v, " \t")
	scheme, rest, _ := strings.Cut(v, " ")
	for _, c := range t.creds {
		if c.header != header {
			continue
		}
		if c.scheme == "" {
			return c, v, true
		}
		if strings.EqualFold(scheme, c.scheme) {
			return c, strings.Trim(rest, " \t"), true
		}
	}
	return credential{}, "", false
}

// stripOthers removes the profile's credential headers other than used, and its Strip headers.
func (t *TokenResolver) stripOthers(h http.Header, used string) {
	for _, name := range t.headers {
		if name != used {
			h.Del(name)
		}
	}
	for _, name := range t.strip {
		h.Del(name)
	}
}

// lookupResult is what one identity call (or the cache) says about a token.
type lookupResult struct {
	user User
	err  *Error
}

func (t *TokenResolver) resolve(ctx context.Context, cred credential, token string) (User, *Error) {
	if token == "" {
		return User{}, errorf(http.StatusUnauthorized, "invalid upstream token", "empty %s credential", cred.header)
	}
	if len(token) > maxTokenLen {
		return User{}, errorf(http.StatusUnauthorized, "invalid upstream token", "token is %d bytes, limit %d", len(token), maxTokenLen)
	}
	if err := checkHeaderValue(token); err != nil {
		return User{}, &Error{Status: http.StatusUnauthorized, Reason: "invalid upstream token", Err: fmt.Errorf("token: %w", err)}
	}
	key := t.cacheKey(cred, token)
	if e, ok := t.cache.get(key); ok && t.now().Before(e.fresh) {
		t.hits.Add(1)
		return e.result()
	}
	t.misses.Add(1)
	ch := t.group.DoChan(string(key[:]), func() (any, error) {
		return t.lookup(ctx, cred, token, key), nil
	})
	select {
	case res := <-ch:
		r := res.Val.(lookupResult)
		if r.err != nil {
			return User{}, r.err
		}
		return cloneUser(r.user), nil
	case <-ctx.Done():
		return User{}, &Error{Status: http.StatusServiceUnavailable, Reason: "the identity check was interrupted",
			Code: CodeIdentityUnavailable, Err: ctx.Err()}
	}
}

// cacheKey is HMAC-SHA256 of the credential under a key that never leaves the process, so the
// cache holds no token and no hash an attacker could test guesses against.
func (t *TokenResolver) cacheKey(cred credential, token string) [32]byte {
	mac := hmac.New(sha256.New, t.hmacKey)
	mac.Write([]byte(cred.header))
	mac.Write([]byte{0})
	mac.Write([]byte(strings.ToLower(cred.scheme)))
	mac.Write([]byte{0})
	mac.Write([]byte(token))
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	return k
}

// lookup makes the identity call for one token (once for all concurrent lookups of it) and
// caches the answer. It outlives the caller that started it: the call is bounded by the
// resolver's timeout, not by the first caller's context.
func (t *TokenResolver) lookup(ctx context.Context, cred credential, token string, key [32]byte) lookupResult {
	// A flight for this key that ended just before this one began has filled the cache.
	if e, ok := t.cache.get(key); ok && t.now().Before(e.fresh) {
		u, err := e.result()
		return lookupResult{user: u, err: err}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	select {
	case t.sem <- struct{}{}:
		defer func() { <-t.sem }()
	case <-ctx.Done():
		return t.failed(key, fmt.Errorf("waiting for an identity call slot: %w", ctx.Err()))
	}
	t.calls.Add(1)
	u, rejected, err := t.call(ctx, cred, token)
	now := t.now()
	switch {
	case err != nil:
		return t.failed(key, err)
	case rejected != nil:
		t.rejected.Add(1)
		if t.rejectTTL > 0 {
			t.cache.put(&cacheEntry{key: key, rejected: rejected, fresh: now.Add(t.rejectTTL), keep: now.Add(t.rejectTTL)})
		}
		return lookupResult{err: rejected}
	}
	keep := now.Add(t.ttl)
	if t.serveStale {
		keep = keep.Add(t.staleTTL)
	}
	t.cache.put(&cacheEntry{key: key, user: u, fresh: now.Add(t.ttl), keep: keep})
	return lookupResult{user: cloneUser(u)}
}

// failed turns a failed identity call into a stale answer (OnError "stale") or a 503.
func (t *TokenResolver) failed(key [32]byte, err error) lookupResult {
	t.failures.Add(1)
	if t.serveStale {
		if e, ok := t.cache.get(key); ok && e.rejected == nil {
			t.stale.Add(1)
			t.log.Warn("identity call failed; serving a stale answer", "profile", t.profile, "user", e.user.ID, "err", err)
			return lookupResult{user: cloneUser(e.user)}
		}
	}
	return lookupResult{err: &Error{
		Status: http.StatusServiceUnavailable,
		Reason: "the upstream could not confirm who is calling",
		Code:   CodeIdentityUnavailable,
		Err:    fmt.Errorf("%s identity call: %w", t.profile, err),
	}}
}

// call asks the upstream. Exactly one of its results is set: the user, a rejection (the token
// is not valid), or a failure (nothing can be said about the token).
func (t *TokenResolver) call(ctx context.Context, cred credential, token string) (User, *Error, error) {
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, nil)
	if err != nil {
		return User{}, nil, err
	}
	req.Header.Set(cred.header, cred.value(token))
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return User{}, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIdentityAnswer+1))
	if err != nil {
		return User{}, nil, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxIdentityAnswer {
		return User{}, nil, fmt.Errorf("answer is larger than %d bytes", maxIdentityAnswer)
	}
	isJSON := gjson.ValidBytes(body)
	result := ""
	if t.resultPath != "" && isJSON {
		if r := gjson.GetBytes(body, t.resultPath); r.Exists() {
			result = r.String()
		}
	}
	if result != "" && slices.Contains(t.rejectResults, result) {
		return User{}, t.rejection("invalid upstream token", fmt.Sprintf("status %d, result %s", resp.StatusCode, result)), nil
	}
	if slices.Contains(t.rejectStatus, resp.StatusCode) {
		return User{}, t.rejection("invalid upstream token", "status "+strconv.Itoa(resp.StatusCode)), nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return User{}, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if !isJSON {
		return User{}, nil, errors.New("the answer is not JSON")
	}
	if t.resultPath != "" && result != t.resultOK {
		return User{}, nil, fmt.Errorf("result %q, want %q", result, t.resultOK)
	}
	return t.parse(body)
}

func (t *TokenResolver) rejection(reason, detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason,
		Err: fmt.Errorf("%s identity call: %s", t.profile, detail)}
}

// parse maps a successful answer to a user.
func (t *TokenResolver) parse(body []byte) (User, *Error, error) {
	id := firstValue(body, t.id)
	if id == "" {
		return User{}, t.rejection("invalid upstream token", "the answer names no user"), nil
	}
	if err := checkHeaderValue(id); err != nil {
		return User{}, nil, fmt.Errorf("user id: %w", err)
	}
	claims := map[string]any{"profile": t.profile, "id": id}
	tenant := ""
	if t.tenantPath != "" {
		tenant = gjson.GetBytes(body, t.tenantPath).String()
		if tenant != "" {
			claims["tenant"] = tenant
		}
	}
	if t.tenant != "" && tenant != t.tenant {
		return User{}, t.rejection("upstream token not accepted here", fmt.Sprintf("tenant %q, want %q", tenant, t.tenant)), nil
	}
	u := User{
		ID:         id,
		Email:      firstValue(body, t.email),
		Department: firstValue(body, t.department),
		Source:     SourceUpstreamToken,
	}
	if u.Email != "" {
		claims["email"] = u.Email
	}
	if name := firstValue(body, t.displayName); name != "" {
		claims["name"] = name
	}
	if u.Department != "" {
		claims["department"] = u.Department
	}
	vendor := vendorRoles(body, t.roles)
	if len(vendor) > 0 {
		vr := make([]any, len(vendor))
		for i, r := range vendor {
			vr[i] = r
		}
		claims["vendor_roles"] = vr
	}
	u.Roles = t.mapRoles(vendor)
	for name, path := range t.claims {
		if r := gjson.GetBytes(body, path); r.Exists() && r.Type != gjson.Null {
			claims[name] = claimValue(r)
		}
	}
	u.Claims = claims
	return u, nil, nil
}

// mapRoles translates vendor roles through the role map (nil: unchanged), without duplicates.
func (t *TokenResolver) mapRoles(vendor []string) []string {
	var out []string
	add := func(r string) {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, v := range vendor {
		if t.roleMap == nil {
			add(v)
			continue
		}
		for _, r := range t.roleMap[strings.ToLower(v)] {
			add(r)
		}
	}
	return out
}

// firstValue returns the first non-empty string or number found at paths. Numbers keep their
// JSON text (a 19-digit id stays exact).
func firstValue(body []byte, paths []string) string {
	for _, p := range paths {
		r := gjson.GetBytes(body, p)
		var s string
		switch r.Type {
		case gjson.String:
			s = r.Str
		case gjson.Number:
			s = r.Raw
		}
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

// vendorRoles collects role names at paths: comma-separated strings, arrays of strings, and
// objects whose true-valued keys are roles.
func vendorRoles(body []byte, paths []string) []string {
	var roles []string
	add := func(s string) {
		for part := range strings.SplitSeq(s, ",") {
			if part = strings.TrimSpace(part); part != "" && !slices.Contains(roles, part) {
				roles = append(roles, part)
			}
		}
	}
	for _, p := range paths {
		r := gjson.GetBytes(body, p)
		switch {
		case r.Type == gjson.String:
			add(r.Str)
		case r.IsArray():
			for _, e := range r.Array() {
				if e.Type == gjson.String {
					add(e.Str)
				}
			}
		case r.IsObject():
			r.ForEach(func(k, v gjson.Result) bool {
				if v.Type == gjson.True {
					add(k.String())
				}
				return true
			})
		}
	}
	return roles
}

// claimValue converts a gjson value to what encoding/json would decode with UseNumber.
func claimValue(r gjson.Result) any {
	switch {
	case r.Type == gjson.String:
		return r.Str
	case r.Type == gjson.Number:
		return json.Number(r.Raw)
	case r.Type == gjson.True:
		return true
	case r.Type == gjson.False:
		return false
	case r.IsArray():
		out := []any{}
		for _, e := range r.Array() {
			out = append(out, claimValue(e))
		}
		return out
	case r.IsObject():
		out := map[string]any{}
		r.ForEach(func(k, v gjson.Result) bool {
			out[k.String()] = claimValue(v)
			return true
		})
		return out
	}
	return nil
}

// cloneUser copies the parts of u a caller might modify.
func cloneUser(u User) User {
	u.Roles = slices.Clone(u.Roles)
	u.Claims = maps.Clone(u.Claims)
	return u
}
