package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/internal/redistest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/identity"
)

// envOf is a getenv over a fixed environment.
func envOf(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// policyDir copies the shipped policy into dir/policies, letting edit change veil/data.json,
// and returns the directory.
func policyDir(t *testing.T, dir string, edit func(data map[string]any)) string {
	t.Helper()
	root := filepath.Join(dir, "policies")
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		if p == "veil/data.json" && edit != nil {
			var data map[string]any
			if err := json.Unmarshal(b, &data); err != nil {
				return err
			}
			edit(data)
			if b, err = json.Marshal(data); err != nil {
				return err
			}
		}
		dst := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the shipped policy: %v", err)
	}
	return root
}

// editPolicyData rewrites dir/policies/veil/data.json.
func editPolicyData(t *testing.T, dir string, edit func(data map[string]any)) {
	t.Helper()
	name := filepath.Join(dir, "policies", "veil", "data.json")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	edit(data)
	if b, err = json.Marshal(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// veilAt builds the config in dir/veil.yaml and serves it on free ports until the test ends.
func veilAt(t *testing.T, dir, yaml string, env map[string]string) (a *app, proxyAddr, adminAddr string) {
	t.Helper()
	name := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(name, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(name)
	if err != nil {
		t.Fatalf("loadConfig = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err = build(ctx, cfg, buildOptions{baseDir: dir, logOut: io.Discard, getenv: envOf(env)})
	if err != nil {
		cancel()
		t.Fatalf("build = %v", err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, pl, al) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return a, pl.Addr().String(), al.Addr().String()
}

// fakeSalesforce answers the userinfo identity call for the tokens it knows and serves
// customers only to Veil's service credential, recording what reached it.
type fakeSalesforce struct {
	serviceCredential string

	mu        sync.Mutex
	userinfo  int             // identity calls
	dataCalls []*http.Request // data requests as they arrived
}

// Tokens the fake org knows: alice and bob in org 00D000000000001, eve in another org.
const (
	aliceToken = "00D000000000001!AQ.alice-session"
	bobToken   = "00D000000000001!AQ.bob-session"
	eveToken   = "00D000000000002!AQ.eve-session"
	orgID      = "00D000000000001EAA"
)

func (f *fakeSalesforce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/services/oauth2/userinfo":
		f.mu.Lock()
		f.userinfo++
		f.mu.Unlock()
		answers := map[string]string{
			"Bearer " + aliceToken: `{"user_id":"005000000000001AAA","organization_id":"` + orgID + `","email":"Alice.Wang@Example.com","name":"Alice Wang"}`,
			"Bearer " + bobToken:   `{"user_id":"005000000000002AAA","organization_id":"` + orgID + `","email":"bob@example.com","name":"Bob"}`,
			"Bearer " + eveToken:   `{"user_id":"005000000000009AAA","organization_id":"00D000000000002EAA","email":"eve@example.org"}`,
		}
		body, ok := answers[r.Header.Get("Authorization")]
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "Bad_OAuth_Token")
			return
		}
		io.WriteString(w, body)
	case "/services/data/customers":
		f.mu.Lock()
		f.dataCalls = append(f.dataCalls, r.Clone(context.Background()))
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.serviceCredential {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `[{"errorCode":"INVALID_SESSION_ID"}]`)
			return
		}
		io.WriteString(w, `{"data":[{"id":"c1","name":"张三","mobile":"13812345678","owner_id":"005000000000001AAA","level":"gold"}]}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeSalesforce) calls() (userinfo int, data []*http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.userinfo, append([]*http.Request(nil), f.dataCalls...)
}

func do(t *testing.T, c *http.Client, method, url string, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeUpstreamTokenWithServiceCredential runs issue 8 end to end: staff keep sending
// their Salesforce session, Veil asks Salesforce who it belongs to, takes the roles from
// data.veil.directory, and forwards the request with its own service credential only.
func TestServeUpstreamTokenWithServiceCredential(t *testing.T) {
	const (
		service    = "svc-0123456789abcdef"
		adminToken = "admin-token-0123456789"
	)
	sf := &fakeSalesforce{serviceCredential: service}
	up := httptest.NewServer(sf)
	t.Cleanup(up.Close)

	dir := t.TempDir()
	policyDir(t, dir, func(data map[string]any) {
		// Alice is listed by e-mail, in another case than Salesforce spells it.
		data["directory"] = map[string]any{"alice.wang@example.com": map[string]any{"roles": []any{"cs_agent"}, "department": "cs"}}
	})
	a, p, admin := veilAt(t, dir, `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
policy: {dir: ./policies, watch: false}
audit: {file: ./audit.jsonl}
identity:
  revocations: {admin_token_env: TEST_ADMIN_TOKEN}
routes:
  - name: sfdc
    path_prefix: /services/
    upstream: `+up.URL+`
    identity: [upstream_token]
    upstream_token: {profile: salesforce, tenant: `+orgID+`}
    upstream_auth:
      static: {header: Authorization, scheme: Bearer, value_env: SF_SERVICE_TOKEN}
    generic:
      resources:
        - {match: /services/data/customers, type: customers, records: data}
`, map[string]string{"VEIL_HASH_KEY": "k", "SF_SERVICE_TOKEN": service, "TEST_ADMIN_TOKEN": adminToken})
	c := &http.Client{Timeout: 10 * time.Second}
	customers := "http://" + p + "/services/data/customers"

	// Alice: her session identifies her, the directory makes her a cs_agent, the phone is
	// masked, and only the service credential reaches the data endpoint.
	for range 2 {
		code, body := do(t, c, "GET", customers+"?access_token="+aliceToken+"&q=open", "",
			"Authorization", "Bearer "+aliceToken, "Cookie", "sid="+aliceToken)
		if code != http.StatusOK || strings.Contains(body, "13812345678") || !strings.Contains(body, "138****5678") {
			t.Fatalf("GET customers as alice = %d %s, want 200 with the mobile masked", code, body)
		}
	}
	userinfo, data := sf.calls()
	if userinfo != 1 {
		t.Errorf("identity calls for two requests with one session = %d, want 1 (cached)", userinfo)
	}
	if len(data) != 2 {
		t.Fatalf("data requests upstream = %d, want 2", len(data))
	}
	for _, r := range data {
		if got := r.Header.Values("Authorization"); !cmp.Equal(got, []string{"Bearer " + service}) {
			t.Errorf("upstream Authorization = %q, want only the service credential", got)
		}
		if got := r.URL.RawQuery; got != "q=open" {
			t.Errorf("upstream query = %q, want q=open (access_token removed)", got)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, "alice-session") {
					t.Errorf("upstream header %s = %q carries the client's session", k, v)
				}
			}
		}
	}

	// Bob is not in the directory and Salesforce gives no roles: the policy refuses him,
	// and nothing reaches the data endpoint.
	if code, body := do(t, c, "GET", customers, "", "Authorization", "Bearer "+bobToken); code != http.StatusForbidden || !strings.Contains(body, "no role") {
		t.Errorf("GET customers as bob = %d %s, want 403 no role", code, body)
	}
	// Eve's session is from another org: the tenant pin refuses it.
	if code, body := do(t, c, "GET", customers, "", "Authorization", "Bearer "+eveToken); code != http.StatusUnauthorized || !strings.Contains(body, "not accepted here") {
		t.Errorf("GET customers as eve (other org) = %d %s, want 401", code, body)
	}
	if code, _ := do(t, c, "GET", customers, "", "Authorization", "Bearer 00D000000000001!AQ.forged"); code != http.StatusUnauthorized {
		t.Errorf("GET customers with an unknown session = %d, want 401", code)
	}
	if code, _ := do(t, c, "GET", customers, ""); code != http.StatusUnauthorized {
		t.Errorf("GET customers without credentials = %d, want 401", code)
	}
	if _, data = sf.calls(); len(data) != 2 {
		t.Errorf("data requests upstream after the refusals = %d, want still 2", len(data))
	}

	// A policy reload changes roles at once, cached identity answers notwithstanding.
	editPolicyData(t, dir, func(data map[string]any) {
		data["directory"].(map[string]any)["005000000000002AAA"] = map[string]any{"roles": []any{"cs_agent"}}
	})
	if err := a.policy.Reload(context.Background()); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if code, body := do(t, c, "GET", customers, "", "Authorization", "Bearer "+bobToken); code != http.StatusOK {
		t.Errorf("GET customers as bob after he was added to the directory = %d %s, want 200", code, body)
	}

	// The admin endpoint revokes Alice by e-mail: refused at once, with 403, and audited.
	revocations := "http://" + admin + "/revocations"
	if code, _ := do(t, c, "POST", revocations, `{"entry":"alice.wang@example.com"}`); code != http.StatusUnauthorized {
		t.Errorf("POST /revocations without the admin token = %d, want 401", code)
	}
	code, body := do(t, c, "POST", revocations, `{"entry":"Alice.Wang@example.com","ttl":"24h","reason":"left the company"}`,
		"Authorization", "Bearer "+adminToken)
	if code != http.StatusCreated {
		t.Fatalf("POST /revocations = %d %s, want 201", code, body)
	}
	if code, body := do(t, c, "GET", customers, "", "Authorization", "Bearer "+aliceToken); code != http.StatusForbidden || !strings.Contains(body, "access revoked") {
		t.Errorf("GET customers as revoked alice = %d %s, want 403 access revoked", code, body)
	}
	code, body = do(t, c, "GET", revocations, "", "Authorization", "Bearer "+adminToken)
	if code != http.StatusOK || !strings.Contains(body, `"entry":"alice.wang@example.com"`) {
		t.Errorf("GET /revocations = %d %s, want alice listed", code, body)
	}

	// A static entry in policy data works the same way, and cannot be removed at run time.
	editPolicyData(t, dir, func(data map[string]any) { data["revoked"] = []any{"005000000000002AAA"} })
	if err := a.policy.Reload(context.Background()); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if code, body := do(t, c, "GET", customers, "", "Authorization", "Bearer "+bobToken); code != http.StatusForbidden || !strings.Contains(body, "access revoked") {
		t.Errorf("GET customers as bob listed in data.veil.revoked = %d %s, want 403 access revoked", code, body)
	}
	if code, _ := do(t, c, "DELETE", revocations+"?entry=005000000000002AAA", "", "Authorization", "Bearer "+adminToken); code != http.StatusConflict {
		t.Errorf("DELETE a data.veil.revoked entry = %d, want 409", code)
	}

	recs := auditRecords(t, filepath.Join(dir, "audit.jsonl"))
	var changes []audit.Record
	for _, r := range recs {
		if r.Resource == "revocations" {
			changes = append(changes, r)
		}
	}
	want := []audit.Record{
		{Action: "revoke", Decision: audit.DecisionAllow, Status: 201, Method: "POST", Reason: "left the company",
			Extra: map[string]string{"entry": "alice.wang@example.com", "reason": "left the company"}},
		{Action: "unrevoke", Decision: audit.DecisionError, Status: 409, Method: "DELETE",
			Extra: map[string]string{"entry": "005000000000002aaa"}},
	}
	pick := func(r audit.Record) audit.Record {
		extra := map[string]string{"entry": r.Extra["entry"]}
		if r.Extra["reason"] != "" {
			extra["reason"] = r.Extra["reason"]
		}
		return audit.Record{Action: r.Action, Decision: r.Decision, Status: r.Status, Method: r.Method, Reason: r.Reason, Extra: extra}
	}
	var got []audit.Record
	for _, r := range changes {
		got = append(got, pick(r))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audited revocation changes mismatch (-want +got):\n%s", diff)
	}
	if len(changes) > 0 && changes[0].Extra["expires"] == "" {
		t.Errorf("revoke audit record %+v has no expiry", changes[0])
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", filepath.Join(dir, "audit.jsonl")}, &out, &errb); err != nil {
		t.Errorf("audit verify = %v %s%s", err, out.String(), errb.String())
	}
}

// auditRecords reads the audit log once every queued record has been written.
func auditRecords(t *testing.T, name string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs = recs[:0]
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("audit line %s: %v", sc.Bytes(), err)
			}
			recs = append(recs, r)
		}
		f.Close()
		// Every request above and both admin changes: at least 11 lines.
		if len(recs) >= 11 || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPKI is a CA with certificates it signed, written as PEM files.
type testPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	dir   string
}

func newTestPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, dir: dir}
	p.write(t, name+".pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue signs a certificate and returns it with its key, also written to name.pem/name.key.
func (p *testPKI) issue(t *testing.T, name string, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, name+".pem", "CERTIFICATE", der)
	p.write(t, name+".key", "EC PRIVATE KEY", kder)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServeMTLS serves the proxy port with TLS and takes the user from a verified client
// certificate; roles come from the directory.
func TestServeMTLS(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":[{"id":"c1","mobile":"13812345678"}]}`)
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	policyDir(t, dir, func(data map[string]any) {
		data["directory"] = map[string]any{"carol@example.com": map[string]any{"roles": []any{"cs_agent"}}}
	})
	pki := newTestPKI(t, dir, "staff-ca")
	pki.issue(t, "server", &x509.Certificate{
		Subject: pkix.Name{CommonName: "veil"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	carol := pki.issue(t, "carol", &x509.Certificate{
		Subject: pkix.Name{CommonName: "Carol", OrganizationalUnit: []string{"cs"}}, EmailAddresses: []string{"carol@example.com"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	other := newTestPKI(t, t.TempDir(), "other-ca")
	mallory := other.issue(t, "mallory", &x509.Certificate{
		Subject: pkix.Name{CommonName: "Mallory"}, EmailAddresses: []string{"carol@example.com"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})

	_, p, _ := veilAt(t, dir, `
policy: {dir: ./policies, watch: false}
audit: {file: ./audit.jsonl}
server:
  tls: {cert_file: server.pem, key_file: server.key, client_ca_file: staff-ca.pem}
identity:
  mtls: {user: email, department: ou}
routes:
  - name: crm
    path_prefix: /api/
    upstream: `+up.URL+`
    generic:
      resources:
        - {match: /api/customers, type: customers, records: data}
`, map[string]string{"VEIL_HASH_KEY": "k"})

	roots := x509.NewCertPool()
	roots.AddCert(pki.ca)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
		}}
	}
	url := "https://" + p + "/api/customers"
	if code, body := do(t, client(carol), "GET", url, ""); code != http.StatusOK || !strings.Contains(body, "138****5678") {
		t.Errorf("GET with carol's certificate = %d %s, want 200 masked", code, body)
	}
	if code, _ := do(t, client(), "GET", url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET without a client certificate = %d, want 401", code)
	}
	// A client sends only a certificate the server's CA list names; force Mallory's.
	forced := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mallory, nil }},
	}}
	if resp, err := forced.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("GET with a certificate from another CA = %d, want a handshake failure", resp.StatusCode)
	}
	if code, _ := do(t, client(mallory), "GET", url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET by a client whose only certificate the server does not accept = %d, want 401", code)
	}
	old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{carol}, MaxVersion: tls.VersionTLS11},
	}}
	if _, err := old.Get(url); err == nil {
		t.Error("GET over TLS 1.1 succeeded, want it refused")
	}
	// Go's TLS server answers plain HTTP with a 400.
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + p + "/api/customers"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port = %d, want 400", resp.StatusCode)
		}
	}
}

