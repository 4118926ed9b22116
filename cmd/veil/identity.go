package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/upstreamauth"
)

// defaultAdminTokenEnv holds the revocation endpoint's token unless the config names another
// variable or a file.
const defaultAdminTokenEnv = "VEIL_ADMIN_TOKEN"

// minAdminToken is the shortest admin token Veil accepts: the token can revoke anyone.
const minAdminToken = 16

// revocationStore is a revocation list operators change at run time and whose static part
// follows data.veil.revoked.
type revocationStore interface {
	identity.RevocationStore
	SetStatic(entries []string) error
}

// staffDirectory is data.veil.directory as identity reads it: a user id, or an e-mail
// matched case-insensitively, to the user's roles and department. It is replaced whole on
// every policy reload and never changed in place.
type staffDirectory struct {
	byID   map[string]identity.DirectoryEntry
	byFold map[string]identity.DirectoryEntry // lower-case keys, for e-mails
}

// lookup finds the user by id exactly, then by e-mail case-insensitively.
func (d *staffDirectory) lookup(id, email string) (identity.DirectoryEntry, bool) {
	if d == nil {
		return identity.DirectoryEntry{}, false
	}
	if e, ok := d.byID[id]; ok {
		return cloneEntry(e), true
	}
	if email != "" {
		if e, ok := d.byFold[strings.ToLower(email)]; ok {
			return cloneEntry(e), true
		}
	}
	return identity.DirectoryEntry{}, false
}

func cloneEntry(e identity.DirectoryEntry) identity.DirectoryEntry {
	e.Roles = slices.Clone(e.Roles)
	return e
}

// parseDirectory reads data.veil.directory (nil: no directory). A malformed entry is kept
// with no roles — a listed user gets exactly the entry's roles, so a broken entry grants
// nothing — and reported in the error with every other problem. Two keys that differ only in
// case cannot be told apart by e-mail; both are left to exact id matches and reported.
func parseDirectory(v any) (*staffDirectory, error) {
	d := &staffDirectory{byID: map[string]identity.DirectoryEntry{}, byFold: map[string]identity.DirectoryEntry{}}
	if v == nil {
		return d, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return d, fmt.Errorf("data.veil.directory is %s, want an object of user id or e-mail to {roles, department}", jsonKind(v))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	ambiguous := map[string]bool{}
	for _, k := range keys {
		e, err := directoryEntry(obj[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("data.veil.directory[%q]: %w (the user gets no roles)", k, err))
		}
		d.byID[k] = e
		fold := strings.ToLower(k)
		if _, dup := d.byFold[fold]; dup || ambiguous[fold] {
			if !ambiguous[fold] {
				errs = append(errs, fmt.Errorf("data.veil.directory: several keys spell %q in different cases; e-mails do not match them", fold))
			}
			ambiguous[fold] = true
			delete(d.byFold, fold)
			continue
		}
		d.byFold[fold] = e
	}
	return d, errors.Join(errs...)
}

// directoryEntry reads {"roles": [...], "department": "..."}; other keys are ignored.
func directoryEntry(v any) (identity.DirectoryEntry, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return identity.DirectoryEntry{}, fmt.Errorf("is %s, want an object", jsonKind(v))
	}
	var e identity.DirectoryEntry
	switch dept := obj["department"].(type) {
	case nil:
	case string:
		e.Department = dept
	default:
		return identity.DirectoryEntry{}, fmt.Errorf("department is %s, want a string", jsonKind(dept))
	}
	switch roles := obj["roles"].(type) {
	case nil:
	case []any:
		for _, r := range roles {
			s, ok := r.(string)
			if !ok {
				return identity.DirectoryEntry{Department: e.Department}, fmt.Errorf("roles holds %s, want strings", jsonKind(r))
			}
			e.Roles = append(e.Roles, s)
		}
	default:
		return identity.DirectoryEntry{Department: e.Department}, fmt.Errorf("roles is %s, want an array of strings", jsonKind(roles))
	}
	return e, nil
}

// parseRevoked reads data.veil.revoked (nil: none). Entries that are not strings are
// reported; the strings are returned regardless.
func parseRevoked(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("data.veil.revoked is %s, want an array of user ids, e-mails and sha256: hashes", jsonKind(v))
	}
	var (
		out  []string
		errs []error
	)
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			errs = append(errs, fmt.Errorf("data.veil.revoked[%d] is %s, want a string", i, jsonKind(e)))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

