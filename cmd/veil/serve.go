package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/policy"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("veil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := fs.String("c", "veil.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := build(ctx, cfg, buildOptions{baseDir: dirOf(*cfgPath)})
	if err != nil {
		return err
	}
	defer a.Close()
	pl, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	al, err := listen(cfg.AdminListen)
	if err != nil {
		pl.Close()
		return err
	}
	return a.serve(ctx, pl, al)
}

// cmdCheck validates the config, compiles the policy and runs its tests.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	cfgPath := fs.String("c", "veil.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintf(stdout, "config %s: ok (%d routes)\n", *cfgPath, len(cfg.Routes))
	o := buildOptions{baseDir: dirOf(*cfgPath)}
	pfs := policies.FS
	if cfg.Policy.Dir != "" {
		pfs = osDirFS(o.path(cfg.Policy.Dir))
	}
	eng, err := policy.New(ctx, policy.Options{FS: pfs})
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("policy: %w", err)}
	}
	fmt.Fprintf(stdout, "policy: compiled (revision %s)\n", eng.Revision())
	dir, revoked, err := policyIdentityData(eng)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("policy data: %w", err)}
	}
	fmt.Fprintf(stdout, "policy data: %d directory entries, %d revoked\n", len(dir.byID), len(revoked))
	if _, err := alertRules(eng); err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintln(stdout, "policy data: alert rules ok")
	passed, failed, report, err := policy.Test(ctx, pfs)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("policy tests: %w", err)}
	}
	if failed > 0 {
		fmt.Fprint(stdout, report)
		return &exitError{code: 1, err: fmt.Errorf("policy tests: %d passed, %d failed", passed, failed)}
	}
	fmt.Fprintf(stdout, "policy tests: %d passed, 0 failed\n", passed)
	if err := checkRoutes(ctx, cfg, o); err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintln(stdout, "routes: adapters ok")
	return nil
}

// cmdExplain prints the decision and the field plan for one request, without calling the upstream.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr)
	cfgPath := fs.String("c", "veil.yaml", "config file")
	user := fs.String("user", "", "user id")
	email := fs.String("email", "", "e-mail (looked up in data.veil.directory when --roles is not given)")
	roles := fs.String("roles", "", "comma-separated roles; default: the user's data.veil.directory entry")
	dept := fs.String("department", "", "department")
	host := fs.String("host", "", "request host (for host-bound routes)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 2 || *user == "" {
		return usageError("usage: veil explain -c veil.yaml --user U [--email E] [--roles R[,R]] METHOD PATH")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	o := buildOptions{baseDir: dirOf(*cfgPath)}
	ex, err := explain(ctx, cfg, o, explainRequest{
		User: *user, Email: *email, Roles: splitList(*roles), Department: *dept, Host: *host,
		Method: strings.ToUpper(fs.Arg(0)), Target: fs.Arg(1),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "route:     %s\n", ex.Route)
	u := ex.Input.User
	fmt.Fprintf(stdout, "user:      %s roles=%s department=%q", u.ID, strings.Join(u.Roles, ","), u.Department)
	if ex.FromDirectory {
		fmt.Fprint(stdout, " (from data.veil.directory)")
	}
	fmt.Fprintln(stdout)
	if ex.Revoked {
		fmt.Fprintln(stdout, "identity:  REVOKED (data.veil.revoked): Veil refuses this user with 403 before the policy runs")
	}
	fmt.Fprintf(stdout, "resource:  system=%s type=%q action=%s id=%q page_size=%d export=%v\n",
		ex.Resource.System, ex.Resource.Type, ex.Resource.Action, deref(ex.Resource.ID), ex.Resource.PageSize, ex.Resource.Export)
	d := ex.Decision
	verdict := "DENY"
	if d.Allow {
		verdict = "ALLOW"
	}
	fmt.Fprintf(stdout, "decision:  %s (mode %s)", verdict, orDefault(d.Mode, "enforce"))
	if !d.Allow {
		fmt.Fprintf(stdout, " status=%d reason=%q", orDefaultInt(d.Status, 403), d.Reason)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "revision:  %s\n", ex.Revision)
	if len(d.Fields) > 0 {
		fmt.Fprintln(stdout, "fields:")
		names := make([]string, 0, len(d.Fields))
		for n := range d.Fields {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "  %-24s %s\n", n, d.Fields[n])
		}
	}
	for _, r := range d.Rows {
		fmt.Fprintf(stdout, "row rule:  %s %s %v\n", r.Field, r.Op, r.Value)
	}
	if len(d.Detect) > 0 {
		fmt.Fprintf(stdout, "detect:    %s\n", strings.Join(d.Detect, ", "))
	}
	for _, l := range d.Limits {
		fmt.Fprintf(stdout, "limit:     %s key=%s %d records per %s\n", l.Name, l.Key, l.Records, l.Window)
	}
	if d.MaxPageSize > 0 {
		fmt.Fprintf(stdout, "max page:  %d\n", d.MaxPageSize)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orDefaultInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
