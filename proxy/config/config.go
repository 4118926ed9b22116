// Package config decodes and validates veil.yaml: unknown keys and bad values are errors that
// name the line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veilproxy/veil/proxy/identity"
)

// Config is the whole veil.yaml. Zero values take the defaults documented on each field
// (docs/configuration.md).
type Config struct {
	Listen      string         `yaml:"listen"`       // proxy address; "" = ":8080"
	AdminListen string         `yaml:"admin_listen"` // /healthz /readyz /metrics; "" = "127.0.0.1:9090"
	Server      ServerConfig   `yaml:"server"`
	Identity    IdentityConfig `yaml:"identity"`
	Policy      PolicyConfig   `yaml:"policy"`
	Limits      LimitsConfig   `yaml:"limits"`
	Audit       AuditConfig    `yaml:"audit"`
	Tracing     TracingConfig  `yaml:"tracing"`
	Mask        MaskConfig     `yaml:"mask"`
	Log         LogConfig      `yaml:"log"`
	Metrics     MetricsConfig  `yaml:"metrics"`
	Alerts      AlertsConfig   `yaml:"alerts"`
	Routes      []Route        `yaml:"routes"`

	// Source is the file the config came from, for messages.
	Source string `yaml:"-"`
}

// MetricsConfig configures the Prometheus metrics on the admin listener.
type MetricsConfig struct {
	// UserRecords adds veil_user_records_total{user,resource}: one series per member of staff
	// and resource. nil = on; turn off where staff count in the tens of thousands.
	UserRecords *bool `yaml:"user_records"`
}

// PerUser reports whether per-user record metrics are on.
func (m MetricsConfig) PerUser() bool { return m.UserRecords == nil || *m.UserRecords }

// AlertsConfig configures export-spike detection (docs/alerts.md): where alerts go and the
// containment admin API. The rules themselves are policy data (data.veil.alerts).
type AlertsConfig struct {
	// Enabled turns detection on; nil = true. Containment set by an admin is enforced
	// whatever this says.
	Enabled *bool    `yaml:"enabled"`
	Flush   Duration `yaml:"flush"` // how often summed events are judged; 0 = 2s
	Queue   int      `yaml:"queue"` // events waiting to be summed; 0 = 10000
	// AdminTokenEnv names the environment variable holding the bearer token of the
	// containment admin API (/admin/restrictions); "" = VEIL_ADMIN_TOKEN. The API is off
	// while the variable is unset.
	AdminTokenEnv string           `yaml:"admin_token_env"`
	Notifiers     []NotifierConfig `yaml:"notifiers"`
}

// On reports whether detection is enabled.
func (a AlertsConfig) On() bool { return a.Enabled == nil || *a.Enabled }

// NotifierConfig is one alert target. Its webhook URL and signing secret come from the
// environment or a file, never from veil.yaml.
type NotifierConfig struct {
	Name        string   `yaml:"name"`         // in metrics and logs; "" = the type
	Type        string   `yaml:"type"`         // dingtalk | wecom | feishu | lark | slack | webhook | console
	URLEnv      string   `yaml:"url_env"`      // environment variable holding the webhook URL
	URLFile     string   `yaml:"url_file"`     // or a file holding it
	SecretEnv   string   `yaml:"secret_env"`   // signing secret (dingtalk, feishu, lark, webhook)
	SecretFile  string   `yaml:"secret_file"`  // or a file holding it
	Lang        string   `yaml:"lang"`         // zh-CN | en; "" = data.veil.alerts.lang
	MinSeverity string   `yaml:"min_severity"` // info (default) | warning | critical
	Rules       []string `yaml:"rules"`        // only these rules; none = every rule
	Departments []string `yaml:"departments"`  // only alerts about these departments; none = all
}

// Alert rule names a notifier may filter on (data.veil.alerts).
var alertRules = []string{"volume", "baseline", "first_export", "after_hours", "budget", "probing"}

// ServerConfig holds the listener's timeouts and size limits. Go's http.Server has none by
// default; Veil always sets them.
type ServerConfig struct {
	ReadHeaderTimeout      Duration `yaml:"read_header_timeout"`      // 0 = 10s
	ReadTimeout            Duration `yaml:"read_timeout"`             // whole request incl. body; 0 = 60s
	WriteTimeout           Duration `yaml:"write_timeout"`            // 0 = none (long exports stream); per-route timeout bounds upstream time
	IdleTimeout            Duration `yaml:"idle_timeout"`             // 0 = 120s
	UpstreamHeaderTimeout  Duration `yaml:"upstream_header_timeout"`  // 0 = 30s
	UpstreamIdleTimeout    Duration `yaml:"upstream_idle_timeout"`    // body read idle; 0 = 30s
	MaxHeaderBytes         ByteSize `yaml:"max_header_bytes"`         // 0 = 64 KiB
	MaxRequestBody         ByteSize `yaml:"max_request_body"`         // 0 = 10 MiB
	MaxResponseBody        ByteSize `yaml:"max_response_body"`        // decoded bytes Veil buffers to rewrite; 0 = 64 MiB
	MaxRecordBytes         ByteSize `yaml:"max_record_bytes"`         // one record while streaming; 0 = 16 MiB
	StreamThreshold        ByteSize `yaml:"stream_threshold"`         // responses larger (or of unknown length) stream record by record; 0 = 1 MiB
	MaxJSONDepth           int      `yaml:"max_json_depth"`           // 0 = 512
	ShutdownTimeout        Duration `yaml:"shutdown_timeout"`         // graceful drain; 0 = 20s
	MaxConcurrentUpstreams int      `yaml:"max_concurrent_upstreams"` // per host idle/active conns; 0 = 256
	// TLS makes the proxy listener serve HTTPS, and verify client certificates for the mtls
	// identity mode. nil = plain HTTP (TLS terminated in front of Veil).
	TLS *TLSConfig `yaml:"tls"`
}