func TestParseDirectory(t *testing.T) {
	dir, err := parseDirectory(map[string]any{
		"0055g00000AbCdEAAV":    map[string]any{"roles": []any{"cs_agent"}, "department": "cs"},
		"Wang.Fang@Example.com": map[string]any{"roles": []any{"host"}, "name": "ignored"},
		"broken@example.com":    map[string]any{"roles": "ops_manager"},
		"Twice@example.com":     map[string]any{"roles": []any{"host"}},
		"twice@example.com":     map[string]any{"roles": []any{"security_admin"}},
	})
	for _, want := range []string{`["broken@example.com"]: roles is a string`, `several keys spell "twice@example.com"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseDirectory error = %v, want it to mention %s", err, want)
		}
	}
	tests := []struct {
		id, email string
		want      identity.DirectoryEntry
		ok        bool
	}{
		{"0055g00000AbCdEAAV", "", identity.DirectoryEntry{Roles: []string{"cs_agent"}, Department: "cs"}, true},
		{"0055G00000ABCDEAAV", "", identity.DirectoryEntry{}, false}, // ids match exactly
		{"005x", "wang.fang@example.com", identity.DirectoryEntry{Roles: []string{"host"}}, true},
		{"005x", "WANG.FANG@EXAMPLE.COM", identity.DirectoryEntry{Roles: []string{"host"}}, true},
		{"005x", "broken@example.com", identity.DirectoryEntry{}, true}, // listed, with no roles
		{"005x", "twice@example.com", identity.DirectoryEntry{}, false}, // ambiguous by e-mail
		{"twice@example.com", "", identity.DirectoryEntry{Roles: []string{"security_admin"}}, true},
		{"005x", "", identity.DirectoryEntry{}, false},
	}
	for _, tt := range tests {
		got, ok := dir.lookup(tt.id, tt.email)
		if ok != tt.ok || !cmp.Equal(got, tt.want) {
			t.Errorf("lookup(%q, %q) = %+v, %v, want %+v, %v", tt.id, tt.email, got, ok, tt.want, tt.ok)
		}
	}
	if _, err := parseDirectory([]any{"alice"}); err == nil {
		t.Error("parseDirectory(array) succeeded, want an error")
	}
	if d, err := parseDirectory(nil); err != nil || len(d.byID) != 0 {
		t.Errorf("parseDirectory(nil) = %v, %v, want an empty directory", d, err)
	}
	if got, err := parseRevoked([]any{"alice", 7.0, "bob"}); err == nil || !cmp.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("parseRevoked = %v, %v, want [alice bob] and an error for the number", got, err)
	}
}

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin-token")
	os.WriteFile(file, []byte("from-a-file-0123456789\n"), 0o600)
	long := "0123456789abcdef"
	tests := []struct {
		name    string
		rc      config.RevocationsConfig
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"default variable unset: endpoint off", config.RevocationsConfig{}, nil, "", false},
		{"default variable", config.RevocationsConfig{}, map[string]string{"VEIL_ADMIN_TOKEN": long}, long, false},
		{"named variable unset", config.RevocationsConfig{AdminTokenEnv: "OPS_TOKEN"}, nil, "", true},
		{"named variable", config.RevocationsConfig{AdminTokenEnv: "OPS_TOKEN"}, map[string]string{"OPS_TOKEN": long}, long, false},
		{"file", config.RevocationsConfig{AdminTokenFile: "admin-token"}, nil, "from-a-file-0123456789", false},
		{"too short", config.RevocationsConfig{}, map[string]string{"VEIL_ADMIN_TOKEN": "short"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := adminToken(tt.rc, &buildOptions{baseDir: dir, getenv: envOf(tt.env)})
			if (err != nil) != tt.wantErr || string(got) != tt.want {
				t.Errorf("adminToken = %q, %v, want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestUpstreamAuthStripsTheProfileCredential: on a route whose upstream_token profile reads
// a custom header, that header never reaches the upstream once Veil's credential replaces it.
func TestUpstreamAuthStripsTheProfileCredential(t *testing.T) {
	cfg, err := config.Parse("veil.yaml", []byte(`
identity:
  api_keys:
    header: X-Veil-Key
    keys: [{user: etl, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}]
routes:
  - name: crm
    path_prefix: /api/
    upstream: http://127.0.0.1:1
    identity: [api_keys, upstream_token]
    upstream_token:
      profile: generic
      url: /api/me
      credentials: [{header: X-Session}]
      id: [uid]
      directory_only: true
    upstream_auth:
      static: {header: X-Service-Key, value_env: SVC}
      strip_headers: [X-Legacy-Auth]
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := upstreamAuth(cfg, cfg.Routes[0], &buildOptions{getenv: envOf(map[string]string{"SVC": "service"})})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/x?access_token=t&page=2", nil)
	for _, h := range []string{"X-Session", "X-Veil-Key", "X-Legacy-Auth", "Authorization", "Cookie", "X_Api_Key"} {
		req.Header.Set(h, "client-credential")
	}
	req.Header.Set("Accept", "application/json")
	if err := r.Apply(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Accept": {"application/json"}, "X-Service-Key": {"service"}}
	if diff := cmp.Diff(want, req.Header); diff != "" {
		t.Errorf("headers after Apply mismatch (-want +got):\n%s", diff)
	}
	if req.URL.RawQuery != "page=2" {
		t.Errorf("query after Apply = %q, want page=2", req.URL.RawQuery)
	}
}

func TestCheckRefusesBrokenDirectory(t *testing.T) {
	dir := t.TempDir()
	policyDir(t, dir, func(data map[string]any) {
		data["directory"] = map[string]any{"alice": map[string]any{"roles": "cs_agent"}}
	})
	cfgFile := filepath.Join(dir, "veil.yaml")
	os.WriteFile(cfgFile, []byte(`
policy: {dir: ./policies}
identity:
  trusted_headers: {trusted_peers: [127.0.0.1]}
routes:
  - name: crm
    path_prefix: /api/
    upstream: http://127.0.0.1:8081
`), 0o644)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"check", "-c", cfgFile}, &out, &errb)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(err.Error(), `data.veil.directory["alice"]: roles is a string`) {
		t.Fatalf("check with a broken directory entry = exit %d, %v; want 1 naming the entry", code, err)
	}
}

