package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/policy"
)

type explainRequest struct {
	User, Department, Host, Method, Target string
	Roles                                  []string
}

// explain evaluates the policy for one request exactly as the proxy would, without identity
// checks and without calling the upstream.
func explain(ctx context.Context, cfg *config.Config, o buildOptions, er explainRequest) (proxy.Explanation, error) {
	pfs := fs.FS(policies.FS)
	if cfg.Policy.Dir != "" {
		pfs = osDirFS(o.path(cfg.Policy.Dir))
	}
	eng, err := policy.New(ctx, policy.Options{FS: pfs})
	if err != nil {
		return proxy.Explanation{}, fmt.Errorf("policy: %w", err)
	}
	routes, err := buildRoutes(cfg, http.DefaultTransport)
	if err != nil {
		return proxy.Explanation{}, err
	}
	if !strings.HasPrefix(er.Target, "/") {
		return proxy.Explanation{}, usageError("PATH must start with /")
	}
	r := httptest.NewRequestWithContext(ctx, er.Method, er.Target, nil)
	if er.Host != "" {
		r.Host = er.Host
	}
	u := identity.User{ID: er.User, Roles: er.Roles, Department: er.Department, Source: "explain"}
	return proxy.Explain(ctx, routes, eng, r, u)
}

// checkRoutes builds every route's adapter, which validates its options.
func checkRoutes(_ context.Context, cfg *config.Config, _ buildOptions) error {
	_, err := buildRoutes(cfg, http.DefaultTransport)
	return err
}

func osDirFS(dir string) fs.FS { return os.DirFS(dir) }

func dirOf(path string) string { return filepath.Dir(path) }
