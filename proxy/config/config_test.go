package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const minimal = `
identity:
  trusted_headers:
    trusted_peers: ["127.0.0.1"]
routes:
  - name: crm
    path_prefix: /api/
    upstream: http://127.0.0.1:8081
    generic:
      resources:
        - {match: /api/customers, type: customers, records: data}
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse("veil.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8080"},
		{"admin", c.AdminListen, "127.0.0.1:9090"},
		{"read header timeout", c.Server.ReadHeaderTimeout.D(), 10 * time.Second},
		{"idle timeout", c.Server.IdleTimeout.D(), 120 * time.Second},
		{"request body", int64(c.Server.MaxRequestBody), int64(10 << 20)},
		{"response body", int64(c.Server.MaxResponseBody), int64(64 << 20)},
		{"json depth", c.Server.MaxJSONDepth, 512},
		{"on_store_error", c.Routes[0].OnStoreError, "deny"},
		{"route identity", strings.Join(c.Routes[0].Identity, ","), "trusted_headers"},
		{"adapter", c.Routes[0].Adapter, "generic"},
		{"user header", c.Identity.TrustedHeaders.User, "X-Veil-User"},
		{"hash key env", c.Mask.HashKeyEnv, "VEIL_HASH_KEY"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the error, including file:line
	}{
		{"unknown top-level key", "listn: :8080\n" + minimal, "veil.yaml:1: listn: unknown key"},
		{"unknown nested key", strings.Replace(minimal, "    path_prefix: /api/", "    path_prefix: /api/\n    upstram: x", 1), "veil.yaml:8: routes[0].upstram: unknown key"},
		{"bad duration", "server:\n  idle_timeout: forever\n" + minimal, "veil.yaml:2: invalid duration"},
		{"bad size", "server:\n  max_request_body: lots\n" + minimal, "veil.yaml:2: invalid size"},
		{"bad upstream", strings.Replace(minimal, "http://127.0.0.1:8081", "ftp://x", 1), "veil.yaml:8: routes[0].upstream: must be an http or https URL"},
		{"bad on_store_error", "limits:\n  on_store_error: maybe\n" + minimal, "veil.yaml:2: limits.on_store_error"},
		{"bad peer", strings.Replace(minimal, `"127.0.0.1"`, `"not-an-ip"`, 1), "trusted_peers[0]: invalid address"},
		{"duplicate key", "listen: a\nlisten: b\n" + minimal, "veil.yaml:2: listen: duplicate key"},
		{"no routes", "identity:\n  trusted_headers:\n    trusted_peers: [127.0.0.1]\n", "routes: at least one route"},
		{"password in redis url", "limits:\n  redis_url: redis://:secret@localhost:6379\n" + minimal, "password_env"},
		{"jwt without key", "identity:\n  jwt: {issuer: a, audience: b}\n" + strings.Replace(minimal, "identity:\n", "", 1), "exactly one of jwks_file"},
		{"route mode not configured", strings.Replace(minimal, "    generic:", "    identity: [jwt]\n    generic:", 1), `mode "jwt" is not configured`},
		{"type error", "listen: [1, 2]\n" + minimal, "veil.yaml:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("veil.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			var ce *Error
			var ces Errors
			if !errors.As(err, &ce) && !errors.As(err, &ces) {
				t.Errorf("error %T is not a config error", err)
			}
		})
	}
}

func TestDecodeStrictAdapterOptions(t *testing.T) {
	c, err := Parse("veil.yaml", []byte(strings.Replace(minimal, "type: customers,", "type: customers, colour: red,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		Resources []struct {
			Match   string `yaml:"match"`
			Type    string `yaml:"type"`
			Records string `yaml:"records"`
		} `yaml:"resources"`
	}
	node, _ := c.Routes[0].AdapterOptions()
	err = DecodeStrict(node, &opts)
	if err == nil || !strings.Contains(err.Error(), "11: resources[0].colour: unknown key") {
		t.Fatalf("DecodeStrict = %v, want unknown key colour at line 11", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "1h": time.Hour, "7d": 7 * 24 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "x", "-d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded, want an error", in)
		}
	}
}

// sfdc is a route using the upstream's own token with a service credential; line numbers
// in the tests below count from its first line.
const sfdc = `identity:
  trusted_headers:
    trusted_peers: ["127.0.0.1"]