// Client-certificate policies of TLSConfig.ClientAuth.
const (
	ClientAuthNone          = "none"            // no client certificate is asked for
	ClientAuthRequest       = "request"         // asked for, never verified: no use to the mtls mode
	ClientAuthVerifyIfGiven = "verify_if_given" // optional, verified against client_ca_file when sent
	ClientAuthRequire       = "require"         // required and verified: every client needs one
)

// TLSConfig is the proxy listener's TLS. The minimum protocol version is TLS 1.2.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`      // required: PEM certificate chain, leaf first
	KeyFile      string `yaml:"key_file"`       // required: PEM private key
	ClientCAFile string `yaml:"client_ca_file"` // PEM CA certificates that sign client certificates; "" = none
	// ClientAuth is none, request, verify_if_given or require; "" = verify_if_given with a
	// client_ca_file, none without.
	ClientAuth string `yaml:"client_auth"`
}

// IdentityConfig lists the identity modes; each nil mode is off. The upstream_token mode is
// configured per route (Route.UpstreamToken); UpstreamToken here holds its shared settings.
type IdentityConfig struct {
	JWT            *JWTConfig            `yaml:"jwt"`
	TrustedHeaders *TrustedHeadersConfig `yaml:"trusted_headers"`
	APIKeys        *APIKeysConfig        `yaml:"api_keys"`
	MTLS           *MTLSConfig           `yaml:"mtls"`
	// UpstreamToken holds the cache and failure settings every route's upstream_token
	// resolver shares.
	UpstreamToken UpstreamTokenConfig `yaml:"upstream_token"`
	// Revocations configures the revocation list every mode is checked against.
	Revocations RevocationsConfig `yaml:"revocations"`
}

// MTLSConfig takes the user from a client certificate the TLS listener verified
// (server.tls.client_ca_file).
type MTLSConfig struct {
	User          string `yaml:"user"`           // cn (default) | email | uri | dns
	URIPrefix     string `yaml:"uri_prefix"`     // with user: uri, the prefix selecting (and cut from) the URI SAN
	Department    string `yaml:"department"`     // "ou": the subject's first organizational unit; "" = none
	DirectoryOnly bool   `yaml:"directory_only"` // refuse (403) users data.veil.directory does not list
}

// UpstreamTokenConfig is shared by the upstream_token resolvers of every route.
type UpstreamTokenConfig struct {
	CacheTTL      Duration `yaml:"cache_ttl"`      // how long an identity answer is reused; 0 = 5m
	CacheSize     int      `yaml:"cache_size"`     // answers kept per route; 0 = 10000
	RejectTTL     Duration `yaml:"reject_ttl"`     // how long a rejected token is remembered; 0 = 30s
	Timeout       Duration `yaml:"timeout"`        // one identity call; 0 = 10s
	MaxConcurrent int      `yaml:"max_concurrent"` // identity calls in flight per route; 0 = 16
	OnError       string   `yaml:"on_error"`       // identity call failed: deny (default, 503) | stale
	StaleTTL      Duration `yaml:"stale_ttl"`      // with on_error stale, how long past cache_ttl an answer serves; 0 = 1h
}

// RevocationsConfig configures the revocation list (data.veil.revoked plus the entries
// operators add through the admin endpoint).
type RevocationsConfig struct {
	// Redis shares the run-time list between replicas through limits.redis_url. nil = true
	// when limits.redis_url is set; false keeps the list in the process (one replica only).
	Redis    *bool    `yaml:"redis"`
	Prefix   string   `yaml:"prefix"`    // Redis key prefix; "" = "veil"
	Poll     Duration `yaml:"poll"`      // re-read interval besides pub/sub announcements; 0 = 1s
	MaxStale Duration `yaml:"max_stale"` // how old the local copy may get while Redis is down; 0 = 10s
	OnError  string   `yaml:"on_error"`  // list unreadable: deny (default, 503) | allow
	// AdminTokenEnv names the environment variable holding the admin endpoint's bearer token.
	// "" = VEIL_ADMIN_TOKEN, and the endpoint is off while that variable is unset; a variable
	// named here must be set.
	AdminTokenEnv  string   `yaml:"admin_token_env"`
	AdminTokenFile string   `yaml:"admin_token_file"` // or a file holding the token
	MaxTTL         Duration `yaml:"max_ttl"`          // cap on the ttl an operator may give; 0 = none
}

// UseRedis reports whether the run-time revocation list lives in Redis.
func (r RevocationsConfig) UseRedis() bool { return r.Redis != nil && *r.Redis }

// JWTConfig verifies bearer JWTs. Exactly one key source: jwks_file, jwks_url,
// secret_env/secret_file (HS256) or discovery.
type JWTConfig struct {
	Issuer     string      `yaml:"issuer"`
	Audience   string      `yaml:"audience"`
	Discovery  bool        `yaml:"discovery"` // OpenID Connect discovery: keys from <issuer>/.well-known/openid-configuration
	JWKSFile   string      `yaml:"jwks_file"`
	JWKSURL    string      `yaml:"jwks_url"`
	SecretEnv  string      `yaml:"secret_env"`  // environment variable holding the HS256 secret
	SecretFile string      `yaml:"secret_file"` // or a file holding it
	Algorithms []string    `yaml:"algorithms"`  // allow-list; default by key source
	Claims     ClaimsNames `yaml:"claims"`
	Leeway     Duration    `yaml:"leeway"` // 0 = 30s
}

