package limit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/proxy/limit"
)

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url  string
		want redis.UniversalOptions // ContextTimeoutEnabled is always set; TLS compared apart
		tls  bool
	}{
		{"redis://127.0.0.1", redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}}, false},
		{"redis://localhost:6380/2", redis.UniversalOptions{Addrs: []string{"localhost:6380"}, DB: 2}, false},
		{"REDIS://:p%40ss%2Fw0rd@h:1/", redis.UniversalOptions{Addrs: []string{"h:1"}, Password: "p@ss/w0rd"}, false},
		{"redis://veil:pw@h?dial_timeout=250ms&read_timeout=1s&write_timeout=1s&pool_timeout=2s&pool_size=20&min_idle_conns=2&max_retries=-1&client_name=veil&protocol=2",
			redis.UniversalOptions{Addrs: []string{"h:6379"}, Username: "veil", Password: "pw", DialTimeout: 250 * time.Millisecond,
				ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: 2 * time.Second, PoolSize: 20, MinIdleConns: 2,
				MaxRetries: -1, ClientName: "veil", Protocol: 2}, false},
		{"rediss://cache.example.com", redis.UniversalOptions{Addrs: []string{"cache.example.com:6379"}}, true},
		{"redis://[::1]:7000", redis.UniversalOptions{Addrs: []string{"[::1]:7000"}}, false},
		{"redis://[::1]", redis.UniversalOptions{Addrs: []string{"[::1]:6379"}}, false},
		{"redis+sentinel://s1,s2:26380,s3/mymaster/1?sentinel_password=sp",
			redis.UniversalOptions{Addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, MasterName: "mymaster", DB: 1, SentinelPassword: "sp"}, false},
		{"rediss+sentinel://u:pw@s1/mymaster",
			redis.UniversalOptions{Addrs: []string{"s1:26379"}, MasterName: "mymaster", Username: "u", Password: "pw"}, true},
		{"redis+cluster://h1,h2:7001,h3:7002",
			redis.UniversalOptions{Addrs: []string{"h1:6379", "h2:7001", "h3:7002"}, IsClusterMode: true}, false},
		{"redis+cluster://h1/0", redis.UniversalOptions{Addrs: []string{"h1:6379"}, IsClusterMode: true}, false},
		{"rediss+cluster://:pw@h1:7000", redis.UniversalOptions{Addrs: []string{"h1:7000"}, IsClusterMode: true, Password: "pw"}, true},
	}
	for _, tc := range tests {
		got, err := limit.ParseRedisURL(tc.url)
		if err != nil {
			t.Errorf("ParseRedisURL(%q) error: %v", tc.url, err)
			continue
		}
		if !got.ContextTimeoutEnabled {
			t.Errorf("ParseRedisURL(%q).ContextTimeoutEnabled = false, want true", tc.url)
		}
		if (got.TLSConfig != nil) != tc.tls || got.TLSConfig != nil && got.TLSConfig.InsecureSkipVerify {
			t.Errorf("ParseRedisURL(%q).TLSConfig = %+v, want TLS %v, verified", tc.url, got.TLSConfig, tc.tls)
		}
		tc.want.ContextTimeoutEnabled = true
		if diff := cmp.Diff(&tc.want, got, cmpopts.IgnoreFields(redis.UniversalOptions{}, "TLSConfig"), cmpopts.IgnoreUnexported(redis.UniversalOptions{})); diff != "" {
			t.Errorf("ParseRedisURL(%q) (-want +got):\n%s", tc.url, diff)
		}
	}
}

func TestParseRedisURLClients(t *testing.T) {
	for url, want := range map[string]string{
		"redis://h":                "*redis.Client",
		"redis+sentinel://s/m":     "*redis.Client",
		"redis+cluster://h1":       "*redis.ClusterClient",
		"redis+cluster://h1,h2,h3": "*redis.ClusterClient",
	} {
		o, err := limit.ParseRedisURL(url)
		if err != nil {
			t.Fatalf("ParseRedisURL(%q): %v", url, err)
		}
		c := redis.NewUniversalClient(o)
		got := fmt.Sprintf("%T", c)
		_ = c.Close()
		if got != want {
			t.Errorf("NewUniversalClient(ParseRedisURL(%q)) = %s, want %s", url, got, want)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"127.0.0.1:6379", "missing scheme"},
		{"http://h", "unknown scheme"},
		{"redis://", "missing host"},
		{"redis://h1,h2", "several hosts"},
		{"redis://h:0", "invalid port"},
		{"redis://h:x", "invalid port"},
		{"redis://h:6379:1", "invalid host"},
		{"redis://[::1", "invalid host"},
		{"redis://h/x", "invalid database"},
		{"redis://h/-1", "invalid database"},
		{"redis://h/1/2", "invalid path"},
		{"redis://h#frag", "fragment"},
		{"redis://h?nope=1", `unknown option "nope"`},
		{"redis://h?pool_size=1&pool_size=2", "given 2 times"},
		{"redis://h?dial_timeout=3", "want a duration"},
		{"redis://h?pool_size=-1", "non-negative"},
		{"redis://h?protocol=4", "2 or 3"},
		{"redis://h?sentinel_password=x", "unknown option"},
		{"redis+sentinel://s1", "missing master name"},
		{"redis+cluster://h/1", "only database 0"},
		{"redis://:se/cret@h", "invalid host"},
	}
	for _, tc := range tests {
		_, err := limit.ParseRedisURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "limit: redis url: ") {
			t.Errorf("ParseRedisURL(%q) error = %v, want one mentioning %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "cret") {
			t.Errorf("ParseRedisURL(%q) error = %v, quotes the password", tc.url, err)
		}
	}
}
