package proxy

import (
	"bufio"
	"context"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"

	"github.com/veilproxy/veil/proxy/identity"
)

// identityNames are the identity headers Sanitize removes from untrusted peers, folded: the
// configured trusted headers and the well-known ones auth proxies set.
var identityNames = []string{
	"x-veil-user", "x-veil-roles", "x-veil-department", "x-veil-email",
	"x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
	"x-forwarded-access-token", "x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
	"x-auth-request-preferred-username", "x-auth-request-access-token", "x-remote-user",
	"x-remote-groups", "remote-user",
}

// FuzzSanitizeHeaders feeds header blocks, parsed the way Go's server parses them, through
// sanitizeHeaders with a real Authenticator, from a trusted and an untrusted peer. Invariants:
// from an untrusted peer no identity header survives under any spelling; from a trusted one
// only canonical spellings do; no method-override or client-address header survives; and a
// block that is not refused holds no control character in any name or value.
func FuzzSanitizeHeaders(f *testing.F) {
	for _, s := range []string{
		"X-Veil-User: admin\r\nX-Veil-Roles: security_admin",
		"x-veil-user: admin",
		"X_Veil_User: admin\r\nX-VEIL-ROLES: security_admin",
		"X-Veil-User: a\r\nX-Veil-User: b",
		"X-Forwarded-User: admin\r\nRemote-User: admin\r\nX-Auth-Request-Groups: security_admin",
		"X-HTTP-Method-Override: DELETE\r\nX_Http_Method: DELETE\r\nx-method-override: PUT",
		"X-Forwarded-For: 6.6.6.6, 10.0.0.7\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nTrue-Client-IP: 6.6.6.6",
		"X-Note: a\x01b",
		"X-Note: a\x7fb",
		"X-Note: a\r\n b",
		"X-Note: \x1b[31m",
		"X-Veil-User: \xff\xfe",
		"Authorization: Bearer x\r\nX-Api-Key: k",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	authn, err := identity.New(context.Background(), identity.Config{TrustedHeaders: &identity.TrustedHeadersConfig{
		TrustedPeers: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, block string, trusted bool) {
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(block + "\r\n\r\n"))).ReadMIMEHeader()
		if err != nil {
			return // Go's server answers 400 before Veil sees the request
		}
		hdr := http.Header(h)
		peer := netip.MustParseAddr("192.0.2.1")
		if trusted {
			peer = netip.MustParseAddr("10.0.0.1")
		}
		client, err := sanitizeHeaders(authn, hdr, peer)
		if !client.IsValid() {
			t.Fatalf("sanitizeHeaders(%q) client address is invalid", block)
		}
		if !trusted && client != peer {
			t.Fatalf("untrusted peer %s: client address %s taken from the headers", peer, client)
		}
		for k, vs := range hdr {
			f := strings.ReplaceAll(strings.ToLower(k), "_", "-")
			for _, id := range identityNames {
				if f == id && (!trusted || k != http.CanonicalHeaderKey(id)) {
					t.Fatalf("identity header %q survived from %s (trusted %v)", k, peer, trusted)
				}
			}
			if methodOverrideHeaders[f] || clientAddressHeaders[f] {
				t.Fatalf("header %q survived", k)
			}
			if err != nil {
				continue
			}
			for _, s := range append([]string{k}, vs...) {
				for i := 0; i < len(s); i++ {
					if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
						t.Fatalf("header %q: %q holds control character %#x and was not refused", k, s, c)
					}
				}
			}
		}
	})
}
