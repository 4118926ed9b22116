package upstreamauth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of the token injectors.
const (
	DefaultRefreshBefore = time.Minute
	DefaultRetryAfter    = time.Second
	defaultTokenTimeout  = 10 * time.Second
	maxTokenAnswer       = 1 << 20
)

// Grants an OAuth2Config may use.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// OAuth2Config configures an OAuth 2.0 access token that Veil obtains and refreshes itself.
type OAuth2Config struct {
	// Grant is "client_credentials" (zero; RFC 6749 §4.4: Salesforce's client credentials
	// flow, most IdPs) or "refresh_token" (§6: a long-lived refresh token issued to the
	// service account, as Zoho's self client issues).
	Grant string
	// TokenURL is the token endpoint: https, or http to a loopback host. Required.
	TokenURL string
	// ClientID and ClientSecret identify Veil to the token endpoint (the secret from the
	// environment or a file, never from the configuration file). ClientID is required.
	ClientID, ClientSecret string
	// RefreshToken is the service account's refresh token; required for Grant
	// "refresh_token". When the endpoint rotates it, the new one is used from then on (it is
	// not written back anywhere: after a restart the configured one must still be valid).
	RefreshToken string
	// Scopes requested, if any.
	Scopes []string
	// Params are extra form parameters sent to the token endpoint (audience, resource).
	Params url.Values
	// AuthStyle says how the client authenticates: "" tries HTTP Basic and then form
	// parameters, "header" uses HTTP Basic, "params" puts client_id and client_secret in
	// the form.
	AuthStyle string
	// Header receives the token. Zero: "Authorization".
	Header string
	// Scheme precedes the token in Header ("Bearer", "Zoho-oauthtoken"). Zero: "Bearer" on
	// Authorization, nothing on any other header.
	Scheme string
	// RefreshBefore is how long before its expiry a token is replaced. Zero: 1m.
	RefreshBefore time.Duration
	// RetryAfter is how long requests fail fast after the token endpoint failed, before it is
	// asked again. Zero: 1s.
	RetryAfter time.Duration
	// HTTPClient calls the token endpoint. Nil: a client with a 10s timeout.
	HTTPClient *http.Client
}

// LarkConfig configures a Lark/Feishu tenant_access_token for a custom (self-built) app.
type LarkConfig struct {
	// BaseURL is the Open Platform host. Zero: https://open.feishu.cn (Lark international:
	// https://open.larksuite.com).
	BaseURL string
	// AppID and AppSecret are the app's credentials. Required.
	AppID, AppSecret string
	// RefreshBefore, RetryAfter and HTTPClient are as in OAuth2Config.
	RefreshBefore time.Duration
	RetryAfter    time.Duration
	HTTPClient    *http.Client
}

// Token injects an access token that Veil obtains from a token endpoint, caches, and
// replaces before it expires. Concurrent requests share one fetch. It is safe for concurrent
// use.
type Token struct {
	kind     string
	endpoint string
	clientID string
	header   string
	scheme   string
	src      oauth2.TokenSource
}

// NewOAuth2 returns a Token for c.
func NewOAuth2(c OAuth2Config) (*Token, error) {
	if err := checkSecureURL(c.TokenURL); err != nil {
		return nil, fmt.Errorf("upstreamauth: oauth2: token url: %w", err)
	}
	if c.ClientID == "" {
		return nil, errors.New("upstreamauth: oauth2: client id is required")
	}
	var style oauth2.AuthStyle
	switch c.AuthStyle {
	case "":
		style = oauth2.AuthStyleAutoDetect
	case "header":
		style = oauth2.AuthStyleInHeader
	case "params":
		style = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("upstreamauth: oauth2: auth style %q: want header or params", c.AuthStyle)
	}
	client := c.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTokenTimeout}
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	var fetch func() (*oauth2.Token, error)
	kind := cmp.Or(c.Grant, GrantClientCredentials)
	switch kind {
	case GrantClientCredentials:
		cc := &clientcredentials.Config{
			ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: c.TokenURL,
			Scopes: c.Scopes, EndpointParams: c.Params, AuthStyle: style,
		}
		fetch = func() (*oauth2.Token, error) { return cc.Token(ctx) }
	case GrantRefreshToken:
		if c.RefreshToken == "" {
			return nil, errors.New("upstreamauth: oauth2: grant refresh_token needs a refresh token")
		}
		if len(c.Params) > 0 {
			return nil, errors.New("upstreamauth: oauth2: params are only for grant client_credentials")
		}
		fetch = refreshFetcher(ctx, &oauth2.Config{
			ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes,
			Endpoint: oauth2.Endpoint{TokenURL: c.TokenURL, AuthStyle: style},
		}, c.RefreshToken)
	default:
		return nil, fmt.Errorf("upstreamauth: oauth2: grant %q: want client_credentials or refresh_token", c.Grant)
	}
	return newToken("oauth2 "+kind, c.TokenURL, c.ClientID, c.Header, c.Scheme, c.RefreshBefore, c.RetryAfter, fetch)
}

// refreshFetcher returns a fetch that redeems the refresh token, keeping a rotated one.
func refreshFetcher(ctx context.Context, conf *oauth2.Config, refreshToken string) func() (*oauth2.Token, error) {
	var mu sync.Mutex
	return func() (*oauth2.Token, error) {
		mu.Lock()
		defer mu.Unlock()
		// A new source each time: oauth2's own would hand back its cached token instead of
		// refreshing early.
		tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
		if err != nil {
			return nil, err
		}
		if tok.RefreshToken != "" {
			refreshToken = tok.RefreshToken
		}
		return tok, nil
	}
}