// ClaimsNames says which claim holds each user attribute; "" takes the default shown.
type ClaimsNames struct {
	User       string `yaml:"user"`       // "sub"
	Roles      string `yaml:"roles"`      // "roles"
	Department string `yaml:"department"` // "department"
	Email      string `yaml:"email"`      // "email"
}

// TrustedHeadersConfig honours identity headers set by an SSO proxy in front of Veil, only from
// the listed peers.
type TrustedHeadersConfig struct {
	User         string   `yaml:"user"`       // "X-Veil-User"
	Roles        string   `yaml:"roles"`      // "X-Veil-Roles", comma-separated
	Department   string   `yaml:"department"` // "X-Veil-Department"
	Email        string   `yaml:"email"`      // "X-Veil-Email"
	TrustedPeers []string `yaml:"trusted_peers"`
}

// APIKeysConfig maps static API keys to users. Keys are never written in the config: each comes
// from an environment variable, a file, or is given as its SHA-256.
type APIKeysConfig struct {
	Header string   `yaml:"header"` // "X-Api-Key"
	Keys   []APIKey `yaml:"keys"`
}

// APIKey is one static key and the user it stands for.
type APIKey struct {
	User       string   `yaml:"user"`
	Roles      []string `yaml:"roles"`
	Department string   `yaml:"department"`
	KeyEnv     string   `yaml:"key_env"`
	KeyFile    string   `yaml:"key_file"`
	KeySHA256  string   `yaml:"key_sha256"` // hex
}

// PolicyConfig says where the Rego policy lives.
type PolicyConfig struct {
	Dir     string `yaml:"dir"`      // "" = the policy built into the binary
	OnError string `yaml:"on_error"` // only "deny" is accepted: an undecided request is never forwarded
	Watch   *bool  `yaml:"watch"`    // hot reload on file change; nil = true when dir is set
}

// LimitsConfig configures the export-budget store.
type LimitsConfig struct {
	RedisURL     string   `yaml:"redis_url"`      // "" = in-process store (one instance only)
	PasswordEnv  string   `yaml:"password_env"`   // environment variable with the Redis password
	OnStoreError string   `yaml:"on_store_error"` // deny (default) | allow
	Timeout      Duration `yaml:"timeout"`        // per Redis call; 0 = 100ms
}

// AuditConfig configures the audit log.
type AuditConfig struct {
	File          string   `yaml:"file"`           // "" = ./veil-audit.jsonl
	MaxBytes      ByteSize `yaml:"max_bytes"`      // rotation size; 0 = 256 MiB
	FlushInterval Duration `yaml:"flush_interval"` // group commit; 0 = 50ms
	OnError       string   `yaml:"on_error"`       // for non-export reads when the log is broken: deny (default) | allow
}

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	Exporter    string   `yaml:"exporter"`     // none (default) | otlp | otlp-http | stdout | file
	Endpoint    string   `yaml:"endpoint"`     // otlp: host:port
	Insecure    bool     `yaml:"insecure"`     // otlp without TLS
	Path        string   `yaml:"path"`         // file: "" = ./veil-traces.jsonl
	SampleRatio *float64 `yaml:"sample_ratio"` // nil = 1; denied/limited/errored requests are always kept
}

// MaskConfig configures the mask engine's secrets.
type MaskConfig struct {
	HashKeyEnv  string `yaml:"hash_key_env"`  // "" = VEIL_HASH_KEY
	HashKeyFile string `yaml:"hash_key_file"` // or a file holding the key
}

// LogConfig configures the structured log on stderr.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Format string `yaml:"format"` // json (default) | text
}

// Route sends requests for a host and path prefix to one upstream through one adapter.
type Route struct {
	Name            string    `yaml:"name"`
	Host            string    `yaml:"host"` // "" = any host; matched without port, case-insensitively
	PathPrefix      string    `yaml:"path_prefix"`
	Upstream        string    `yaml:"upstream"`
	Adapter         string    `yaml:"adapter"` // "" = generic
	Generic         yaml.Node `yaml:"generic"` // the generic adapter's options
	Options         yaml.Node `yaml:"options"` // other adapters' tenant options
	Identity        []string  `yaml:"identity"`
	OnStoreError    string    `yaml:"on_store_error"` // "" = limits.on_store_error
	Mode            string    `yaml:"mode"`           // "" = what the policy says; enforce | monitor forces it
	Timeout         Duration  `yaml:"timeout"`        // whole upstream exchange; 0 = 60s
	CaseInsensitive bool      `yaml:"case_insensitive"`
	// UpstreamToken configures the upstream_token identity mode on this route: the route
	// asks its upstream who the client's own vendor token belongs to. nil = off.
	UpstreamToken *UpstreamToken `yaml:"upstream_token"`
	// UpstreamAuth replaces the client's credential with Veil's service credential on
	// requests to the upstream. nil = the client's credential is forwarded.
	UpstreamAuth *UpstreamAuth `yaml:"upstream_auth"`
}

