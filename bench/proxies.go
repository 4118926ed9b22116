package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing/fstest"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/telemetry"
)

func str(s string) *string { return &s }

// proxyFor builds the proxy a role measures:
//
//	bare: httputil.ReverseProxy, nothing else
//	pass: Veil, a route the policy allows with nothing to mask (security_admin)
//	mask: Veil, the masked list route (cs_agent: 6 of 20 fields masked, detectors on)
//	trace: mask plus tracing at 100% (batch exporter to a discarding sink)
//	full: mask plus tracing at 100% and Redis budgets
func proxyFor(ctx context.Context, role, upstreamURL, redisURL string) (http.Handler, func(), error) {
	up, err := url.Parse(upstreamURL)
	if err != nil {
		return nil, nil, err
	}
	transport := proxy.NewTransport(30*time.Second, 256)
	if role == "bare" {
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
			Transport: transport,
		}
		return rp, func() {}, nil
	}
	// The shipped policy with budgets large enough that the load never exhausts them.
	pfs, err := unlimitedBudgets(policies.FS)
	if err != nil {
		return nil, nil, err
	}
	eng, err := policy.New(ctx, policy.Options{FS: pfs})
	if err != nil {
		return nil, nil, err
	}
	peers := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	authn, err := identity.New(ctx, identity.Config{TrustedHeaders: &identity.TrustedHeadersConfig{
		User: "X-Veil-User", Roles: "X-Veil-Roles", Department: "X-Veil-Department", Email: "X-Veil-Email", TrustedPeers: peers,
	}})
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "veil-bench-")
	if err != nil {
		return nil, nil, err
	}
	alog, err := audit.Open(audit.Options{Path: filepath.Join(dir, "audit.jsonl")})
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){func() { alog.Close(); os.RemoveAll(dir) }}
	ad, err := generic.New(generic.Options{Resources: []generic.Resource{
		{Match: "/api/customers", Type: "customers", Records: str("data"), PageSizeParam: "pageSize"},
		{Match: "/api/export.json", Type: "customers", Records: str("data"), Export: true},
		{Match: "/api/export.csv", Type: "customers", Export: true, Format: "csv"},
	}})
	if err != nil {
		return nil, nil, err
	}
	deps := proxy.Deps{
		Routes: []proxy.Route{{Name: "crm", PathPrefix: "/api/", Upstream: up, Adapter: ad,
			IdentityModes: []string{"trusted_headers"}, OnStoreError: "deny", Timeout: 10 * time.Minute}},
		Identity: authn, Policy: eng, Audit: alog, Transport: transport,
		Budgets: limit.NewMemory(time.Now), HashKey: []byte("bench"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if role == "trace" || role == "full" {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(io.Discard))
		if err != nil {
			return nil, nil, err
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSpanProcessor(telemetry.NewKeepProcessor(sdktrace.NewBatchSpanProcessor(exp), 1, 0)),
			sdktrace.WithSampler(sdktrace.AlwaysSample()))
		deps.Tracer = tp
		closers = append(closers, func() { tp.Shutdown(context.Background()) })
	}
	if role == "full" {
		if redisURL == "" {
			return nil, nil, fmt.Errorf("role full needs -redis")
		}
		ropts, err := limit.ParseRedisURL(redisURL)
		if err != nil {
			return nil, nil, err
		}
		rc := redis.NewUniversalClient(ropts)
		deps.Budgets = limit.NewRedis(rc, limit.RedisOptions{Prefix: fmt.Sprintf("veil-bench-%d", time.Now().UnixNano())})
		closers = append(closers, func() { rc.Close() })
	}
	h, err := proxy.New(deps)
	if err != nil {
		return nil, nil, err
	}
	return h, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// unlimitedBudgets copies the policy tree with every number under a "budgets" key raised to
// 10^12, so throughput runs measure the budget round trips without hitting 429s.
func unlimitedBudgets(src fs.FS) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		if filepath.Base(p) == "data.json" {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if bud, ok := v["budgets"]; ok {
				v["budgets"] = raise(bud)
			}
			if b, err = json.Marshal(v); err != nil {
				return err
			}
		}
		out[p] = &fstest.MapFile{Data: b}
		return nil
	})
	return out, err
}

func raise(v any) any {
	switch x := v.(type) {
	case float64:
		return 1e12
	case map[string]any:
		for k, e := range x {
			x[k] = raise(e)
		}
	case []any:
		for i, e := range x {
			x[i] = raise(e)
		}
	}
	return v
}
