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