// policyIdentityData reads the directory and the static revocation list from the policy in
// use. The error lists every problem found; what could be read is returned regardless.
func policyIdentityData(eng *policy.Engine) (*staffDirectory, []string, error) {
	var errs []error
	dv, err := eng.Data("veil", "directory")
	if err != nil {
		errs = append(errs, err)
	}
	dir, err := parseDirectory(dv)
	if err != nil {
		errs = append(errs, err)
	}
	rv, err := eng.Data("veil", "revoked")
	if err != nil {
		errs = append(errs, err)
	}
	revoked, err := parseRevoked(rv)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range revoked {
		if _, err := identity.NormalizeRevocation(e); err != nil {
			errs = append(errs, fmt.Errorf("data.veil.revoked: %w", err))
		}
	}
	return dir, revoked, errors.Join(errs...)
}

// applyPolicyData makes the directory and the static revocations of the policy in use
// current. It runs after every successful policy load.
func (a *app) applyPolicyData(eng *policy.Engine) {
	dir, revoked, err := policyIdentityData(eng)
	a.directory.Store(dir)
	if serr := a.revocations.SetStatic(revoked); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		a.log.Error("policy data: identity entries skipped", "revision", eng.Revision(), "err", err)
	}
}

// lookupStaff is identity.Config.Directory: the directory of the policy in use.
func (a *app) lookupStaff(id, email string) (identity.DirectoryEntry, bool) {
	return a.directory.Load().lookup(id, email)
}

// identityConfig turns the identity section into the identity package's config, reading key
// files and secrets. Directory and revocations are the caller's to add.
func identityConfig(cfg *config.Config, o *buildOptions) (identity.Config, error) {
	var ic identity.Config
	if j := cfg.Identity.JWT; j != nil {
		jc := &identity.JWTConfig{
			Issuer: j.Issuer, Audience: j.Audience, JWKSURL: j.JWKSURL, Discovery: j.Discovery, Algorithms: j.Algorithms,
			Claims: identity.ClaimNames{User: j.Claims.User, Roles: j.Claims.Roles, Department: j.Claims.Department, Email: j.Claims.Email},
			Leeway: j.Leeway.D(),
		}
		if j.JWKSFile != "" {
			b, err := os.ReadFile(o.path(j.JWKSFile))
			if err != nil {
				return ic, fmt.Errorf("jwt: %w", err)
			}
			jc.JWKS = b
		}
		if j.SecretEnv != "" || j.SecretFile != "" {
			sec, err := readSecret(o, j.SecretEnv, j.SecretFile)
			if err != nil {
				return ic, fmt.Errorf("jwt: %w", err)
			}
			jc.HMACSecret = sec
		}
		ic.JWT = jc
	}
	if th := cfg.Identity.TrustedHeaders; th != nil {
		tc := &identity.TrustedHeadersConfig{User: th.User, Roles: th.Roles, Department: th.Department, Email: th.Email}
		for _, p := range th.TrustedPeers {
			pfx, err := config.ParsePeer(p)
			if err != nil {
				return ic, err
			}
			tc.TrustedPeers = append(tc.TrustedPeers, pfx)
		}
		ic.TrustedHeaders = tc
	}
	if ak := cfg.Identity.APIKeys; ak != nil {
		kc := &identity.APIKeysConfig{Header: ak.Header}
		for i, k := range ak.Keys {
			key := identity.APIKey{User: k.User, Roles: k.Roles, Department: k.Department}
			if k.KeySHA256 != "" {
				b, err := hex.DecodeString(k.KeySHA256)
				if err != nil || len(b) != 32 {
					return ic, fmt.Errorf("api_keys.keys[%d].key_sha256: not 64 hex characters", i)
				}
				copy(key.SHA256[:], b)
			} else {
				sec, err := readSecret(o, k.KeyEnv, k.KeyFile)
				if err != nil {
					return ic, fmt.Errorf("api_keys.keys[%d]: %w", i, err)
				}
				key.SHA256 = sha256.Sum256(sec)
			}
			kc.Keys = append(kc.Keys, key)
		}
		ic.APIKeys = kc
	}
	if m := cfg.Identity.MTLS; m != nil {
		ic.MTLS = &identity.MTLSConfig{User: m.User, URIPrefix: m.URIPrefix, Department: m.Department, DirectoryOnly: m.DirectoryOnly}
	}
	ic.RevocationsOnError = cfg.Identity.Revocations.OnError
	return ic, nil
}

