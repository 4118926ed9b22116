// Package config decodes and validates veil.yaml: unknown keys and bad values are errors that
// name the line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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
}

// IdentityConfig lists the identity modes; each nil mode is off.
type IdentityConfig struct {
	JWT            *JWTConfig            `yaml:"jwt"`
	TrustedHeaders *TrustedHeadersConfig `yaml:"trusted_headers"`
	APIKeys        *APIKeysConfig        `yaml:"api_keys"`
}

// JWTConfig verifies bearer JWTs. Exactly one key source: jwks_file, jwks_url or secret_env/secret_file (HS256).
type JWTConfig struct {
	Issuer     string      `yaml:"issuer"`
	Audience   string      `yaml:"audience"`
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

// Modes returns the identity modes configured at the top level, in the default order.
func (ic IdentityConfig) Modes() []string {
	var m []string
	if ic.JWT != nil {
		m = append(m, "jwt")
	}
	if ic.TrustedHeaders != nil {
		m = append(m, "trusted_headers")
	}
	if ic.APIKeys != nil {
		m = append(m, "api_keys")
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
		if n != 1 {
			bad("identity.jwt", "exactly one of jwks_file, jwks_url, secret_env, secret_file is required")
		}
		for i, a := range j.Algorithms {
			oneOf(fmt.Sprintf("identity.jwt.algorithms[%d]", i), a, "HS256", "RS256", "ES256")
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
			if !modes[m] {
				bad(fmt.Sprintf("%s.identity[%d]", p, j), "mode %q is not configured under identity:", m)
			}
		}
	}
	return errs
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