routes:
  - name: sfdc
    path_prefix: /services/
    upstream: https://acme.my.salesforce.com
    identity: [upstream_token]
    upstream_token:
      profile: salesforce
      tenant: 00D5g000004XyzAEAS
    upstream_auth:
      static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}
`

func TestParseIdentity(t *testing.T) {
	c, err := Parse("veil.yaml", []byte(strings.Replace(sfdc, "identity:\n", `server:
  tls: {cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.pem}
limits:
  redis_url: redis://127.0.0.1:6379/0
identity:
  mtls: {user: email}
`, 1)))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	ut, rv := c.Identity.UpstreamToken, c.Identity.Revocations
	checks := []struct {
		name      string
		got, want any
	}{
		{"client_auth with a CA", c.Server.TLS.ClientAuth, ClientAuthVerifyIfGiven},
		{"cache_ttl", ut.CacheTTL.D(), 5 * time.Minute},
		{"cache_size", ut.CacheSize, 10000},
		{"reject_ttl", ut.RejectTTL.D(), 30 * time.Second},
		{"timeout", ut.Timeout.D(), 10 * time.Second},
		{"max_concurrent", ut.MaxConcurrent, 16},
		{"on_error", ut.OnError, "deny"},
		{"stale_ttl", ut.StaleTTL.D(), time.Hour},
		{"revocations in redis with a redis_url", rv.UseRedis(), true},
		{"revocations prefix", rv.Prefix, "veil"},
		{"revocations poll", rv.Poll.D(), time.Second},
		{"revocations max_stale", rv.MaxStale.D(), 10 * time.Second},
		{"revocations on_error", rv.OnError, "deny"},
		{"default modes", strings.Join(c.Identity.Modes(), ","), "trusted_headers,mtls"},
		{"route identity", strings.Join(c.Routes[0].Identity, ","), "upstream_token"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	p, ok := c.Routes[0].UpstreamToken.IdentityProfile()
	if !ok || p.Name != "salesforce" || p.URL != "/services/oauth2/userinfo" || p.Tenant != "organization_id" {
		t.Errorf("IdentityProfile = %+v, %v, want the salesforce profile", p, ok)
	}

	c, err = Parse("veil.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity.Revocations.UseRedis() {
		t.Error("revocations in Redis without limits.redis_url, want in process")
	}
}

func TestIdentityProfileOverrides(t *testing.T) {
	u := UpstreamToken{
		Profile: "nocodb", URL: "/api/v2/auth/user/me", Credentials: []TokenCredential{{Header: "xc-token"}},
		Name: []string{"firstname"}, Claims: map[string]string{"org": "org_id"}, RejectStatus: []int{401},
	}
	p, ok := u.IdentityProfile()
	if !ok {
		t.Fatal("IdentityProfile(nocodb) not found")
	}
	if p.URL != "/api/v2/auth/user/me" || len(p.Credentials) != 1 || p.Credentials[0].Header != "xc-token" ||
		p.DisplayName[0] != "firstname" || p.ID[0] != "id" || p.Claims["org"] != "org_id" || len(p.Claims) != 1 {
		t.Errorf("IdentityProfile = %+v, want nocodb with the overrides", p)
	}
	if _, ok := (&UpstreamToken{Profile: "sap"}).IdentityProfile(); ok {
		t.Error("IdentityProfile(sap) found, want unknown")
	}
}

func TestParseIdentityErrorsNameTheLine(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(sfdc, old) {
			t.Fatalf("sfdc has no %q", old)
		}
		return strings.Replace(sfdc, old, new, 1)
	}
	noAuth := replace("    upstream_auth:\n      static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}\n", "")
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown profile", replace("profile: salesforce", "profile: sap"),
			`veil.yaml:10: routes[0].upstream_token.profile: unknown profile "sap" (known: airtable, generic, lark, nocodb, salesforce, zoho)`},
		{"no profile", replace("      profile: salesforce\n", ""), "veil.yaml:9: routes[0].upstream_token.profile: required"},
		{"upstream_token listed without a block", replace("    upstream_token:\n      profile: salesforce\n      tenant: 00D5g000004XyzAEAS\n", ""),
			"veil.yaml:8: routes[0].identity[0]: mode upstream_token needs an upstream_token: block on the route"},
		{"block without the mode", replace("identity: [upstream_token]", "identity: [trusted_headers]"),
			"veil.yaml:9: routes[0].upstream_token: set, but the route's identity does not list upstream_token"},
		{"upstream_auth without a tenant pin", replace("      tenant: 00D5g000004XyzAEAS\n", ""),
			"veil.yaml:9: routes[0].upstream_token: the route also has upstream_auth"},
		{"generic without url and id", replace("profile: salesforce\n      tenant: 00D5g000004XyzAEAS", "profile: generic\n      directory_only: true"),
			"veil.yaml:9: routes[0].upstream_token.url: required for profile generic"},
		{"generic without id", replace("profile: salesforce\n      tenant: 00D5g000004XyzAEAS", "profile: generic\n      url: /api/me\n      directory_only: true"),
			"veil.yaml:9: routes[0].upstream_token.id: required for profile generic"},
		{"tenant without a tenant path", replace("profile: salesforce", "profile: zoho"),
			"veil.yaml:11: routes[0].upstream_token.tenant: profile zoho has no tenant in its answer; set tenant_path"},
		{"resolver refuses a reserved claim", replace("tenant: 00D5g000004XyzAEAS", "tenant: 00D5g000004XyzAEAS\n      claims: {id: Id}"),
			`veil.yaml:9: routes[0].upstream_token: upstream token profile salesforce: claim "id" is reserved`},
		{"two credentials", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "static: {header: Authorization, value_env: A}\n      lark: {app_id: cli, app_secret_env: B}"),
			"veil.yaml:12: routes[0].upstream_auth: exactly one of static, oauth2, lark is required"},
		{"no credential", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "strip_headers: [X-Foo]"),
			"veil.yaml:12: routes[0].upstream_auth: exactly one of static, oauth2, lark is required"},
		{"static secret inline", replace("value_env: SF_TOKEN", "value: s3cret"),
			"veil.yaml:13: routes[0].upstream_auth.static.value: unknown key"},
		{"static without a secret", replace(", value_env: SF_TOKEN", ""),
			"veil.yaml:13: routes[0].upstream_auth.static: value_env or value_file is required"},
		{"static with two secrets", replace("value_env: SF_TOKEN", "value_env: SF_TOKEN, value_file: /run/sf"),
			"veil.yaml:13: routes[0].upstream_auth.static: value_env or value_file, not both"},
		{"static bad header", replace("header: Authorization,", "header: \"X Token\","),
			`veil.yaml:13: routes[0].upstream_auth.static.header: "X Token" is not a valid header name`},
		{"oauth2 over http", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "oauth2: {token_url: \"http://login.example.com/token\", client_id: c}"),
			"veil.yaml:13: routes[0].upstream_auth.oauth2.token_url: http is allowed only to a loopback host"},
		{"oauth2 refresh grant without a refresh token", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "oauth2: {grant: refresh_token, token_url: \"https://accounts.zoho.com/oauth/v2/token\", client_id: c}"),
			"veil.yaml:13: routes[0].upstream_auth.oauth2: refresh_token_env or refresh_token_file is required"},
		{"oauth2 bad grant", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "oauth2: {grant: password, token_url: \"https://x.example/token\", client_id: c}"),
			`veil.yaml:13: routes[0].upstream_auth.oauth2.grant: "password" is not one of client_credentials, refresh_token`},
		{"lark without a secret", replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "lark: {app_id: cli_a1}"),
			"veil.yaml:13: routes[0].upstream_auth.lark: app_secret_env or app_secret_file is required"},
		{"mtls without tls", strings.Replace(noAuth, "identity:\n", "identity:\n  mtls: {user: cn}\n", 1),
			"veil.yaml:2: identity.mtls: needs server.tls with client_ca_file"},
		{"mtls with client_auth request", "server:\n  tls: {cert_file: a, key_file: b, client_ca_file: c, client_auth: request}\n" + strings.Replace(noAuth, "identity:\n", "identity:\n  mtls: {user: cn}\n", 1),
			"veil.yaml:4: identity.mtls: needs server.tls.client_auth verify_if_given or require"},
		{"mtls bad user", "server:\n  tls: {cert_file: a, key_file: b, client_ca_file: c}\n" + strings.Replace(noAuth, "identity:\n", "identity:\n  mtls: {user: serial}\n", 1),
			`veil.yaml:4: identity.mtls.user: "serial" is not one of cn, email, uri, dns`},
		{"uri_prefix without uri", "server:\n  tls: {cert_file: a, key_file: b, client_ca_file: c}\n" + strings.Replace(noAuth, "identity:\n", "identity:\n  mtls: {user: cn, uri_prefix: \"spiffe://x/\"}\n", 1),
			"veil.yaml:4: identity.mtls.uri_prefix: only for user: uri"},
		{"tls without key", "server:\n  tls: {cert_file: a}\n" + noAuth, "veil.yaml:2: server.tls.key_file: required"},
		{"tls require without CA", "server:\n  tls: {cert_file: a, key_file: b, client_auth: require}\n" + noAuth,
			"veil.yaml:2: server.tls.client_auth: require needs server.tls.client_ca_file"},
		{"tls bad client_auth", "server:\n  tls: {cert_file: a, key_file: b, client_auth: maybe}\n" + noAuth,
			`veil.yaml:2: server.tls.client_auth: "maybe" is not one of none, request, verify_if_given, require`},
		{"revocations in redis without redis", strings.Replace(noAuth, "identity:\n", "identity:\n  revocations: {redis: true}\n", 1),
			"veil.yaml:2: identity.revocations.redis: needs limits.redis_url"},
		{"revocations bad on_error", strings.Replace(noAuth, "identity:\n", "identity:\n  revocations: {on_error: shrug}\n", 1),
			`veil.yaml:2: identity.revocations.on_error: "shrug" is not one of deny, allow`},
		{"upstream_token bad on_error", strings.Replace(noAuth, "identity:\n", "identity:\n  upstream_token: {on_error: allow}\n", 1),
			`veil.yaml:2: identity.upstream_token.on_error: "allow" is not one of deny, stale`},
		{"jwt discovery and a jwks_url", strings.Replace(noAuth, "identity:\n", "identity:\n  jwt: {issuer: \"https://sso.example.com\", audience: veil, discovery: true, jwks_url: \"https://sso.example.com/jwks\"}\n", 1),
			"veil.yaml:2: identity.jwt: exactly one of jwks_file, jwks_url, secret_env, secret_file, discovery is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("veil.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}

	// The same routes are fine once pinned or fully configured.
	for name, yaml := range map[string]string{
		"salesforce pinned":      sfdc,
		"directory_only":         replace("tenant: 00D5g000004XyzAEAS", "directory_only: true"),
		"no upstream_auth":       strings.Replace(noAuth, "      tenant: 00D5g000004XyzAEAS\n", "", 1),
		"jwt with discovery":     strings.Replace(noAuth, "identity:\n", "identity:\n  jwt: {issuer: \"https://sso.example.com\", audience: veil, discovery: true}\n", 1),
		"generic, complete":      replace("profile: salesforce\n      tenant: 00D5g000004XyzAEAS", "profile: generic\n      url: /api/me\n      id: [data.uid]\n      tenant_path: data.org\n      tenant: acme\n      credentials: [{header: X-Session}]"),
		"oauth2 refresh":         replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "oauth2: {grant: refresh_token, token_url: \"https://accounts.zoho.com/oauth/v2/token\", client_id: c, client_secret_env: S, refresh_token_env: R, auth_style: params, scheme: Zoho-oauthtoken}"),
		"oauth2 to loopback":     replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "oauth2: {token_url: \"http://127.0.0.1:9000/token\", client_id: c}"),
		"lark":                   replace("static: {header: Authorization, scheme: Bearer, value_env: SF_TOKEN}", "lark: {app_id: cli_a1, app_secret_file: /run/lark}"),
		"mtls verify_if_given":   "server:\n  tls: {cert_file: a, key_file: b, client_ca_file: c}\n" + strings.Replace(noAuth, "identity:\n", "identity:\n  mtls: {user: uri, uri_prefix: \"spiffe://corp/user/\", department: ou}\n", 1),
		"revocations in process": strings.Replace(noAuth, "identity:\n", "identity:\n  revocations: {redis: false, admin_token_env: OPS_TOKEN, max_ttl: 30d}\n", 1),
	} {
		if _, err := Parse("veil.yaml", []byte(yaml)); err != nil {
			t.Errorf("Parse(%s) = %v, want no error", name, err)
		}
	}
}

func TestParseAlerts(t *testing.T) {
	c, err := Parse("veil.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if !c.Alerts.On() || c.Alerts.Flush.D() != 2*time.Second || c.Alerts.Queue != 10000 || c.Alerts.AdminTokenEnv != "VEIL_ADMIN_TOKEN" {
		t.Errorf("alert defaults = on %v flush %s queue %d token env %q, want on true flush 2s queue 10000 token env VEIL_ADMIN_TOKEN",
			c.Alerts.On(), c.Alerts.Flush.D(), c.Alerts.Queue, c.Alerts.AdminTokenEnv)
	}

	full := minimal + `alerts:
  enabled: false
  flush: 5s
  notifiers:
    - {name: security, type: dingtalk, url_env: DT_URL, secret_env: DT_SECRET, min_severity: warning}
    - {type: console, rules: [volume, probing], departments: [cs], lang: en}
