package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	minRSABits = 2048
	// jwksMinRefresh and jwksMaxRefresh bound the background refresh of a JWKS URL; within
	// them the response's Cache-Control decides.
	jwksMinRefresh = 5 * time.Minute
	jwksMaxRefresh = time.Hour
	// jwksForcedRefresh is how often a token with an unknown kid may force a refresh.
	jwksForcedRefresh = time.Minute
	jwksFetchTimeout  = 10 * time.Second
	// jwksFirstFetch bounds how long New waits for the first fetch of a JWKS URL.
	jwksFirstFetch = 30 * time.Second
)

// verificationKey is a raw public key (or HMAC secret) and the algorithms it may verify.
type verificationKey struct {
	raw  any
	algs map[string]bool
}

// hmacSource is the one shared secret; the token's kid plays no part.
type hmacSource struct{ key []verificationKey }

func newHMACSource(secret []byte, allowed map[string]bool) *hmacSource {
	algs := make(map[string]bool, len(allowed))
	for alg := range allowed {
		algs[alg] = true
	}
	return &hmacSource{key: []verificationKey{{raw: slices.Clone(secret), algs: algs}}}
}

func (s *hmacSource) keys(context.Context, string) ([]verificationKey, error) { return s.key, nil }

// keyIndex is a key set prepared for lookups by kid.
type keyIndex struct {
	set   jwk.Set // the set the index was built from
	byKid map[string][]verificationKey
	all   []verificationKey
}

// lookup returns the keys for kid. A token without kid is accepted only when the set holds
// exactly one usable key.
func (x *keyIndex) lookup(kid string) ([]verificationKey, error) {
	if kid == "" {
		if len(x.all) != 1 {
			return nil, fmt.Errorf("token has no kid and the key set holds %d keys", len(x.all))
		}
		return x.all, nil
	}
	keys, ok := x.byKid[kid]
	if !ok {
		return nil, errUnknownKid
	}
	return keys, nil
}

var errUnknownKid = errors.New("unknown kid")

// indexSet prepares set. Keys marked for encryption are left out silently; every other key
// that cannot be used is reported in problems and left out.
func indexSet(set jwk.Set, allowed map[string]bool) (idx *keyIndex, problems []error) {
	idx = &keyIndex{set: set, byKid: make(map[string][]verificationKey)}
	for i := range set.Len() {
		key, ok := set.Key(i)
		if !ok {
			continue
		}
		kid, _ := key.KeyID()
		vk, skip, err := verificationKeyOf(key, allowed)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("key %d (kid %q): %w", i, kid, err))
			continue
		case skip:
			continue
		}
		idx.all = append(idx.all, vk)
		if kid != "" {
			idx.byKid[kid] = append(idx.byKid[kid], vk)
		}
	}
	return idx, problems
}

// verificationKeyOf returns the raw public key of a JWK and the allowed algorithms that fit its
// type (and its "alg", when it has one). skip is set for keys that are not signing keys or
// whose algorithms are all outside the allow-list.
func verificationKeyOf(key jwk.Key, allowed map[string]bool) (vk verificationKey, skip bool, _ error) {
	if use, ok := key.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
		return vk, true, nil
	}
	if ops, ok := key.KeyOps(); ok && len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return vk, true, nil
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return vk, false, fmt.Errorf("unsupported key: %w", err)
	}
	var fits []string
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		raw, fits = &k.PublicKey, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *rsa.PublicKey:
		fits = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PrivateKey:
		raw, fits = &k.PublicKey, ecdsaAlgs(k.Curve)
	case *ecdsa.PublicKey:
		fits = ecdsaAlgs(k.Curve)
	case ed25519.PrivateKey:
		raw, fits = k.Public(), []string{"EdDSA"}
	case ed25519.PublicKey:
		fits = []string{"EdDSA"}
	case []byte:
		return vk, false, errors.New("symmetric (oct) keys are refused in a jwks; use an hmac secret")
	default:
		return vk, false, fmt.Errorf("unsupported key type %T", raw)
	}
	if pub, ok := raw.(*rsa.PublicKey); ok && pub.N.BitLen() < minRSABits {
		return vk, false, fmt.Errorf("rsa key of %d bits, want at least %d", pub.N.BitLen(), minRSABits)
	}
	if len(fits) == 0 {
		return vk, false, errors.New("unsupported elliptic curve")
	}
	if alg, ok := key.Algorithm(); ok && alg.String() != "" {
		if !slices.Contains(fits, alg.String()) {
			return vk, false, fmt.Errorf("key alg %q does not fit a %T", alg.String(), raw)
		}
		fits = []string{alg.String()}
	}
	vk = verificationKey{raw: raw, algs: make(map[string]bool)}
	for _, alg := range fits {
		if allowed[alg] {
			vk.algs[alg] = true
		}
	}
	if len(vk.algs) == 0 {
		return vk, true, nil
	}
	return vk, false, nil
}

func ecdsaAlgs(c elliptic.Curve) []string {
	switch c {
	case elliptic.P256():
		return []string{"ES256"}
	case elliptic.P384():
		return []string{"ES384"}
	case elliptic.P521():
		return []string{"ES512"}
	}
	return nil
}

// staticSource is a JWKS document given in the configuration.
type staticSource struct{ idx *keyIndex }

