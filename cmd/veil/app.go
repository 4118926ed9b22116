package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/adapters/all"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/spike"
)

// app is a wired Veil: the proxy handler and everything it owns.
type app struct {
	cfg           *config.Config
	log           *slog.Logger
	handler       *proxy.Handler
	policy        *policy.Engine
	audit         *audit.Log
	reg           *prometheus.Registry
	metrics       *proxy.Metrics
	redis         redis.UniversalClient
	budgets       limit.Store
	directory     atomic.Pointer[staffDirectory] // data.veil.directory of the policy in use
	revocations   revocationStore
	revokeAdmin   http.Handler                // /revocations on the admin listener; nil = off
	restrictions  restrictions                // export-spike containment; always set
	spike         *spike.Detector             // nil = alerts disabled
	restrictAdmin http.Handler                // /admin/restrictions on the admin listener; nil = off
	tls           *tls.Config                 // the proxy listener's; nil = plain HTTP
	tracing       func(context.Context) error // shutdown
	ready         func() error
	closers       []func() error
	closeOne      sync.Once
}

// loadConfig reads and validates a config file.
func loadConfig(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return config.Parse(path, data)
}

// buildOptions are the knobs the demo and tests set beyond the config file.
type buildOptions struct {
	baseDir  string      // relative paths in the config are relative to it
	policyFS fs.FS       // nil = cfg.Policy.Dir, or the built-in policy when that is ""
	budgets  limit.Store // nil = from cfg.Limits
	logOut   io.Writer   // nil = stderr
	alertOut io.Writer   // console notifiers; nil = stderr
	getenv   func(string) string
}

func (o *buildOptions) path(p string) string {
	if p == "" || filepath.IsAbs(p) || o.baseDir == "" {
		return p
	}
	return filepath.Join(o.baseDir, p)
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}

// readSecret returns a secret from an environment variable or a file; never from the config.
func readSecret(o *buildOptions, env, file string) ([]byte, error) {
	if env != "" {
		v := o.getenv(env)
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is empty or unset", env)
		}
		return []byte(v), nil
	}
	if file != "" {
		b, err := os.ReadFile(o.path(file))
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	return nil, nil
}