// newRevocations returns the run-time revocation list: in Redis, shared by every replica,
// when identity.revocations.redis is on, and in the process otherwise.
func (a *app) newRevocations(ctx context.Context) (revocationStore, error) {
	rc := a.cfg.Identity.Revocations
	if !rc.UseRedis() {
		return identity.NewMemoryRevocations(), nil
	}
	if a.redis == nil {
		return nil, errors.New("identity: revocations: redis is on but limits.redis_url is not set")
	}
	r, err := identity.NewRedisRevocations(ctx, a.redis, identity.RedisRevocationsOptions{
		Prefix: rc.Prefix, Poll: rc.Poll.D(), MaxStale: rc.MaxStale.D(), Logger: a.log,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, r.Close)
	return r, nil
}

// routeIdentity gives every route its upstream_token resolver and its upstream credential.
func routeIdentity(cfg *config.Config, o *buildOptions, routes []proxy.Route, client *http.Client, log *slog.Logger) error {
	for i := range routes {
		rc := cfg.Routes[i]
		where := fmt.Sprintf("routes[%d] (%s)", i, rc.Name)
		if rc.UpstreamToken != nil {
			t, err := tokenResolver(cfg, rc, routes[i].Upstream, client, log)
			if err != nil {
				return fmt.Errorf("%s: upstream_token: %w", where, err)
			}
			routes[i].TokenResolver = t
		}
		if rc.UpstreamAuth != nil {
			r, err := upstreamAuth(cfg, rc, o)
			if err != nil {
				return fmt.Errorf("%s: upstream_auth: %w", where, err)
			}
			routes[i].UpstreamAuth = r
		}
	}
	return nil
}

// tokenResolver builds a route's upstream_token resolver: its profile with the route's
// overrides, asking the route's upstream, with the shared cache settings.
func tokenResolver(cfg *config.Config, rc config.Route, upstream *url.URL, client *http.Client, log *slog.Logger) (*identity.TokenResolver, error) {
	ut := rc.UpstreamToken
	prof, ok := ut.IdentityProfile()
	if !ok {
		return nil, fmt.Errorf("unknown profile %q", ut.Profile)
	}
	s := cfg.Identity.UpstreamToken
	tc := identity.TokenResolverConfig{
		Profile: prof, Upstream: upstream, Tenant: ut.Tenant, RoleMap: ut.RoleMap, DirectoryOnly: ut.DirectoryOnly,
		CacheTTL: s.CacheTTL.D(), CacheSize: s.CacheSize, RejectTTL: s.RejectTTL.D(), Timeout: s.Timeout.D(),
		MaxConcurrent: s.MaxConcurrent, OnError: s.OnError, StaleTTL: s.StaleTTL.D(), HTTPClient: client,
	}
	if log != nil {
		tc.Logger = log.With("route", rc.Name)
	}
	return identity.NewTokenResolver(tc)
}

// upstreamAuth builds a route's credential replacer. Besides the generic and the adapter's
// credential carriers it removes Veil's own API-key header and the headers the route's
// upstream_token profile reads, so no client credential rides along to the upstream.
func upstreamAuth(cfg *config.Config, rc config.Route, o *buildOptions) (*upstreamauth.Replacer, error) {
	ua := rc.UpstreamAuth
	inj, err := injector(ua, o)
	if err != nil {
		return nil, err
	}
	strip := slices.Clone(ua.StripHeaders)
	if ak := cfg.Identity.APIKeys; ak != nil {
		strip = append(strip, cmp.Or(ak.Header, identity.DefaultAPIKeyHeader))
	}
	if rc.UpstreamToken != nil {
		if prof, ok := rc.UpstreamToken.IdentityProfile(); ok {
			for _, c := range prof.Credentials {
				strip = append(strip, cmp.Or(c.Header, "Authorization"))
			}
			strip = append(strip, prof.Strip...)
		}
	}
	return upstreamauth.New(upstreamauth.Config{Injector: inj, Adapter: rc.Adapter, StripHeaders: strip, StripQuery: ua.StripQuery})
}

// injector builds the service credential; secrets come from the environment or files only.
func injector(ua *config.UpstreamAuth, o *buildOptions) (upstreamauth.Injector, error) {
	switch {
	case ua.Static != nil:
		s := ua.Static
		v, err := readSecret(o, s.ValueEnv, s.ValueFile)
		if err != nil {
			return nil, fmt.Errorf("static: %w", err)
		}
		value := string(v)
		if s.Scheme != "" {
			value = s.Scheme + " " + value
		}
		return upstreamauth.NewStatic(s.Header, value)
	case ua.OAuth2 != nil:
		c := ua.OAuth2
		secret, err := readSecret(o, c.ClientSecretEnv, c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2: client secret: %w", err)
		}
		refresh, err := readSecret(o, c.RefreshTokenEnv, c.RefreshTokenFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2: refresh token: %w", err)
		}
		var params url.Values
		if len(c.Params) > 0 {
			params = url.Values{}
			for k, v := range c.Params {
				params.Set(k, v)
			}
		}
		return upstreamauth.NewOAuth2(upstreamauth.OAuth2Config{
			Grant: c.Grant, TokenURL: c.TokenURL, ClientID: c.ClientID, ClientSecret: string(secret),
			RefreshToken: string(refresh), Scopes: c.Scopes, Params: params, AuthStyle: c.AuthStyle,
			Header: c.Header, Scheme: c.Scheme, RefreshBefore: c.RefreshBefore.D(), RetryAfter: c.RetryAfter.D(),
		})
	case ua.Lark != nil:
		c := ua.Lark
		secret, err := readSecret(o, c.AppSecretEnv, c.AppSecretFile)
		if err != nil {
			return nil, fmt.Errorf("lark: app secret: %w", err)
		}
		return upstreamauth.NewLarkTenantToken(upstreamauth.LarkConfig{
			BaseURL: c.BaseURL, AppID: c.AppID, AppSecret: string(secret),
			RefreshBefore: c.RefreshBefore.D(), RetryAfter: c.RetryAfter.D(),
		})
	}
	return nil, errors.New("none of static, oauth2, lark is set")
}

// adminToken returns the revocation endpoint's token, or nil when the endpoint is off (the
// default variable is unset and the config names no other source).
func adminToken(rc config.RevocationsConfig, o *buildOptions) ([]byte, error) {
	var tok []byte
	switch {
	case rc.AdminTokenFile != "":
		b, err := readSecret(o, "", rc.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		tok = b
	case rc.AdminTokenEnv != "":
		b, err := readSecret(o, rc.AdminTokenEnv, "")
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		tok = b
	default:
		tok = []byte(o.getenv(defaultAdminTokenEnv))
		if len(tok) == 0 {
			return nil, nil
		}
	}
	if len(tok) < minAdminToken {
		return nil, fmt.Errorf("admin token: %d bytes, want at least %d", len(tok), minAdminToken)
	}
	return tok, nil
}

// revocationAdmin returns the /revocations endpoint for the admin listener, nil when no
// admin token is configured. Every change is written to the audit log.
func (a *app) revocationAdmin(o *buildOptions) (http.Handler, error) {
	rc := a.cfg.Identity.Revocations
	tok, err := adminToken(rc, o)
	if err != nil || tok == nil {
		return nil, err
	}
	return identity.NewRevocationAdmin(identity.RevocationAdminConfig{
		Store: a.revocations, TokenSHA256: sha256.Sum256(tok), Audit: a.auditRevocation,
		Logger: a.log, MaxTTL: rc.MaxTTL.D(),
	})
}

// auditRevocation writes one revocation change to the audit log, synchronously: an operator
// action is never left out of it silently.
func (a *app) auditRevocation(ctx context.Context, ev identity.RevocationEvent) {
	rec := &audit.Record{
		Time: ev.Time, RequestID: newRequestID(), User: "admin", ClientIP: hostOf(ev.RemoteAddr),
		Route: "admin", Path: "/revocations", System: "veil", Resource: "revocations", Action: ev.Action,
		Decision: audit.DecisionAllow, Reason: ev.Reason, PolicyRevision: a.policy.Revision(),
		Extra: map[string]string{"event": "revocation", "entry": ev.Entry, "remote_addr": ev.RemoteAddr},
	}
	if ev.Reason != "" {
		rec.Extra["reason"] = ev.Reason
	}
	switch ev.Action {
	case "revoke":
		rec.Method, rec.Status = http.MethodPost, http.StatusCreated
		if !ev.Expires.IsZero() {
			rec.Extra["expires"] = ev.Expires.UTC().Format(time.RFC3339)
		}
	default:
		rec.Method, rec.Status = http.MethodDelete, http.StatusNoContent
	}
	if ev.Err != nil {
		rec.Decision = audit.DecisionError
		rec.Extra["error"] = ev.Err.Error()
		rec.Status = http.StatusServiceUnavailable
		if errors.Is(ev.Err, identity.ErrStaticRevocation) {
			rec.Status = http.StatusConflict
		}
	}
	if err := a.audit.AppendSync(ctx, rec); err != nil {
		a.log.ErrorContext(ctx, "audit: revocation change not recorded", "action", ev.Action, "entry", ev.Entry, "err", err)
	}
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// clientAuthPolicies maps server.tls.client_auth to crypto/tls.
var clientAuthPolicies = map[string]tls.ClientAuthType{
	config.ClientAuthNone:          tls.NoClientCert,
	config.ClientAuthRequest:       tls.RequestClientCert,
	config.ClientAuthVerifyIfGiven: tls.VerifyClientCertIfGiven,
	config.ClientAuthRequire:       tls.RequireAndVerifyClientCert,
}

// serverTLS reads the proxy listener's certificate and client CAs; nil when TLS is off.
func serverTLS(t *config.TLSConfig, o *buildOptions) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.path(t.CertFile), o.path(t.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	auth, ok := clientAuthPolicies[t.ClientAuth]
	if !ok {
		return nil, fmt.Errorf("tls: client_auth %q: want none, request, verify_if_given or require", t.ClientAuth)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: auth}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(o.path(t.ClientCAFile))
		if err != nil {
			return nil, fmt.Errorf("tls: client CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client CAs: %s holds no PEM certificate", t.ClientCAFile)
		}
		tc.ClientCAs = pool
	}
	return tc, nil
}