func newStaticSource(doc []byte, allowed map[string]bool) (*staticSource, error) {
	set, err := jwk.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	idx, problems := indexSet(set, allowed)
	if len(problems) > 0 {
		return nil, fmt.Errorf("jwks: %w", errors.Join(problems...))
	}
	if len(idx.all) == 0 {
		return nil, errors.New("jwks holds no signing key for the allowed algorithms")
	}
	return &staticSource{idx: idx}, nil
}

func (s *staticSource) keys(_ context.Context, kid string) ([]verificationKey, error) {
	return s.idx.lookup(kid)
}

// remoteSource is a JWKS URL kept fresh by a jwk.Cache.
type remoteSource struct {
	url      string
	cache    *jwk.Cache
	resource *httprc.ResourceBase[jwk.Set]
	allowed  map[string]bool

	idx atomic.Pointer[keyIndex]
	// lastForced is the UnixNano time of the last refresh forced by an unknown kid.
	lastForced atomic.Int64
	forceEvery time.Duration
	mu         sync.Mutex // serializes index rebuilds
	// fetchErrs receives the first background fetch error not yet consumed.
	fetchErrs chan error
}

func newRemoteSource(ctx context.Context, rawURL string, client *http.Client, allowed map[string]bool) (*remoteSource, error) {
	if err := checkJWKSURL(rawURL); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	s := &remoteSource{url: rawURL, allowed: allowed, forceEvery: jwksForcedRefresh, fetchErrs: make(chan error, 1)}
	sink := errsink.NewFunc(func(_ context.Context, err error) {
		select {
		case s.fetchErrs <- err:
		default:
		}
	})
	cache, err := jwk.NewCache(ctx, httprc.NewClient(
		httprc.WithHTTPClient(client), httprc.WithWorkers(1), httprc.WithErrorSink(sink)))
	if err != nil {
		return nil, fmt.Errorf("jwks cache: %w", err)
	}
	s.cache = cache
	if err := s.register(ctx, client); err != nil {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = cache.Shutdown(shutdown) // the register error is the one worth reporting
		return nil, err
	}
	return s, nil
}

// register adds the URL to the cache and waits for the first fetch: its success, its first
// failure, or jwksFirstFetch, whichever comes first.
func (s *remoteSource) register(ctx context.Context, client *http.Client) error {
	err := s.cache.Register(ctx, s.url,
		jwk.WithHTTPClient(client),
		jwk.WithMinInterval(jwksMinRefresh),
		jwk.WithMaxInterval(jwksMaxRefresh),
		jwk.WithWaitReady(false),
	)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", s.url, err)
	}
	if s.resource, err = s.cache.LookupResource(ctx, s.url); err != nil {
		return fmt.Errorf("jwks %s: %w", s.url, err)
	}
	wait, cancel := context.WithTimeout(ctx, jwksFirstFetch)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- s.resource.Ready(wait) }()
	select {
	case err = <-ready:
	case err = <-s.fetchErrs:
	}
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", s.url, err)
	}
	idx, err := s.index()
	if err != nil {
		return fmt.Errorf("jwks %s: %w", s.url, err)
	}
	if len(idx.all) == 0 {
		return fmt.Errorf("jwks %s holds no signing key for the allowed algorithms", s.url)
	}
	return nil
}

// index returns the index of the current set, rebuilding it when the cache has replaced the
// set since the last call.
func (s *remoteSource) index() (*keyIndex, error) {
	set := s.resource.Resource()
	if set == nil {
		return nil, errors.New("no key set fetched yet")
	}
	if idx := s.idx.Load(); idx != nil && idx.set == set {
		return idx, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx := s.idx.Load(); idx != nil && idx.set == set {
		return idx, nil
	}
	idx, _ := indexSet(set, s.allowed) // unusable keys of a remote set are left out
	s.idx.Store(idx)
	return idx, nil
}

func (s *remoteSource) keys(ctx context.Context, kid string) ([]verificationKey, error) {
	idx, err := s.index()
	if err != nil {
		return nil, err
	}
	keys, err := idx.lookup(kid)
	if !errors.Is(err, errUnknownKid) || !s.mayForceRefresh() {
		return keys, err
	}
	// The issuer may have rotated to a key published after the last fetch.
	if _, rerr := s.cache.Refresh(ctx, s.url); rerr != nil {
		return nil, fmt.Errorf("%w (refresh: %w)", err, rerr)
	}
	if idx, err = s.index(); err != nil {
		return nil, err
	}
	return idx.lookup(kid)
}

// mayForceRefresh reports whether an unknown kid may refresh the set now, and if so claims
// the slot: at most one forced refresh per forceEvery, however many bogus kids arrive.
func (s *remoteSource) mayForceRefresh() bool {
	now := time.Now().UnixNano()
	last := s.lastForced.Load()
	if last != 0 && now-last < int64(s.forceEvery) {
		return false
	}
	return s.lastForced.CompareAndSwap(last, now)
}

// checkJWKSURL accepts https URLs, and http URLs to loopback hosts only: keys fetched over
// plain http on a network could be replaced in transit.
func checkJWKSURL(raw string) error { return checkSecureURL("jwks url", raw) }

// checkSecureURL accepts https URLs with a host, and http URLs to loopback hosts; what names
// the URL in errors.
func checkSecureURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%s %q has no host", what, raw)
		}
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%s %q: http is allowed only to loopback hosts; use https", what, raw)
	default:
		return fmt.Errorf("%s %q: scheme must be https", what, raw)
	}
}
