package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// maxDiscoveryDoc bounds the OpenID Provider configuration document.
const maxDiscoveryDoc = 1 << 20

// providerConfig is the part of an OpenID Provider configuration document (OpenID Connect
// Discovery 1.0 §3) that Veil reads.
type providerConfig struct {
	Issuer     string   `json:"issuer"`
	JWKSURI    string   `json:"jwks_uri"`
	SigningAlg []string `json:"id_token_signing_alg_values_supported"`
}

// signingAlgs returns the advertised signature algorithms that may be used with a JWKS, in
// the document's order.
func (p providerConfig) signingAlgs() []string {
	var algs []string
	for _, alg := range p.SigningAlg {
		if slices.Contains(asymmetricAlgs, alg) && !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
	}
	return algs
}

// discover fetches the issuer's configuration document and checks it: the issuer it names must
// be the configured issuer exactly (§4.3: otherwise an attacker-controlled document could
// vouch for another issuer's tokens), and jwks_uri must pass the same rules as a configured
// JWKS URL.
func discover(ctx context.Context, issuer string, client *http.Client) (providerConfig, error) {
	if err := checkSecureURL("issuer", issuer); err != nil {
		return providerConfig{}, fmt.Errorf("discovery: %w", err)
	}
	docURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return providerConfig{}, fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return providerConfig{}, fmt.Errorf("discovery: fetch %s: %w", docURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return providerConfig{}, fmt.Errorf("discovery: fetch %s: status %d", docURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryDoc+1))
	if err != nil {
		return providerConfig{}, fmt.Errorf("discovery: read %s: %w", docURL, err)
	}
	if len(body) > maxDiscoveryDoc {
		return providerConfig{}, fmt.Errorf("discovery: %s is larger than %d bytes", docURL, maxDiscoveryDoc)
	}
	var doc providerConfig
	if err := json.Unmarshal(body, &doc); err != nil {
		return providerConfig{}, fmt.Errorf("discovery: parse %s: %w", docURL, err)
	}
	if doc.Issuer != issuer {
		return providerConfig{}, fmt.Errorf("discovery: %s names issuer %q, want %q", docURL, doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return providerConfig{}, fmt.Errorf("discovery: %s has no jwks_uri", docURL)
	}
	if err := checkJWKSURL(doc.JWKSURI); err != nil {
		return providerConfig{}, fmt.Errorf("discovery: %w", err)
	}
	return doc, nil
}
