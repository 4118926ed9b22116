package identity

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Default trusted-header names.
const (
	DefaultUserHeader       = "X-Veil-User"
	DefaultRolesHeader      = "X-Veil-Roles"
	DefaultDepartmentHeader = "X-Veil-Department"
	DefaultEmailHeader      = "X-Veil-Email"
)

// wellKnownIdentityHeaders are identity headers that auth proxies (oauth2-proxy, Apache,
// nginx auth_request setups) set and upstream applications tend to trust. Sanitize removes
// them from every untrusted peer whether or not Veil reads them.
var wellKnownIdentityHeaders = []string{
	DefaultUserHeader, DefaultRolesHeader, DefaultDepartmentHeader, DefaultEmailHeader,
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups",
	"X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token",
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
	"X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token",
	"X-Remote-User", "X-Remote-Groups", "Remote-User",
}

// trustedHeaders reads identity headers sent by trusted peers.
type trustedHeaders struct {
	user, roles, department, email string // canonical header names
	peers                          []netip.Prefix
}

func newTrustedHeaders(c TrustedHeadersConfig) (*trustedHeaders, error) {
	t := &trustedHeaders{
		user:       http.CanonicalHeaderKey(cmp.Or(c.User, DefaultUserHeader)),
		roles:      http.CanonicalHeaderKey(cmp.Or(c.Roles, DefaultRolesHeader)),
		department: http.CanonicalHeaderKey(cmp.Or(c.Department, DefaultDepartmentHeader)),
		email:      http.CanonicalHeaderKey(cmp.Or(c.Email, DefaultEmailHeader)),
	}
	seen := make(map[string]bool)
	for _, name := range []string{t.user, t.roles, t.department, t.email} {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("invalid header name %q", name)
		}
		key := foldHeaderName(name)
		if key == "authorization" {
			return nil, errors.New("the Authorization header carries bearer tokens; choose another header")
		}
		if seen[key] {
			return nil, fmt.Errorf("header %q is configured twice", name)
		}
		seen[key] = true
	}
	if len(c.TrustedPeers) == 0 {
		return nil, errors.New("trusted_peers is required")
	}
	for _, p := range c.TrustedPeers {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid trusted peer prefix %v", p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		t.peers = append(t.peers, p.Masked())
	}
	return t, nil
}

func (t *trustedHeaders) names() []string {
	return []string{t.user, t.roles, t.department, t.email}
}

// trusted reports whether addr lies in a trusted prefix.
func (t *trustedHeaders) trusted(addr netip.Addr) bool {
	if t == nil || !addr.IsValid() {
		return false
	}
	addr = normalizeAddr(addr)
	for _, p := range t.peers {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// authenticate reads the identity headers of a trusted peer. found is false when the peer is
// not trusted or sent no user header.
func (t *trustedHeaders) authenticate(h http.Header, peer netip.Addr) (u User, found bool, _ *Error) {
	if !t.trusted(peer) {
		return User{}, false, nil
	}
	vals, err := identityValues(h, t.names())
	if err != nil {
		return User{}, true, &Error{Status: http.StatusBadRequest, Reason: "invalid identity header", Err: err}
	}
	user, ok := vals[t.user]
	if !ok {
		return User{}, false, nil
	}
	if user == "" {
		return User{}, true, errorf(http.StatusBadRequest, "invalid identity header", "header %s is empty", t.user)
	}
	for _, name := range []string{t.user, t.department, t.email} {
		if strings.Contains(vals[name], ",") {
			return User{}, true, errorf(http.StatusBadRequest, "invalid identity header", "header %s holds a comma-separated list", name)
		}
	}
	return User{
		ID:         user,
		Roles:      splitRoles(vals[t.roles], func(r rune) bool { return r == ',' }),
		Department: vals[t.department],
		Email:      vals[t.email],
		Source:     SourceTrustedHeaders,
	}, true, nil
}

// identityValues returns the trimmed value of each named header present in h. A header that
// occurs more than once (under any spelling of its name), or whose value holds control
// characters or invalid UTF-8, is an error.
func identityValues(h http.Header, names []string) (map[string]string, error) {
	want := make(map[string]string, len(names)) // folded name ⇒ canonical name
	for _, n := range names {
		want[foldHeaderName(n)] = n
	}
	vals := make(map[string]string, len(names))
	for key, vs := range h {
		name, ok := want[foldHeaderName(key)]
		if !ok || len(vs) == 0 {
			continue
		}
		if _, dup := vals[name]; dup || len(vs) > 1 {
			return nil, fmt.Errorf("header %s occurs more than once", name)
		}
		v := strings.Trim(vs[0], " \t")
		if err := checkHeaderValue(v); err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		vals[name] = v
	}
	return vals, nil
}

func checkHeaderValue(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("invalid utf-8")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character %#02x", c)
		}
	}
	return nil
}

// foldHeaderName maps a header name to the form servers that treat "_" as "-" (CGI, PHP,
// WSGI, nginx with underscores_in_headers) see: lower case, "_" as "-".
func foldHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func normalizeAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// Sanitize removes identity headers that the peer may not send; the proxy calls it first,
// before anything reads the headers. From a peer outside the trusted peers (every peer, when
// trusted-header mode is off) it removes the configured trusted headers, Veil's default
// X-Veil-* headers and well-known proxy identity headers (X-Forwarded-User,
// X-Forwarded-Email, X-Auth-Request-*, X-Remote-User, Remote-User, …), so that neither Veil
// nor the upstream can be told who the caller is by the caller. Names are matched
// case-insensitively and with "_" read as "-" ("X_Veil_User" is removed too); from a trusted
// peer such non-canonical spellings are still removed and only the canonical ones kept.
// Credentials (Authorization, the API-key header) are not identity headers and are left
// alone: Authenticate verifies them.
func (a *Authenticator) Sanitize(h http.Header, peer netip.Addr) {
	trusted := a.headers.trusted(peer)
	for key := range h {
		folded := foldHeaderName(key)
		canonical, ok := a.identityHeaders[folded]
		if !ok {
			continue
		}
		if trusted && key == canonical {
			continue
		}
		delete(h, key)
	}
}

// ClientIP returns the client address: the socket peer, or, when the peer is a trusted
// peer, the right-most X-Forwarded-For entry that is not itself trusted. Entries left of an
// untrusted hop are the client's own claims and are never read. If an entry cannot be parsed,
// the last trusted hop before it is returned. The result is unmapped (an IPv4-mapped IPv6
// address becomes IPv4) and carries no zone.
func (a *Authenticator) ClientIP(h http.Header, peer netip.Addr) netip.Addr {
	peer = normalizeAddr(peer)
	if !a.headers.trusted(peer) {
		return peer
	}
	var entries []string
	for _, v := range h.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(v, ",")...)
	}
	last := peer
	for i := len(entries) - 1; i >= 0; i-- {
		addr, ok := parseForwardedAddr(entries[i])
		if !ok {
			return last
		}
		if !a.headers.trusted(addr) {
			return addr
		}
		last = addr
	}
	return last
}

// parseForwardedAddr parses an X-Forwarded-For entry: an IP address, optionally with a port
// ("203.0.113.7:443", "[2001:db8::1]:443").
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	if addr, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(addr), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	return netip.Addr{}, false
}