// UpstreamToken is one route's upstream_token mode: a built-in profile, adjusted by the
// non-zero override fields (see identity.Profile for what each means).
type UpstreamToken struct {
	Profile       string              `yaml:"profile"`        // required: salesforce | zoho | lark | nocodb | airtable | generic
	Tenant        string              `yaml:"tenant"`         // refuse tokens of any other tenant (organisation)
	RoleMap       map[string][]string `yaml:"role_map"`       // vendor role ⇒ Veil roles; nil = vendor roles as they are
	DirectoryOnly bool                `yaml:"directory_only"` // refuse (403) users data.veil.directory does not list

	Method        string            `yaml:"method"`         // GET (default) | POST
	URL           string            `yaml:"url"`            // identity call: absolute, or a path under the upstream
	Credentials   []TokenCredential `yaml:"credentials"`    // where the token arrives
	ID            []string          `yaml:"id"`             // gjson paths to the user id
	Email         []string          `yaml:"email"`          // paths to the e-mail
	Name          []string          `yaml:"name"`           // paths to the display name
	Department    []string          `yaml:"department"`     // paths to the department
	Roles         []string          `yaml:"roles"`          // paths to the vendor roles
	TenantPath    string            `yaml:"tenant_path"`    // path to the tenant
	Claims        map[string]string `yaml:"claims"`         // claim name ⇒ path, into input.user.claims
	RejectStatus  []int             `yaml:"reject_status"`  // statuses meaning "invalid token"; zero: 401, 403
	ResultPath    string            `yaml:"result_path"`    // path to a result code in the answer
	ResultOK      string            `yaml:"result_ok"`      // the result code of a valid answer
	RejectResults []string          `yaml:"reject_results"` // result codes meaning "invalid token"
	Strip         []string          `yaml:"strip"`          // request headers removed once the token is resolved
}

// TokenCredential is a place a vendor token arrives in.
type TokenCredential struct {
	Header string `yaml:"header"` // "" = Authorization
	Scheme string `yaml:"scheme"` // "" = Bearer on Authorization, the whole value on other headers
}

// IdentityProfile returns the route's profile: the built-in one with the overrides applied.
// ok is false for an unknown profile name.
func (u *UpstreamToken) IdentityProfile() (identity.Profile, bool) {
	p, ok := identity.BuiltinProfile(u.Profile)
	if !ok {
		return identity.Profile{}, false
	}
	o := identity.Profile{
		Method: u.Method, URL: u.URL, ID: u.ID, Email: u.Email, DisplayName: u.Name,
		Department: u.Department, Roles: u.Roles, Tenant: u.TenantPath, Claims: u.Claims,
		RejectStatus: u.RejectStatus, ResultPath: u.ResultPath, ResultOK: u.ResultOK,
		RejectResults: u.RejectResults, Strip: u.Strip,
	}
	for _, c := range u.Credentials {
		o.Credentials = append(o.Credentials, identity.Credential{Header: c.Header, Scheme: c.Scheme})
	}
	return p.Override(o), true
}

// UpstreamAuth is one route's service credential: exactly one of Static, OAuth2 and Lark.
type UpstreamAuth struct {
	Static *StaticAuth `yaml:"static"`
	OAuth2 *OAuth2Auth `yaml:"oauth2"`
	Lark   *LarkAuth   `yaml:"lark"`
	// StripHeaders and StripQuery name further client credentials to remove, beyond the
	// generic ones (Authorization, Proxy-Authorization, Cookie, X-Api-Key, ?access_token=)
	// and the adapter's.
	StripHeaders []string `yaml:"strip_headers"`
	StripQuery   []string `yaml:"strip_query"`
}

// StaticAuth sets one header to a secret from the environment or a file.
type StaticAuth struct {
	Header    string `yaml:"header"`     // required
	Scheme    string `yaml:"scheme"`     // put before the secret ("Bearer"); "" = the secret is the whole value
	ValueEnv  string `yaml:"value_env"`  // environment variable with the secret
	ValueFile string `yaml:"value_file"` // or a file holding it
}

// OAuth2Auth is an OAuth 2.0 access token Veil obtains and refreshes itself.
type OAuth2Auth struct {
	Grant            string            `yaml:"grant"`     // client_credentials (default) | refresh_token
	TokenURL         string            `yaml:"token_url"` // required: https (http only to a loopback host)
	ClientID         string            `yaml:"client_id"` // required
	ClientSecretEnv  string            `yaml:"client_secret_env"`
	ClientSecretFile string            `yaml:"client_secret_file"`
	RefreshTokenEnv  string            `yaml:"refresh_token_env"` // grant refresh_token: the service account's refresh token
	RefreshTokenFile string            `yaml:"refresh_token_file"`
	Scopes           []string          `yaml:"scopes"`
	Params           map[string]string `yaml:"params"`         // extra token request parameters (client_credentials only)
	AuthStyle        string            `yaml:"auth_style"`     // "" = try both | header | params
	Header           string            `yaml:"header"`         // "" = Authorization
	Scheme           string            `yaml:"scheme"`         // "" = Bearer on Authorization, nothing elsewhere
	RefreshBefore    Duration          `yaml:"refresh_before"` // 0 = 1m
	RetryAfter       Duration          `yaml:"retry_after"`    // fail fast after an endpoint failure; 0 = 1s
}

// LarkAuth is a Lark/Feishu app's tenant_access_token.
type LarkAuth struct {
	BaseURL       string   `yaml:"base_url"` // "" = https://open.feishu.cn
	AppID         string   `yaml:"app_id"`   // required
	AppSecretEnv  string   `yaml:"app_secret_env"`
	AppSecretFile string   `yaml:"app_secret_file"`
	RefreshBefore Duration `yaml:"refresh_before"` // 0 = 1m
	RetryAfter    Duration `yaml:"retry_after"`    // 0 = 1s
}

// AdapterOptions returns the node holding this route's adapter options and its key.
func (r *Route) AdapterOptions() (*yaml.Node, string) {
	if r.Generic.Kind != 0 {
		return &r.Generic, "generic"
	}
	return &r.Options, "options"
}

