package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Certificate fields MTLSConfig.User may name.
const (
	CertCommonName = "cn"    // the subject's common name
	CertEmail      = "email" // the first e-mail (rfc822Name) subject alternative name
	CertURI        = "uri"   // the first URI SAN (with MTLSConfig.URIPrefix: the first one under it)
	CertDNS        = "dns"   // the first DNS SAN
)

// MTLSConfig maps a verified client certificate to a user. Veil's TLS listener must verify
// the chain (tls.Config ClientAuth VerifyClientCertIfGiven or RequireAndVerifyClientCert, with
// ClientCAs): this mode reads only r.TLS.VerifiedChains, never an unverified certificate, and
// never a certificate forwarded in a header by a proxy in front.
type MTLSConfig struct {
	// User names the certificate field holding the user id: "cn" (zero), "email", "uri" or
	// "dns".
	User string
	// URIPrefix, with User "uri", selects the first URI SAN that starts with it and removes
	// it ("spiffe://corp.example/user/" + "alice" ⇒ "alice"). Zero: the first URI SAN, whole.
	URIPrefix string
	// Department "ou" takes the department from the subject's first organizational unit.
	// Zero: no department from the certificate.
	Department string
	// DirectoryOnly refuses (403) certificate users that the Directory does not list.
	DirectoryOnly bool
}

// clientCerts reads the user from a verified client certificate.
type clientCerts struct {
	user          string
	uriPrefix     string
	department    string
	directoryOnly bool
}

func newClientCerts(c MTLSConfig) (*clientCerts, error) {
	m := &clientCerts{user: c.User, uriPrefix: c.URIPrefix, department: c.Department, directoryOnly: c.DirectoryOnly}
	switch m.user {
	case "":
		m.user = CertCommonName
	case CertCommonName, CertEmail, CertURI, CertDNS:
	default:
		return nil, fmt.Errorf("user field %q: want cn, email, uri or dns", c.User)
	}
	if m.uriPrefix != "" && m.user != CertURI {
		return nil, errors.New("uri_prefix is only for user field uri")
	}
	switch m.department {
	case "", "ou":
	default:
		return nil, fmt.Errorf("department field %q: want ou or nothing", c.Department)
	}
	return m, nil
}

// authenticate returns the user named by the leaf of the first verified chain, and the leaf's
// DER bytes as the credential (TokenHash of them is the certificate's SHA-256 fingerprint).
// found is false when the connection is not TLS or carries no verified client certificate.
func (m *clientCerts) authenticate(r *http.Request) (u User, der string, found bool, _ *Error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return User{}, "", false, nil
	}
	leaf := r.TLS.VerifiedChains[0][0]
	id := m.userOf(leaf)
	if id == "" {
		return User{}, "", true, errorf(http.StatusUnauthorized, "client certificate names no user",
			"certificate %q has no %s", leaf.Subject.String(), m.user)
	}
	if err := checkHeaderValue(id); err != nil {
		return User{}, "", true, &Error{Status: http.StatusUnauthorized, Reason: "client certificate names no user",
			Err: fmt.Errorf("certificate %s: %w", m.user, err)}
	}
	u = User{ID: id, Source: SourceMTLS}
	if len(leaf.EmailAddresses) > 0 {
		u.Email = leaf.EmailAddresses[0]
	}
	if m.department == "ou" && len(leaf.Subject.OrganizationalUnit) > 0 {
		u.Department = leaf.Subject.OrganizationalUnit[0]
	}
	fp := sha256.Sum256(leaf.Raw)
	u.Claims = map[string]any{
		"subject":     leaf.Subject.String(),
		"issuer":      leaf.Issuer.String(),
		"serial":      leaf.SerialNumber.String(),
		"not_after":   leaf.NotAfter.Unix(),
		"fingerprint": hex.EncodeToString(fp[:]),
	}
	return u, string(leaf.Raw), true, nil
}

func (m *clientCerts) userOf(c *x509.Certificate) string {
	switch m.user {
	case CertEmail:
		if len(c.EmailAddresses) > 0 {
			return c.EmailAddresses[0]
		}
	case CertDNS:
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
	case CertURI:
		for _, u := range c.URIs {
			s := u.String()
			if m.uriPrefix == "" {
				return s
			}
			if rest, ok := strings.CutPrefix(s, m.uriPrefix); ok && rest != "" {
				return rest
			}
		}
	default:
		return strings.TrimSpace(c.Subject.CommonName)
	}
	return ""
}
