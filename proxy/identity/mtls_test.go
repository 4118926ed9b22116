package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testCA issues client certificates for the mTLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a client certificate for subject with the given SANs.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, emails []string, uris []string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(time.Now().UnixNano()),
		Subject:        subject,
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		EmailAddresses: emails,
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mtlsServer is a TLS server verifying client certificates against ca and answering with the
// result of Authenticate as JSON.
func mtlsServer(t *testing.T, a *Authenticator, ca *testCA) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.Authenticate(r.Context(), r, untrustedPeer, []string{ModeMTLS})
		if err != nil {
			var e *Error
			status := http.StatusInternalServerError
			if ok := asError(err, &e); ok {
				status = e.Status
			}
			http.Error(w, err.Error(), status)
			return
		}
		json.NewEncoder(w).Encode(u)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

func mtlsGet(t *testing.T, srv *httptest.Server, cert *tls.Certificate) (int, User, string) {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		// Send the certificate whatever CAs the server asks for: the server must refuse a
		// rogue one, not rely on the client's politeness.
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(srv.URL)
	if err != nil {
		return 0, User{}, err.Error()
	}
	defer resp.Body.Close()
	var u User
	var body strings.Builder
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			t.Fatal(err)
		}
	} else {
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
	}
	return resp.StatusCode, u, body.String()
}

func TestMTLS(t *testing.T) {
	ca := newTestCA(t, "Veil Test Staff CA")
	alice := ca.issue(t, pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"cs", "east"}}, []string{"alice@example.com"},
		[]string{"spiffe://corp.example/user/alice"})
	noCN := ca.issue(t, pkix.Name{OrganizationalUnit: []string{"cs"}}, nil, nil)
	rogue := newTestCA(t, "Rogue CA").issue(t, pkix.Name{CommonName: "admin"}, nil, nil)

	tests := []struct {
		name   string
		c      MTLSConfig
		cert   *tls.Certificate
		status int // 0: a failed handshake
		want   User
	}{
		{name: "cn and ou", c: MTLSConfig{Department: "ou"}, cert: &alice, status: 200,
			want: User{ID: "alice", Email: "alice@example.com", Department: "cs", Source: SourceMTLS}},
		{name: "email san", c: MTLSConfig{User: CertEmail}, cert: &alice, status: 200,
			want: User{ID: "alice@example.com", Email: "alice@example.com", Source: SourceMTLS}},
		{name: "uri san under a prefix", c: MTLSConfig{User: CertURI, URIPrefix: "spiffe://corp.example/user/"}, cert: &alice, status: 200,
			want: User{ID: "alice", Email: "alice@example.com", Source: SourceMTLS}},
		{name: "uri san under another prefix", c: MTLSConfig{User: CertURI, URIPrefix: "spiffe://corp.example/svc/"}, cert: &alice, status: 401},
		{name: "certificate without cn", c: MTLSConfig{}, cert: &noCN, status: 401},
		{name: "no certificate", c: MTLSConfig{}, status: 401},
		{name: "certificate from another CA", c: MTLSConfig{}, cert: &rogue, status: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			srv := mtlsServer(t, newAuth(t, Config{MTLS: &c}), ca)
			status, u, body := mtlsGet(t, srv, tt.cert)
			if status != tt.status {
				t.Fatalf("GET with %s: status %d (%s), want %d", tt.name, status, body, tt.status)
			}
			if status != http.StatusOK {
				return
			}
			if u.Claims["fingerprint"] == "" || u.Claims["subject"] == "" {
				t.Errorf("claims %v lack the fingerprint or subject", u.Claims)
			}
			u.Claims = nil
			if diff := cmp.Diff(tt.want, u); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

// Only a chain the listener verified counts: a certificate the server merely received is not
// an identity.
func TestMTLSIgnoresUnverifiedCertificates(t *testing.T) {
	ca := newTestCA(t, "CA")
	cert := ca.issue(t, pkix.Name{CommonName: "mallory"}, nil, nil)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{MTLS: &MTLSConfig{}})
	r := &http.Request{Header: http.Header{}, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}}
	if _, err := a.Authenticate(t.Context(), r, untrustedPeer, []string{ModeMTLS}); err != ErrNoIdentity {
		t.Errorf("unverified certificate: error = %v, want ErrNoIdentity", err)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{leaf, ca.cert}}
	u, err := a.Authenticate(t.Context(), r, untrustedPeer, []string{ModeMTLS})
	if err != nil || u.ID != "mallory" {
		t.Errorf("verified certificate: %q, %v; want mallory", u.ID, err)
	}

	// The certificate's SHA-256 fingerprint revokes it.
	rev := NewMemoryRevocations()
	if err := rev.Revoke(t.Context(), TokenHash(string(leaf.Raw)), 0); err != nil {
		t.Fatal(err)
	}
	a = newAuth(t, Config{MTLS: &MTLSConfig{}, Revocations: rev})
	_, err = a.Authenticate(t.Context(), r, untrustedPeer, []string{ModeMTLS})
	checkError(t, err, http.StatusForbidden)
}

func TestMTLSConfigErrors(t *testing.T) {
	for _, c := range []MTLSConfig{{User: "serial"}, {User: CertCommonName, URIPrefix: "spiffe://x/"}, {Department: "o"}} {
		if _, err := New(t.Context(), Config{MTLS: &c}); err == nil {
			t.Errorf("New(mtls %+v) succeeded, want an error", c)
		}
	}
}