// Duration is a time.Duration written "30s", "5m", "1h" or "7d".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil || v < 0 {
		return lineError(n, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 1h, 7d)", n.Value))
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses Go durations plus a whole-day suffix "d".
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// ByteSize is a size written as a number of bytes or with a KiB/MiB/GiB (or KB/MB/GB) suffix.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	var v int64
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil || fmt.Sprint(v) != s || v < 0 {
		return lineError(n, fmt.Errorf("invalid size %q (want e.g. 65536, 64KiB, 10MiB)", n.Value))
	}
	*b = ByteSize(v * mult)
	return nil
}

// Error is a configuration problem at a line of the file.
type Error struct {
	File string
	Line int
	Path string // dotted path of the offending key, e.g. routes[0].upstream
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d: ", e.Line)
	} else if e.File != "" {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func lineError(n *yaml.Node, err error) error {
	return &Error{Line: n.Line, Msg: err.Error()}
}

// Parse decodes and validates a configuration. name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		e := parseYAMLMsg(err.Error())
		e.File = name
		return nil, e
	}
	var cfg Config
	if err := DecodeStrict(&root, &cfg); err != nil {
		return nil, withFile(name, err)
	}
	cfg.Source = name
	cfg.applyDefaults()
	if errs := cfg.validate(&root); len(errs) > 0 {
		for _, e := range errs {
			e.File = name
		}
		return nil, errs
	}
	return &cfg, nil
}

func withFile(name string, err error) error {
	var es Errors
	if errors.As(err, &es) {
		for _, e := range es {
			e.File = name
		}
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		e.File = name
		return e
	}
	return &Error{File: name, Msg: err.Error()}
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, ":8080")
	def(&c.AdminListen, "127.0.0.1:9090")
	s := &c.Server
	defD := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defB := func(b *ByteSize, v int64) {
		if *b == 0 {
			*b = ByteSize(v)
		}
	}
	defD(&s.ReadHeaderTimeout, 10*time.Second)
	defD(&s.ReadTimeout, 60*time.Second)
	defD(&s.IdleTimeout, 120*time.Second)
	defD(&s.UpstreamHeaderTimeout, 30*time.Second)
	defD(&s.UpstreamIdleTimeout, 30*time.Second)
	defD(&s.ShutdownTimeout, 20*time.Second)
	defB(&s.MaxHeaderBytes, 64<<10)
	defB(&s.MaxRequestBody, 10<<20)
	defB(&s.MaxResponseBody, 64<<20)
	defB(&s.MaxRecordBytes, 16<<20)
	defB(&s.StreamThreshold, 1<<20)
	if s.MaxJSONDepth == 0 {
		s.MaxJSONDepth = 512
	}
	if s.MaxConcurrentUpstreams == 0 {
		s.MaxConcurrentUpstreams = 256
	}
	def(&c.Policy.OnError, "deny")
	def(&c.Limits.OnStoreError, "deny")
	defD(&c.Limits.Timeout, 100*time.Millisecond)
	def(&c.Audit.File, "./veil-audit.jsonl")
	defB(&c.Audit.MaxBytes, 256<<20)
	defD(&c.Audit.FlushInterval, 50*time.Millisecond)
	def(&c.Audit.OnError, "deny")
	def(&c.Tracing.Exporter, "none")
	if c.Tracing.Exporter == "file" {
		def(&c.Tracing.Path, "./veil-traces.jsonl")
	}
	def(&c.Mask.HashKeyEnv, "VEIL_HASH_KEY")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "json")
	if c.Identity.TrustedHeaders != nil {
		th := c.Identity.TrustedHeaders
		def(&th.User, "X-Veil-User")
		def(&th.Roles, "X-Veil-Roles")
		def(&th.Department, "X-Veil-Department")
		def(&th.Email, "X-Veil-Email")
	}
	if c.Identity.APIKeys != nil {
		def(&c.Identity.APIKeys.Header, "X-Api-Key")
	}
	if t := c.Server.TLS; t != nil && t.ClientAuth == "" {
		t.ClientAuth = ClientAuthNone
		if t.ClientCAFile != "" {
			t.ClientAuth = ClientAuthVerifyIfGiven
		}
	}
	if c.Identity.MTLS != nil {
		def(&c.Identity.MTLS.User, "cn")
	}
	ut := &c.Identity.UpstreamToken
	defD(&ut.CacheTTL, 5*time.Minute)
	defD(&ut.RejectTTL, 30*time.Second)
	defD(&ut.Timeout, 10*time.Second)
	defD(&ut.StaleTTL, time.Hour)
	if ut.CacheSize == 0 {
		ut.CacheSize = 10000
	}
	if ut.MaxConcurrent == 0 {
		ut.MaxConcurrent = 16
	}
	def(&ut.OnError, "deny")
	rv := &c.Identity.Revocations
	if rv.Redis == nil {
		useRedis := c.Limits.RedisURL != ""
		rv.Redis = &useRedis
	}
	def(&rv.Prefix, "veil")
	defD(&rv.Poll, time.Second)
	defD(&rv.MaxStale, 10*time.Second)
	def(&rv.OnError, "deny")
	al := &c.Alerts
	defD(&al.Flush, 2*time.Second)
	if al.Queue == 0 {
		al.Queue = 10000
	}
	def(&al.AdminTokenEnv, "VEIL_ADMIN_TOKEN")
	for i := range al.Notifiers {
		def(&al.Notifiers[i].Name, al.Notifiers[i].Type)
		def(&al.Notifiers[i].MinSeverity, "info")
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		def(&r.Adapter, "generic")
		defD(&r.Timeout, 60*time.Second)
		if r.OnStoreError == "" {
			r.OnStoreError = c.Limits.OnStoreError
		}
		if len(r.Identity) == 0 {
			r.Identity = c.Identity.Modes()
		}
	}
}