// NewLarkTenantToken returns a Token holding the app's tenant_access_token, obtained from
// POST <BaseURL>/open-apis/auth/v3/tenant_access_token/internal and sent as
// "Authorization: Bearer t-…".
func NewLarkTenantToken(c LarkConfig) (*Token, error) {
	base := strings.TrimSuffix(cmp.Or(c.BaseURL, "https://open.feishu.cn"), "/")
	endpoint := base + "/open-apis/auth/v3/tenant_access_token/internal"
	if err := checkSecureURL(endpoint); err != nil {
		return nil, fmt.Errorf("upstreamauth: lark: base url: %w", err)
	}
	if c.AppID == "" || c.AppSecret == "" {
		return nil, errors.New("upstreamauth: lark: app id and app secret are required")
	}
	client := c.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTokenTimeout}
	}
	body, err := json.Marshal(map[string]string{"app_id": c.AppID, "app_secret": c.AppSecret})
	if err != nil {
		return nil, fmt.Errorf("upstreamauth: lark: %w", err)
	}
	fetch := func() (*oauth2.Token, error) {
		req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer))
		if err != nil {
			return nil, fmt.Errorf("read answer: %w", err)
		}
		var ans struct {
			Code   int    `json:"code"`
			Msg    string `json:"msg"`
			Token  string `json:"tenant_access_token"`
			Expire int64  `json:"expire"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return nil, fmt.Errorf("status %d, answer is not JSON", resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK || ans.Code != 0 || ans.Token == "" {
			return nil, fmt.Errorf("status %d, code %d: %s", resp.StatusCode, ans.Code, ans.Msg)
		}
		tok := &oauth2.Token{AccessToken: ans.Token, TokenType: "Bearer"}
		if ans.Expire > 0 {
			tok.Expiry = time.Now().Add(time.Duration(ans.Expire) * time.Second)
		}
		return tok, nil
	}
	return newToken("lark tenant_access_token", endpoint, c.AppID, "", "", c.RefreshBefore, c.RetryAfter, fetch)
}

func newToken(kind, endpoint, clientID, header, scheme string, refreshBefore, retryAfter time.Duration, fetch func() (*oauth2.Token, error)) (*Token, error) {
	t := &Token{
		kind:     kind,
		endpoint: endpoint,
		clientID: clientID,
		header:   http.CanonicalHeaderKey(cmp.Or(strings.TrimSpace(header), "Authorization")),
		scheme:   strings.TrimSpace(scheme),
	}
	if !validHeaderName(t.header) {
		return nil, fmt.Errorf("upstreamauth: %s: %q is not a valid header name", kind, header)
	}
	if t.scheme == "" && t.header == "Authorization" {
		t.scheme = "Bearer"
	}
	if strings.ContainsAny(t.scheme, " \t") || checkValue(t.scheme) != nil {
		return nil, fmt.Errorf("upstreamauth: %s: scheme %q is not a single word", kind, scheme)
	}
	if refreshBefore < 0 || retryAfter < 0 {
		return nil, fmt.Errorf("upstreamauth: %s: negative duration", kind)
	}
	g := &guardedSource{fetch: fetch, retryAfter: cmp.Or(retryAfter, DefaultRetryAfter), now: time.Now}
	t.src = oauth2.ReuseTokenSourceWithExpiry(nil, g, cmp.Or(refreshBefore, DefaultRefreshBefore))
	return t, nil
}

// Apply sets the header to the current token, fetching a new one first when the cached one is
// missing or about to expire. The context cannot cancel a fetch already under way; the
// token endpoint's client timeout bounds it.
func (t *Token) Apply(_ context.Context, h http.Header) error {
	tok, err := t.src.Token()
	if err != nil {
		return fmt.Errorf("%s from %s: %w", t.kind, t.endpoint, safeTokenError(err))
	}
	if tok.AccessToken == "" || checkValue(tok.AccessToken) != nil || strings.ContainsAny(tok.AccessToken, " \t") {
		return fmt.Errorf("%s from %s: the endpoint returned an unusable token", t.kind, t.endpoint)
	}
	v := tok.AccessToken
	if t.scheme != "" {
		v = t.scheme + " " + v
	}
	h.Set(t.header, v)
	return nil
}

// LogValue describes the token source without any secret.
func (t *Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", t.kind), slog.String("endpoint", t.endpoint),
		slog.String("client_id", t.clientID), slog.String("header", t.header))
}

// safeTokenError keeps the status and OAuth error code of a token endpoint failure and drops
// the response body, which is the endpoint's to word and is not ours to log.
func safeTokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode != "" {
			return fmt.Errorf("token endpoint answered %d (%s)", status, re.ErrorCode)
		}
		return fmt.Errorf("token endpoint answered %d", status)
	}
	return err
}

// guardedSource fetches tokens, and after a failure answers with that failure for retryAfter
// instead of asking the endpoint again for every waiting request.
type guardedSource struct {
	fetch      func() (*oauth2.Token, error)
	retryAfter time.Duration
	now        func() time.Time

	mu       sync.Mutex
	lastErr  error
	lastFail time.Time
}

func (g *guardedSource) Token() (*oauth2.Token, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastErr != nil && g.now().Sub(g.lastFail) < g.retryAfter {
		return nil, g.lastErr
	}
	tok, err := g.fetch()
	if err != nil {
		g.lastErr, g.lastFail = err, g.now()
		return nil, err
	}
	g.lastErr = nil
	return tok, nil
}

// checkSecureURL accepts https URLs with a host, and http URLs to loopback hosts: a client
// secret sent over plain http on a network could be read in transit.
func checkSecureURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
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
		return fmt.Errorf("%q: http is allowed only to loopback hosts; use https", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}
