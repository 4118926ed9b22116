// Package upstreamauth replaces whatever credential a client sent with Veil's own service
// credential on requests to an upstream, so that staff never hold a credential that works
// without Veil.
package upstreamauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Injector adds Veil's service credential to the headers of a request to the upstream.
type Injector interface {
	Apply(ctx context.Context, h http.Header) error
}

// DefaultStripHeaders are removed from every request on a route with upstream_auth: the
// generic carriers of a client credential.
var defaultStripHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key"}

// defaultStripQuery are query parameters removed from every such request: the RFC 6750 §2.3
// bearer-token parameter.
var defaultStripQuery = []string{"access_token"}

// Strip returns the headers and query parameters that carry a client credential for the
// named adapter, beyond the generic ones every route strips (Authorization,
// Proxy-Authorization, Cookie, X-Api-Key and ?access_token=). Unknown adapters have none.
func Strip(adapter string) (headers, query []string) {
	switch adapter {
	case "nocodb":
		return []string{"Xc-Token", "Xc-Auth", "Xc-Shared-Base-Id", "Xc-Preview"}, nil
	case "salesforce":
		return nil, []string{"oauth_token"}
	case "sheets", "google", "googlesheets":
		return []string{"X-Goog-Api-Key"}, []string{"key"}
	case "kingdee":
		return []string{"App-Token", "X-Api-Clientid", "X-Api-Signature", "X-Api-Signheaders",
			"X-Api-Auth-Version", "X-Api-Timestamp", "X-Api-Nonce", "Kdservice-Sessionid"}, nil
	case "zoho", "lark", "feishu", "airtable", "jiandaoyun":
		return nil, nil // Authorization only, stripped for every route
	}
	return nil, nil
}

// Config says how one route's upstream requests are credentialed.
type Config struct {
	// Injector adds the service credential. Required.
	Injector Injector
	// Adapter adds its vendor's credential headers and parameters (see Strip) to those
	// removed. Zero: the generic ones only.
	Adapter string
	// StripHeaders and StripQuery name further headers and query parameters to remove
	// (Veil's own API-key header when it is not X-Api-Key, say). Names are matched
	// case-insensitively.
	StripHeaders []string
	StripQuery   []string
}

// Replacer removes the client's credential from a request and adds the service credential. It
// is safe for concurrent use.
type Replacer struct {
	inj     Injector
	headers []string // canonical
	query   []string // lower case
}

// New validates c and returns a Replacer.
func New(c Config) (*Replacer, error) {
	if c.Injector == nil {
		return nil, errors.New("upstreamauth: no injector")
	}
	r := &Replacer{inj: c.Injector}
	headers, query := Strip(c.Adapter)
	for _, h := range slices.Concat(defaultStripHeaders, headers, c.StripHeaders) {
		name := http.CanonicalHeaderKey(strings.TrimSpace(h))
		if !validHeaderName(name) {
			return nil, fmt.Errorf("upstreamauth: strip header %q is not a valid header name", h)
		}
		if !slices.Contains(r.headers, name) {
			r.headers = append(r.headers, name)
		}
	}
	for _, q := range slices.Concat(defaultStripQuery, query, c.StripQuery) {
		name := strings.ToLower(strings.TrimSpace(q))
		if name == "" {
			return nil, errors.New("upstreamauth: empty strip query parameter")
		}
		if !slices.Contains(r.query, name) {
			r.query = append(r.query, name)
		}
	}
	return r, nil
}

// Apply removes every client credential from r (the headers, and the query parameters, which
// are matched by their decoded names case-insensitively while the rest of the query is kept
// byte for byte) and then adds the service credential to r.Header. Call it on the request
// that goes to the upstream, after identity has read the client's credential. On error r
// must not be sent: it carries no credential at all.
func (rp *Replacer) Apply(ctx context.Context, r *http.Request) error {
	for key := range r.Header {
		if slices.Contains(rp.headers, http.CanonicalHeaderKey(strings.ReplaceAll(key, "_", "-"))) {
			delete(r.Header, key)
		}
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		r.URL.RawQuery = stripQuery(r.URL.RawQuery, rp.query)
		r.URL.ForceQuery = false
	}
	if err := rp.inj.Apply(ctx, r.Header); err != nil {
		return fmt.Errorf("upstreamauth: %w", err)
	}
	return nil
}

// stripQuery removes the parameters named in drop from a raw query, keeping the others as
// they are. A parameter whose name cannot be decoded is removed too: the upstream might
// decode it differently.
func stripQuery(raw string, drop []string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	changed := false
	for _, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		dec, err := url.QueryUnescape(name)
		if err != nil || slices.Contains(drop, strings.ToLower(strings.TrimSpace(dec))) {
			changed = true
			continue
		}
		kept = append(kept, p)
	}
	if !changed {
		return raw
	}
	return strings.Join(kept, "&")
}

// Static sets one header to a fixed value: an API key, a personal access token, "Bearer …".
type Static struct {
	header string
	value  string
}

// NewStatic returns an Injector setting header to value (read from the environment or a file
// by the caller, never from the configuration file).
func NewStatic(header, value string) (*Static, error) {
	name := http.CanonicalHeaderKey(strings.TrimSpace(header))
	if !validHeaderName(name) {
		return nil, fmt.Errorf("upstreamauth: static: %q is not a valid header name", header)
	}
	if value == "" {
		return nil, errors.New("upstreamauth: static: empty credential")
	}
	if err := checkValue(value); err != nil {
		return nil, fmt.Errorf("upstreamauth: static: credential: %w", err)
	}
	return &Static{header: name, value: value}, nil
}

// Apply sets the header.
func (s *Static) Apply(_ context.Context, h http.Header) error {
	h.Set(s.header, s.value)
	return nil
}

// LogValue names the header and hides the value.
func (s *Static) LogValue() slog.Value {
	return slog.GroupValue(slog.String("header", s.header), slog.Bool("value", s.value != ""))
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

// checkValue refuses values that cannot be a header value: control characters (CR and LF
// above all) would split the header.
func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("control character %#02x", c)
		}
	}
	return nil
}