// Modes returns the identity modes configured at the top level, in the default order (jwt,
// trusted_headers, api_keys, mtls). upstream_token is never among them: a route that accepts
// it lists it.
func (ic IdentityConfig) Modes() []string {
	var m []string
	if ic.JWT != nil {
		m = append(m, identity.ModeJWT)
	}
	if ic.TrustedHeaders != nil {
		m = append(m, identity.ModeTrustedHeaders)
	}
	if ic.APIKeys != nil {
		m = append(m, identity.ModeAPIKeys)
	}
	if ic.MTLS != nil {
		m = append(m, identity.ModeMTLS)
	}
	return m
}

func (c *Config) validate(root *yaml.Node) Errors {
	var errs Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Error{Line: lineOf(root, path), Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	oneOf := func(path, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("policy.on_error", c.Policy.OnError, "deny")
	oneOf("limits.on_store_error", c.Limits.OnStoreError, "deny", "allow")
	oneOf("audit.on_error", c.Audit.OnError, "deny", "allow")
	oneOf("tracing.exporter", c.Tracing.Exporter, "none", "otlp", "otlp-http", "stdout", "file")
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "json", "text")
	if (c.Tracing.Exporter == "otlp" || c.Tracing.Exporter == "otlp-http") && c.Tracing.Endpoint == "" {
		bad("tracing.endpoint", "required for exporter %s", c.Tracing.Exporter)
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		bad("tracing.sample_ratio", "must be between 0 and 1")
	}
	if c.Limits.RedisURL != "" {
		if u, err := url.Parse(c.Limits.RedisURL); err != nil || u.Scheme == "" {
			bad("limits.redis_url", "invalid URL")
		} else if u.User != nil {
			if _, set := u.User.Password(); set {
				bad("limits.redis_url", "put the password in limits.password_env, not in the URL")
			}
		}
	}
	if j := c.Identity.JWT; j != nil {
		if j.Issuer == "" {
			bad("identity.jwt.issuer", "required")
		}
		if j.Audience == "" {
			bad("identity.jwt.audience", "required")
		}
		n := 0
		for _, s := range []string{j.JWKSFile, j.JWKSURL, j.SecretEnv, j.SecretFile} {
			if s != "" {
				n++
			}
		}
		if j.Discovery {
			n++
		}
		if n != 1 {
			bad("identity.jwt", "exactly one of jwks_file, jwks_url, secret_env, secret_file, discovery is required")
		}
		for i, a := range j.Algorithms {
			oneOf(fmt.Sprintf("identity.jwt.algorithms[%d]", i), a,
				"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
		}
	}
	if th := c.Identity.TrustedHeaders; th != nil {
		if len(th.TrustedPeers) == 0 {
			bad("identity.trusted_headers.trusted_peers", "required: identity headers are honoured only from these peers")
		}
		for i, p := range th.TrustedPeers {
			if _, err := ParsePeer(p); err != nil {
				bad(fmt.Sprintf("identity.trusted_headers.trusted_peers[%d]", i), "%v", err)
			}
		}
	}
	if ak := c.Identity.APIKeys; ak != nil {
		for i, k := range ak.Keys {
			p := fmt.Sprintf("identity.api_keys.keys[%d]", i)
			if k.User == "" {
				bad(p+".user", "required")
			}
			n := 0
			for _, s := range []string{k.KeyEnv, k.KeyFile, k.KeySHA256} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				bad(p, "exactly one of key_env, key_file, key_sha256 is required")
			}
			if k.KeySHA256 != "" && len(k.KeySHA256) != 64 {
				bad(p+".key_sha256", "must be 64 hex characters")
			}
		}
	}
	c.validateIdentity(bad, oneOf)
	c.validateAlerts(bad, oneOf)
	if len(c.Routes) == 0 {
		bad("routes", "at least one route is required")
	}
	names := map[string]bool{}
	modes := map[string]bool{}
	for _, m := range c.Identity.Modes() {
		modes[m] = true
	}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			bad(p+".name", "required")
		} else if names[r.Name] {
			bad(p+".name", "duplicate route name %q", r.Name)
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.PathPrefix, "/") {
			bad(p+".path_prefix", "must start with /")
		}
		if u, err := url.Parse(r.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(p+".upstream", "must be an http or https URL")
		} else if u.RawQuery != "" || u.Fragment != "" {
			bad(p+".upstream", "must not carry a query or fragment")
		}
		oneOf(p+".on_store_error", r.OnStoreError, "deny", "allow")
		if r.Mode != "" {
			oneOf(p+".mode", r.Mode, "enforce", "monitor")
		}
		if r.Generic.Kind != 0 && r.Options.Kind != 0 {
			bad(p, "use generic: or options:, not both")
		}
		if r.Generic.Kind != 0 && r.Adapter != "generic" {
			bad(p+".generic", "only for adapter generic (use options:)")
		}
		if len(r.Identity) == 0 {
			bad(p+".identity", "no identity mode configured: every route needs one")
		}
		for j, m := range r.Identity {
			switch {
			case m == identity.ModeUpstreamToken && r.UpstreamToken == nil:
				bad(fmt.Sprintf("%s.identity[%d]", p, j), "mode upstream_token needs an upstream_token: block on the route")
			case m != identity.ModeUpstreamToken && !modes[m]:
				bad(fmt.Sprintf("%s.identity[%d]", p, j), "mode %q is not configured under identity:", m)
			}
		}
		if r.UpstreamToken != nil {
			if !slices.Contains(r.Identity, identity.ModeUpstreamToken) {
				bad(p+".upstream_token", "set, but the route's identity does not list upstream_token")
			}
			r.validateUpstreamToken(c.Identity.UpstreamToken, p, bad)
		}
		if r.UpstreamAuth != nil {
			r.validateUpstreamAuth(p, bad)
		}
	}
	return errs
}