func TestExplainTakesRolesFromTheDirectory(t *testing.T) {
	dir := t.TempDir()
	policyDir(t, dir, func(data map[string]any) {
		data["directory"] = map[string]any{"wang.fang@example.com": map[string]any{"roles": []any{"contractor"}}}
		data["revoked"] = []any{"departed@example.com"}
	})
	cfgFile := filepath.Join(dir, "veil.yaml")
	os.WriteFile(cfgFile, []byte(`
policy: {dir: ./policies}
identity:
  trusted_headers: {trusted_peers: [127.0.0.1]}
routes:
  - name: crm
    path_prefix: /api/
    upstream: http://127.0.0.1:8081
    generic:
      resources:
        - {match: /api/customers, type: customers, records: data}
`), 0o644)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"explain", "-c", cfgFile, "--user", "005x", "--email", "Wang.Fang@example.com", "GET", "/api/customers"}, &out, &errb); err != nil {
		t.Fatalf("explain = %v %s", err, errb.String())
	}
	for _, want := range []string{"roles=contractor", "(from data.veil.directory)", "DENY"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"explain", "-c", cfgFile, "--user", "departed@example.com", "--roles", "cs_agent", "GET", "/api/customers"}, &out, &errb); err != nil {
		t.Fatalf("explain = %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "REVOKED") {
		t.Errorf("explain for a revoked user lacks REVOKED:\n%s", out.String())
	}
}

