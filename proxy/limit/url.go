package limit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ParseRedisURL turns a Redis URL into options for redis.NewUniversalClient. Three forms,
// each with a TLS variant (rediss):
//
//	redis://[[user]:password@]host[:port][/db][?option=value&...]
//	redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db][?...]
//	redis+cluster://[[user]:password@]host[:port][,host[:port]...][?...]
//
// Ports default to 6379, or 26379 for sentinels. The user and password (percent-encoded)
// authenticate to Redis itself — the master behind Sentinel, every node of a Cluster; the
// sentinels' own credentials are the sentinel_username and sentinel_password options. rediss
// verifies every server's certificate against the system roots and the host it dials; set
// TLSConfig on the result for anything else. Options:
//
//	dial_timeout, read_timeout, write_timeout, pool_timeout   Go durations: "500ms", "2s"
//	pool_size, min_idle_conns, max_retries (-1: none)         integers
//	client_name                                               CLIENT SETNAME
//	protocol                                                  2 or 3 (RESP version)
//	sentinel_username, sentinel_password                      redis+sentinel only
//
// An unknown or repeated option is an error, and so is a database other than 0 on a Cluster.
// The result has ContextTimeoutEnabled set, so that RedisOptions.Timeout bounds every call.
// Errors never quote the URL, which may hold a password.
func ParseRedisURL(raw string) (*redis.UniversalOptions, error) {
	o, err := parseRedisURL(raw)
	if err != nil {
		return nil, fmt.Errorf("limit: redis url: %w", err)
	}
	return o, nil
}

func parseRedisURL(raw string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("missing scheme")
	}
	o := &redis.UniversalOptions{ContextTimeoutEnabled: true}
	var kind string // "", "sentinel" or "cluster"
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	case "redis+sentinel":
		kind = "sentinel"
	case "rediss+sentinel":
		kind = "sentinel"
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	case "redis+cluster":
		kind = "cluster"
		o.IsClusterMode = true
	case "rediss+cluster":
		kind = "cluster"
		o.IsClusterMode = true
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("unknown scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", scheme)
	}
	if strings.ContainsRune(rest, '#') {
		return nil, errors.New("fragment not allowed")
	}
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")

	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		if err := setUserinfo(o, authority[:at]); err != nil {
			return nil, err
		}
		authority = authority[at+1:]
	}
	port := "6379"
	if kind == "sentinel" {
		port = "26379"
	}
	for i, h := range strings.Split(authority, ",") {
		addr, err := hostPort(h, port)
		if err != nil {
			return nil, fmt.Errorf("host %d: %w", i+1, err)
		}
		o.Addrs = append(o.Addrs, addr)
	}
	if kind == "" && len(o.Addrs) > 1 {
		return nil, errors.New("several hosts: use redis+cluster:// or redis+sentinel://")
	}

	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if kind == "sentinel" {
		if len(segs) == 0 {
			return nil, errors.New("sentinel: missing master name (redis+sentinel://host/master)")
		}
		name, err := url.PathUnescape(segs[0])
		if err != nil {
			return nil, fmt.Errorf("sentinel master name: %w", err)
		}
		o.MasterName = name
		segs = segs[1:]
	}
	switch len(segs) {
	case 0:
	case 1:
		db, err := strconv.Atoi(segs[0])
		if err != nil || db < 0 {
			return nil, errors.New("invalid database number")
		}
		if kind == "cluster" && db != 0 {
			return nil, errors.New("cluster: only database 0 exists")
		}
		o.DB = db
	default:
		return nil, errors.New("invalid path: want at most a database number")
	}
	if err := setOptions(o, query, kind); err != nil {
		return nil, err
	}
	return o, nil
}

func setUserinfo(o *redis.UniversalOptions, userinfo string) error {
	user, pass, hasPass := strings.Cut(userinfo, ":")
	var err error
	if o.Username, err = url.PathUnescape(user); err != nil {
		return errors.New("invalid escape in user name")
	}
	if hasPass {
		if o.Password, err = url.PathUnescape(pass); err != nil {
			return errors.New("invalid escape in password")
		}
	}
	return nil
}

// hostPort checks one host[:port] ([v6]:port for IPv6) and adds the default port. Its errors
// do not quote h: a password with an unescaped '/' or '@' ends up in it.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("missing host")
	}
	host, port := h, defPort
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end < 0 {
			return "", errors.New("invalid host")
		} else if end < len(h)-1 {
			var err error
			if host, port, err = net.SplitHostPort(h); err != nil {
				return "", errors.New("invalid host")
			}
		} else {
			host = h[1:end]
		}
	} else if strings.Contains(h, ":") {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return "", errors.New("invalid host")
		}
	}
	if host == "" || strings.ContainsAny(host, "/?@[]") {
		return "", errors.New("invalid host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", errors.New("invalid port")
	}
	return net.JoinHostPort(host, port), nil
}

func setOptions(o *redis.UniversalOptions, query, kind string) error {
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	durations := map[string]*time.Duration{
		"dial_timeout": &o.DialTimeout, "read_timeout": &o.ReadTimeout,
		"write_timeout": &o.WriteTimeout, "pool_timeout": &o.PoolTimeout,
	}
	ints := map[string]*int{
		"pool_size": &o.PoolSize, "min_idle_conns": &o.MinIdleConns,
		"max_retries": &o.MaxRetries, "protocol": &o.Protocol,
	}
	strs := map[string]*string{"client_name": &o.ClientName}
	if kind == "sentinel" {
		strs["sentinel_username"] = &o.SentinelUsername
		strs["sentinel_password"] = &o.SentinelPassword
	}
	for name, vs := range q {
		if len(vs) != 1 {
			return fmt.Errorf("option %s given %d times", name, len(vs))
		}
		v := vs[0]
		switch {
		case durations[name] != nil:
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("option %s: want a duration such as 500ms", name)
			}
			*durations[name] = d
		case ints[name] != nil:
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 || n == -1 && name != "max_retries" {
				return fmt.Errorf("option %s: want a non-negative integer", name)
			}
			if name == "protocol" && n != 2 && n != 3 {
				return errors.New("option protocol: want 2 or 3")
			}
			*ints[name] = n
		case strs[name] != nil:
			*strs[name] = v
		default:
			return fmt.Errorf("unknown option %q", name)
		}
	}
	return nil
}