// validateIdentity checks the TLS listener, the mtls mode, the upstream_token defaults and
// the revocation list.
func (c *Config) validateIdentity(bad func(path, format string, args ...any), oneOf func(path, v string, allowed ...string)) {
	if t := c.Server.TLS; t != nil {
		if t.CertFile == "" {
			bad("server.tls.cert_file", "required")
		}
		if t.KeyFile == "" {
			bad("server.tls.key_file", "required")
		}
		oneOf("server.tls.client_auth", t.ClientAuth, ClientAuthNone, ClientAuthRequest, ClientAuthVerifyIfGiven, ClientAuthRequire)
		if (t.ClientAuth == ClientAuthVerifyIfGiven || t.ClientAuth == ClientAuthRequire) && t.ClientCAFile == "" {
			bad("server.tls.client_auth", "%s needs server.tls.client_ca_file to verify against", t.ClientAuth)
		}
	}
	if m := c.Identity.MTLS; m != nil {
		t := c.Server.TLS
		switch {
		case t == nil || t.ClientCAFile == "":
			bad("identity.mtls", "needs server.tls with client_ca_file: Veil reads only certificates its own listener verified")
		case t.ClientAuth != ClientAuthVerifyIfGiven && t.ClientAuth != ClientAuthRequire:
			bad("identity.mtls", "needs server.tls.client_auth verify_if_given or require (%s never verifies a certificate)", t.ClientAuth)
		}
		oneOf("identity.mtls.user", m.User, identity.CertCommonName, identity.CertEmail, identity.CertURI, identity.CertDNS)
		if m.URIPrefix != "" && m.User != identity.CertURI {
			bad("identity.mtls.uri_prefix", "only for user: uri")
		}
		if m.Department != "" {
			oneOf("identity.mtls.department", m.Department, "ou")
		}
	}
	ut := c.Identity.UpstreamToken
	oneOf("identity.upstream_token.on_error", ut.OnError, "deny", "stale")
	if ut.CacheSize < 0 {
		bad("identity.upstream_token.cache_size", "must not be negative")
	}
	if ut.MaxConcurrent < 0 {
		bad("identity.upstream_token.max_concurrent", "must not be negative")
	}
	rv := c.Identity.Revocations
	oneOf("identity.revocations.on_error", rv.OnError, "deny", "allow")
	if rv.UseRedis() && c.Limits.RedisURL == "" {
		bad("identity.revocations.redis", "needs limits.redis_url: the list is shared through the limits Redis")
	}
	if rv.UseRedis() && rv.MaxStale <= rv.Poll {
		bad("identity.revocations.max_stale", "must exceed poll (%s)", rv.Poll.D())
	}
	if rv.AdminTokenEnv != "" && rv.AdminTokenFile != "" {
		bad("identity.revocations", "admin_token_env or admin_token_file, not both")
	}
}

// validateAlerts checks the alerts block: every notifier has a known type, one source for
// its URL (none for console), at most one for its secret, and filters that can match.
func (c *Config) validateAlerts(bad func(path, format string, args ...any), oneOf func(path, v string, allowed ...string)) {
	al := c.Alerts
	if al.Flush.D() < 100*time.Millisecond || al.Flush.D() > time.Minute {
		bad("alerts.flush", "must be between 100ms and 1m")
	}
	if al.Queue < 0 || al.Queue > 10_000_000 {
		bad("alerts.queue", "must be between 1 and 10000000")
	}
	names := map[string]bool{}
	for i, n := range al.Notifiers {
		p := fmt.Sprintf("alerts.notifiers[%d]", i)
		oneOf(p+".type", n.Type, "dingtalk", "wecom", "feishu", "lark", "slack", "webhook", "console")
		if names[n.Name] {
			bad(p+".name", "duplicate notifier name %q", n.Name)
		}
		names[n.Name] = true
		switch {
		case n.URLEnv != "" && n.URLFile != "":
			bad(p, "url_env or url_file, not both")
		case n.Type == "console" && (n.URLEnv != "" || n.URLFile != ""):
			bad(p, "a console notifier has no URL")
		case n.Type != "console" && n.URLEnv == "" && n.URLFile == "":
			bad(p, "url_env or url_file is required: the webhook URL is a credential, never written in veil.yaml")
		}
		if n.SecretEnv != "" && n.SecretFile != "" {
			bad(p, "secret_env or secret_file, not both")
		}
		if (n.SecretEnv != "" || n.SecretFile != "") && (n.Type == "wecom" || n.Type == "slack" || n.Type == "console") {
			bad(p, "%s notifiers do not sign: remove secret_env/secret_file", n.Type)
		}
		if n.Lang != "" {
			oneOf(p+".lang", n.Lang, "zh-CN", "en")
		}
		oneOf(p+".min_severity", n.MinSeverity, "info", "warning", "critical")
		for j, r := range n.Rules {
			oneOf(fmt.Sprintf("%s.rules[%d]", p, j), r, alertRules...)
		}
		for j, d := range n.Departments {
			if strings.TrimSpace(d) == "" {
				bad(fmt.Sprintf("%s.departments[%d]", p, j), "must not be empty")
			}
		}
	}
}