// TestRevocationsSharedThroughRedis: two replicas share the limits Redis; a revocation made
// on one replica's admin endpoint is enforced by the other within about a second.
func TestRevocationsSharedThroughRedis(t *testing.T) {
	redisURL, prefix := redistest.URL(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":[{"id":"c1","level":"gold"}]}`)
	}))
	t.Cleanup(up.Close)
	const adminToken = "admin-token-0123456789"
	yaml := `
audit: {file: ./audit.jsonl}
limits: {redis_url: "` + redisURL + `"}
identity:
  trusted_headers: {trusted_peers: [127.0.0.1]}
  revocations: {prefix: "` + prefix + `", poll: 200ms, max_stale: 5s}
routes:
  - name: crm
    path_prefix: /api/
    upstream: ` + up.URL + `
    generic:
      resources:
        - {match: /api/customers, type: customers, records: data}
`
	env := map[string]string{"VEIL_HASH_KEY": "k", "VEIL_ADMIN_TOKEN": adminToken}
	_, _, adminA := veilAt(t, t.TempDir(), yaml, env)
	_, proxyB, _ := veilAt(t, t.TempDir(), yaml, env)
	c := &http.Client{Timeout: 10 * time.Second}
	customers := "http://" + proxyB + "/api/customers"
	if code, body := do(t, c, "GET", customers, "", "X-Veil-User", "alice", "X-Veil-Roles", "cs_agent"); code != http.StatusOK {
		t.Fatalf("GET on replica B before the revocation = %d %s, want 200", code, body)
	}
	if code, body := do(t, c, "POST", "http://"+adminA+"/revocations", `{"entry":"alice"}`, "Authorization", "Bearer "+adminToken); code != http.StatusCreated {
		t.Fatalf("POST /revocations on replica A = %d %s, want 201", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := do(t, c, "GET", customers, "", "X-Veil-User", "alice", "X-Veil-Roles", "cs_agent")
		if code == http.StatusForbidden && strings.Contains(body, "access revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET on replica B after the revocation on A = %d %s, want 403 access revoked within 5s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
