// Command crmserver runs a fake Salesforce or Zoho CRM with a real Veil handler in front of
// it, for the opt-in real-client suite (e2e/clients/jsforce, e2e/clients/zohocrm): it prints
// Veil's URL and the audit log's path, then serves until its standard input closes or it is
// interrupted.
//
//	go run ./e2e/clients/crmserver -system salesforce
//
// Staff are identified the way the vendor's own tools are: by their vendor token, which Veil
// resolves with the vendor's identity call (upstream_token). Salesforce users get their roles
// from a directory, Zoho users from their Zoho profile through a role map.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/salesforce"
	"github.com/veilproxy/veil/adapters/salesforce/salesforcetest"
	"github.com/veilproxy/veil/adapters/zoho"
	"github.com/veilproxy/veil/adapters/zoho/zohotest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmserver:", err)
		os.Exit(1)
	}
}

// system is what one vendor needs: its fake, its adapter, where its API lives and how its
// users get their roles.
type system struct {
	upstream  http.Handler
	adapter   adapters.Adapter
	prefix    string
	profile   string
	directory map[string][]string // vendor user id ⇒ Veil roles
	roleMap   map[string][]string // vendor role or profile ⇒ Veil roles
}

func systemOf(name string) (system, error) {
	switch name {
	case "salesforce":
		ad, err := salesforce.New(salesforce.Options{})
		if err != nil {
			return system{}, err
		}
		dir := map[string][]string{}
		roles := map[string][]string{"agent": {"cs_agent"}, "ops": {"ops_manager"}, "host": {"host"}}
		for tok, u := range salesforcetest.Sessions() {
			dir[u.ID] = roles[tok[len("00DRO0000000001!"):]]
		}
		return system{upstream: salesforcetest.New(), adapter: ad, prefix: "/services/", profile: identity.ProfileSalesforce, directory: dir}, nil
	case "zoho":
		ad, err := zoho.New(zoho.Options{})
		if err != nil {
			return system{}, err
		}
		return system{upstream: zohotest.New(), adapter: ad, prefix: "/crm/", profile: identity.ProfileZoho, roleMap: map[string][]string{
			"Customer Service": {"cs_agent"}, "Sales Manager": {"ops_manager"}, "Administrator": {"security_admin"},
		}}, nil
	}
	return system{}, fmt.Errorf("-system %q: want salesforce or zoho", name)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("crmserver", flag.ContinueOnError)
	name := fs.String("system", "", "the fake upstream: salesforce or zoho")
	addr := fs.String("addr", "127.0.0.1:0", "Veil's listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sys, err := systemOf(*name)
	if err != nil {
		return err
	}
	up := httptest.NewServer(sys.upstream)
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		return err
	}

	eng, err := policy.New(ctx, policy.Options{FS: policies.FS})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "veil-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	auditPath := filepath.Join(dir, "audit.jsonl")
	log, err := audit.Open(audit.Options{Path: auditPath, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	defer log.Close()

	authn, err := identity.New(ctx, identity.Config{Directory: func(id, _ string) (identity.DirectoryEntry, bool) {
		roles, ok := sys.directory[id]
		return identity.DirectoryEntry{Roles: roles}, ok
	}})
	if err != nil {
		return err
	}
	profile, ok := identity.BuiltinProfile(sys.profile)
	if !ok {
		return fmt.Errorf("no identity profile %q", sys.profile)
	}
	resolver, err := identity.NewTokenResolver(identity.TokenResolverConfig{Profile: profile, Upstream: upURL, RoleMap: sys.roleMap})
	if err != nil {
		return err
	}
	h, err := proxy.New(proxy.Deps{
		Routes: []proxy.Route{{
			Name: *name, PathPrefix: sys.prefix, Upstream: upURL, Adapter: sys.adapter,
			IdentityModes: []string{"upstream_token"}, TokenResolver: resolver, OnStoreError: "deny", Timeout: 30 * time.Second,
		}},
		Identity: authn, Policy: eng, Budgets: limit.NewMemory(time.Now), Audit: log,
		HashKey: []byte("veil-e2e-hash-key"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "VEIL_URL=http://%s\nAUDIT=%s\n", ln.Addr(), auditPath)

	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(stdinClosed)
	}()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