// validateUpstreamToken checks a route's upstream_token block by building the resolver the
// route would get: every mistake the identity package would refuse at start is reported here
// with its line.
func (r *Route) validateUpstreamToken(shared UpstreamTokenConfig, p string, bad func(path, format string, args ...any)) {
	ut := r.UpstreamToken
	p += ".upstream_token"
	if ut.Profile == "" {
		bad(p+".profile", "required: one of %s", strings.Join(identity.BuiltinProfiles(), ", "))
		return
	}
	prof, ok := ut.IdentityProfile()
	if !ok {
		bad(p+".profile", "unknown profile %q (known: %s)", ut.Profile, strings.Join(identity.BuiltinProfiles(), ", "))
		return
	}
	if ut.Profile == identity.ProfileGeneric {
		if ut.URL == "" {
			bad(p+".url", "required for profile generic: the identity call")
		}
		if len(ut.ID) == 0 {
			bad(p+".id", "required for profile generic: where the answer names the user")
		}
		if ut.URL == "" || len(ut.ID) == 0 {
			return
		}
	}
	if ut.Tenant != "" && prof.Tenant == "" {
		bad(p+".tenant", "profile %s has no tenant in its answer; set tenant_path", ut.Profile)
		return
	}
	if r.UpstreamAuth != nil && ut.Tenant == "" && !ut.DirectoryOnly {
		bad(p, "the route also has upstream_auth, which would lend Veil's service credential to any account at the vendor: "+
			"set tenant (the organisation tokens must belong to) or directory_only: true")
	}
	up, err := url.Parse(r.Upstream)
	if err != nil {
		return // reported with the upstream
	}
	if _, err := identity.NewTokenResolver(identity.TokenResolverConfig{
		Profile: prof, Upstream: up, Tenant: ut.Tenant, RoleMap: ut.RoleMap, DirectoryOnly: ut.DirectoryOnly,
		CacheTTL: shared.CacheTTL.D(), CacheSize: max(shared.CacheSize, 1), RejectTTL: shared.RejectTTL.D(),
		Timeout: shared.Timeout.D(), MaxConcurrent: max(shared.MaxConcurrent, 1), OnError: shared.OnError,
		StaleTTL: shared.StaleTTL.D(),
	}); err != nil {
		bad(p, "%v", strings.TrimPrefix(err.Error(), "identity: "))
	}
}

// validateUpstreamAuth checks a route's upstream_auth block.
func (r *Route) validateUpstreamAuth(p string, bad func(path, format string, args ...any)) {
	ua := r.UpstreamAuth
	p += ".upstream_auth"
	n := 0
	for _, set := range []bool{ua.Static != nil, ua.OAuth2 != nil, ua.Lark != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad(p, "exactly one of static, oauth2, lark is required")
	}
	secret := func(path, what, env, file string, required bool) {
		switch {
		case env != "" && file != "":
			bad(path, "%s_env or %s_file, not both", what, what)
		case required && env == "" && file == "":
			bad(path, "%s_env or %s_file is required (secrets are never written in the config)", what, what)
		}
	}
	if s := ua.Static; s != nil {
		if strings.TrimSpace(s.Header) == "" {
			bad(p+".static.header", "required")
		} else if !validHeaderName(s.Header) {
			bad(p+".static.header", "%q is not a valid header name", s.Header)
		}
		secret(p+".static", "value", s.ValueEnv, s.ValueFile, true)
	}
	if o := ua.OAuth2; o != nil {
		q := p + ".oauth2"
		switch o.Grant {
		case "", "client_credentials":
			if o.RefreshTokenEnv != "" || o.RefreshTokenFile != "" {
				bad(q, "a refresh token is only for grant refresh_token")
			}
		case "refresh_token":
			secret(q, "refresh_token", o.RefreshTokenEnv, o.RefreshTokenFile, true)
			if len(o.Params) > 0 {
				bad(q+".params", "only for grant client_credentials")
			}
		default:
			bad(q+".grant", "%q is not one of client_credentials, refresh_token", o.Grant)
		}
		if err := secureURL(o.TokenURL); err != nil {
			bad(q+".token_url", "%v", err)
		}
		if o.ClientID == "" {
			bad(q+".client_id", "required")
		}
		secret(q, "client_secret", o.ClientSecretEnv, o.ClientSecretFile, false)
		switch o.AuthStyle {
		case "", "header", "params":
		default:
			bad(q+".auth_style", "%q is not one of header, params", o.AuthStyle)
		}
		if o.Header != "" && !validHeaderName(o.Header) {
			bad(q+".header", "%q is not a valid header name", o.Header)
		}
	}
	if l := ua.Lark; l != nil {
		q := p + ".lark"
		if l.AppID == "" {
			bad(q+".app_id", "required")
		}
		secret(q, "app_secret", l.AppSecretEnv, l.AppSecretFile, true)
		if l.BaseURL != "" {
			if err := secureURL(l.BaseURL); err != nil {
				bad(q+".base_url", "%v", err)
			}
		}
	}
	for i, h := range ua.StripHeaders {
		if !validHeaderName(h) {
			bad(fmt.Sprintf("%s.strip_headers[%d]", p, i), "%q is not a valid header name", h)
		}
	}
	for i, q := range ua.StripQuery {
		if strings.TrimSpace(q) == "" {
			bad(fmt.Sprintf("%s.strip_query[%d]", p, i), "empty parameter name")
		}
	}
}

// secureURL accepts https URLs, and http URLs to a loopback host: a client secret sent over
// plain http on a network could be read in transit.
func secureURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("required")
	case err != nil || u.Host == "":
		return errors.New("must be an https URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); host == "localhost" || (err == nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("http is allowed only to a loopback host; use https")
	}
	return errors.New("must be an https URL")
}

// validHeaderName reports whether name is an HTTP header field name (an RFC 9110 token).
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

// ParsePeer parses a trusted peer: a CIDR prefix or a single address.
func ParsePeer(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
