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
	User, Email, Department, Host, Method, Target string
	// Roles are the user's roles; none: the user's data.veil.directory entry, if any.
	Roles []string
}

// explanation is the proxy's explanation and what the policy data says about the user.
type explanation struct {
	proxy.Explanation
	FromDirectory bool // the roles (and department) came from data.veil.directory
	Revoked       bool // data.veil.revoked lists the user or the e-mail
}

// explain evaluates the policy for one request exactly as the proxy would, without identity
// checks and without calling the upstream. A user given without roles takes them from the
// staff directory, the way upstream_token and mtls users do.
func explain(ctx context.Context, cfg *config.Config, o buildOptions, er explainRequest) (explanation, error) {
	pfs := fs.FS(policies.FS)
	if cfg.Policy.Dir != "" {
		pfs = osDirFS(o.path(cfg.Policy.Dir))
	}
	eng, err := policy.New(ctx, policy.Options{FS: pfs})
	if err != nil {
		return explanation{}, fmt.Errorf("policy: %w", err)
	}
	routes, err := buildRoutes(cfg, http.DefaultTransport)
	if err != nil {
		return explanation{}, err
	}
	if !strings.HasPrefix(er.Target, "/") {
		return explanation{}, usageError("PATH must start with /")
	}
	r := httptest.NewRequestWithContext(ctx, er.Method, er.Target, nil)
	if er.Host != "" {
		r.Host = er.Host
	}
	var ex explanation
	u := identity.User{ID: er.User, Email: er.Email, Roles: er.Roles, Department: er.Department, Source: "explain"}
	// Problems in the data are `veil check`'s to report; explain uses what can be read.
	dir, revoked, _ := policyIdentityData(eng)
	if len(u.Roles) == 0 {
		if e, ok := dir.lookup(u.ID, u.Email); ok {
			u.Roles, ex.FromDirectory = e.Roles, true
			if e.Department != "" {
				u.Department = e.Department
			}
		}
	}
	for _, entry := range revoked {
		entry = strings.TrimSpace(entry)
		if strings.EqualFold(entry, u.ID) || (u.Email != "" && strings.EqualFold(entry, u.Email)) {
			ex.Revoked = true
		}
	}
	ex.Explanation, err = proxy.Explain(ctx, routes, eng, r, u)
	return ex, err
}

// checkRoutes builds every route's adapter, which validates its options.
func checkRoutes(_ context.Context, cfg *config.Config, _ buildOptions) error {
	_, err := buildRoutes(cfg, http.DefaultTransport)
	return err
}

func osDirFS(dir string) fs.FS { return os.DirFS(dir) }

func dirOf(path string) string { return filepath.Dir(path) }