func build(ctx context.Context, cfg *config.Config, o buildOptions) (_ *app, err error) {
	if o.getenv == nil {
		o.getenv = os.Getenv
	}
	if o.logOut == nil {
		o.logOut = os.Stderr
	}
	a := &app{cfg: cfg, log: newLogger(cfg.Log, o.logOut), reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = proxy.NewMetrics(a.reg, version, cfg.Metrics.PerUser())

	if a.tls, err = serverTLS(cfg.Server.TLS, &o); err != nil {
		return nil, err
	}
	if cfg.Limits.RedisURL != "" {
		if a.redis, err = newRedis(cfg.Limits, &o); err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		a.closers = append(a.closers, a.redis.Close)
	}
	if a.revocations, err = a.newRevocations(ctx); err != nil {
		return nil, err
	}
	idc, err := identityConfig(cfg, &o)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	idc.Directory, idc.Revocations, idc.Logger = a.lookupStaff, a.revocations, a.log
	authn, err := identity.New(ctx, idc)
	if err != nil {
		return nil, err
	}

	pfs, dir := o.policyFS, ""
	if pfs == nil {
		if cfg.Policy.Dir != "" {
			dir = o.path(cfg.Policy.Dir)
			pfs = os.DirFS(dir)
		} else {
			pfs = policies.FS
		}
	}
	a.policy, err = policy.New(ctx, policy.Options{
		FS: pfs, Dir: dir, Logger: a.log,
		OnReload: func(rev string, err error) {
			result := "success"
			if err != nil {
				result = "error"
			}
			a.metrics.PolicyReloads.WithLabelValues(result).Inc()
			// Reloads run one at a time, each with the engine showing what it just loaded.
			// The first load happens inside policy.New, before a.policy is set; it is
			// applied below.
			if err == nil && a.policy != nil {
				a.applyPolicyData(a.policy)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	a.applyPolicyData(a.policy)
	if a.revokeAdmin, err = a.revocationAdmin(&o); err != nil {
		return nil, fmt.Errorf("identity: revocations: %w", err)
	}
	if dir != "" && (cfg.Policy.Watch == nil || *cfg.Policy.Watch) {
		go func() {
			if err := a.policy.Watch(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("policy watch stopped", "err", err)
			}
		}()
	}

	hashKey, err := readSecret(&o, cfg.Mask.HashKeyEnv, cfg.Mask.HashKeyFile)
	if err != nil && cfg.Mask.HashKeyFile != "" {
		return nil, fmt.Errorf("mask: hash key: %w", err)
	}
	if len(hashKey) == 0 {
		a.log.Warn("no hash key set: policies that hash fields will be refused", "env", cfg.Mask.HashKeyEnv)
	}

	a.budgets = o.budgets
	if a.budgets == nil {
		if a.redis == nil {
			a.budgets = limit.NewMemory(time.Now)
		} else {
			a.budgets = limit.NewRedis(a.redis, limit.RedisOptions{Timeout: cfg.Limits.Timeout.D()})
		}
	}

	a.audit, err = audit.Open(audit.Options{
		Path: o.path(cfg.Audit.File), MaxBytes: int64(cfg.Audit.MaxBytes),
		FlushInterval: cfg.Audit.FlushInterval.D(), Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.closers = append(a.closers, a.audit.Close)

	if err := a.newAlerts(ctx, &o); err != nil {
		return nil, err
	}

	tp, shutdown, err := newTracerProvider(ctx, cfg.Tracing, &o)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	a.tracing = shutdown

	transport := proxy.NewTransport(cfg.Server.UpstreamHeaderTimeout.D(), cfg.Server.MaxConcurrentUpstreams)
	routes, err := buildRoutes(cfg, transport)
	if err != nil {
		return nil, err
	}
	if err := routeIdentity(cfg, &o, routes, &http.Client{Transport: transport}, a.log); err != nil {
		return nil, err
	}
	s := cfg.Server
	deps := proxy.Deps{
		Routes: routes, Identity: authn, Policy: a.policy, Budgets: a.budgets, Audit: a.audit,
		Metrics: a.metrics, Tracer: tp, Transport: transport, HashKey: hashKey,
		AuditOnError: cfg.Audit.OnError, Logger: a.log, Restrictions: a.restrictions,
		Limits: proxy.Limits{
			MaxRequestBody: int64(s.MaxRequestBody), MaxResponseBody: int64(s.MaxResponseBody),
			MaxRecordBytes: int64(s.MaxRecordBytes), StreamThreshold: int64(s.StreamThreshold),
			MaxJSONDepth: s.MaxJSONDepth, UpstreamHeaderTimeout: s.UpstreamHeaderTimeout.D(),
			UpstreamIdleTimeout: s.UpstreamIdleTimeout.D(),
		},
	}
	if a.spike != nil { // a nil *spike.Detector in the interface would not read as off
		deps.Spike = a.spike
	}
	a.handler, err = proxy.New(deps)
	if err != nil {
		return nil, err
	}
	// Readiness is this replica's own health: a broken audit log. Redis is shared by every
	// replica, so it is not part of readiness (all pods would go unready at once and
	// on_store_error would never apply); its failures show in veil_limit_store_errors_total.
	a.ready = func() error {
		if err := a.audit.Healthy(); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	}
	return a, nil
}

// newRedis connects the limits Redis (budgets, and the shared revocation list).
func newRedis(c config.LimitsConfig, o *buildOptions) (redis.UniversalClient, error) {
	ropts, err := limit.ParseRedisURL(c.RedisURL)
	if err != nil {
		return nil, err
	}
	if c.PasswordEnv != "" {
		pw, err := readSecret(o, c.PasswordEnv, "")
		if err != nil {
			return nil, err
		}
		ropts.Password = string(pw)
	}
	return redis.NewUniversalClient(ropts), nil
}

// buildRoutes builds every route's adapter from its options.
func buildRoutes(cfg *config.Config, transport http.RoundTripper) ([]proxy.Route, error) {
	routes := make([]proxy.Route, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		up, err := url.Parse(rc.Upstream)
		if err != nil {
			return nil, err
		}
		node, key := rc.AdapterOptions()
		prefix := fmt.Sprintf("routes[%d].%s", i, key)
		ad, err := all.New(rc.Adapter, func(v any) error { return config.Locate(config.DecodeStrict(node, v), cfg.Source, prefix) },
			all.Env{Upstream: rc.Upstream, Client: &http.Client{Transport: transport, Timeout: 30 * time.Second}})
		if err != nil {
			var ce config.Errors
			if errors.As(err, &ce) {
				return nil, err
			}
			return nil, &config.Error{File: cfg.Source, Line: node.Line, Path: prefix, Msg: err.Error()}
		}
		routes[i] = proxy.Route{
			Name: rc.Name, Host: rc.Host, PathPrefix: rc.PathPrefix, Upstream: up, Adapter: ad,
			IdentityModes: rc.Identity, OnStoreError: rc.OnStoreError, Mode: rc.Mode,
			Timeout: rc.Timeout.D(), CaseInsensitive: rc.CaseInsensitive,
		}
	}
	return routes, nil
}

// Close releases everything the app holds.
func (a *app) Close() error {
	var errs []error
	a.closeOne.Do(func() {
		if a.tracing != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, a.tracing(ctx))
			cancel()
		}
		for i := len(a.closers) - 1; i >= 0; i-- {
			errs = append(errs, a.closers[i]())
		}
	})
	return errors.Join(errs...)
}

// adminHandler serves /healthz, /readyz and /metrics on the admin listener.
func (a *app) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	if a.revokeAdmin != nil {
		mux.Handle("/revocations", http.StripPrefix("/revocations", a.revokeAdmin))
	}
	if a.restrictAdmin != nil {
		mux.Handle("/admin/", http.StripPrefix("/admin", a.restrictAdmin))
	}
	return mux
}

// servers are the proxy and admin listeners with Veil's timeouts.
func (a *app) servers() (proxySrv, adminSrv *http.Server) {
	s := a.cfg.Server
	proxySrv = &http.Server{
		Addr:              a.cfg.Listen,
		Handler:           a.handler,
		ReadHeaderTimeout: s.ReadHeaderTimeout.D(),
		ReadTimeout:       s.ReadTimeout.D(),
		WriteTimeout:      s.WriteTimeout.D(),
		IdleTimeout:       s.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		TLSConfig:         a.tls,
	}
	adminSrv = &http.Server{
		Addr:              a.cfg.AdminListen,
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return proxySrv, adminSrv
}

// serve runs both listeners until ctx is done, then drains them.
func (a *app) serve(ctx context.Context, proxyLn, adminLn net.Listener) error {
	ps, as := a.servers()
	errc := make(chan error, 2)
	go func() {
		if a.tls != nil {
			// The certificate is in ps.TLSConfig.
			errc <- ps.ServeTLS(proxyLn, "", "")
			return
		}
		errc <- ps.Serve(proxyLn)
	}()
	go func() { errc <- as.Serve(adminLn) }()
	a.log.Info("veil listening", "proxy", proxyLn.Addr().String(), "admin", adminLn.Addr().String(),
		"tls", a.tls != nil, "revocation_admin", a.revokeAdmin != nil,
		"policy_revision", a.policy.Revision(), "routes", len(a.cfg.Routes))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Server.ShutdownTimeout.D())
	defer cancel()
	errs := []error{err, ps.Shutdown(sctx), as.Shutdown(sctx)}
	if errors.Is(errs[0], http.ErrServerClosed) {
		errs[0] = nil
	}
	return errors.Join(errs...)
}

func listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