`
	c, err = Parse("veil.yaml", []byte(full))
	if err != nil {
		t.Fatalf("Parse(full alerts) = %v", err)
	}
	if c.Alerts.On() || c.Alerts.Flush.D() != 5*time.Second {
		t.Errorf("alerts on %v flush %s, want false 5s", c.Alerts.On(), c.Alerts.Flush.D())
	}
	if n := c.Alerts.Notifiers[1]; n.Name != "console" || n.MinSeverity != "info" {
		t.Errorf("notifier defaults: name %q min_severity %q, want console info", n.Name, n.MinSeverity)
	}

	tests := []struct {
		name, alerts, want string
	}{
		{"unknown type", "    - {name: a, type: teams, url_env: U}\n", `veil.yaml:14: alerts.notifiers[0].type: "teams" is not one of dingtalk, wecom, feishu, lark, slack, webhook, console`},
		{"no url", "    - {name: a, type: slack}\n", "veil.yaml:14: alerts.notifiers[0]: url_env or url_file is required"},
		{"url inline", "    - {name: a, type: slack, url: \"https://hooks.slack.com/x\"}\n", "alerts.notifiers[0].url: unknown key"},
		{"two urls", "    - {name: a, type: webhook, url_env: U, url_file: /run/u}\n", "alerts.notifiers[0]: url_env or url_file, not both"},
		{"console with url", "    - {name: a, type: console, url_env: U}\n", "alerts.notifiers[0]: a console notifier has no URL"},
		{"wecom signs", "    - {name: a, type: wecom, url_env: U, secret_env: S}\n", "alerts.notifiers[0]: wecom notifiers do not sign"},
		{"bad severity", "    - {name: a, type: console, min_severity: high}\n", `alerts.notifiers[0].min_severity: "high" is not one of info, warning, critical`},
		{"bad rule", "    - {name: a, type: console, rules: [volumes]}\n", `alerts.notifiers[0].rules[0]: "volumes" is not one of volume, baseline`},
		{"bad lang", "    - {name: a, type: console, lang: fr}\n", `alerts.notifiers[0].lang: "fr" is not one of zh-CN, en`},
		{"duplicate name", "    - {type: console}\n    - {type: console}\n", `veil.yaml:15: alerts.notifiers[1].name: duplicate notifier name "console"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("veil.yaml", []byte(minimal+"alerts:\n  notifiers:\n"+tt.alerts))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Parse("veil.yaml", []byte(minimal+"alerts:\n  flush: 1ms\n")); err == nil || !strings.Contains(err.Error(), "alerts.flush: must be between 100ms and 1m") {
		t.Errorf("Parse(flush 1ms) error = %v, want alerts.flush out of range", err)
	}
}
