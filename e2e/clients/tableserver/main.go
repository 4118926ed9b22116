// Command tableserver runs a real Veil handler, with the shipped policy, in front of fake
// Google Sheets, Airtable and Lark upstreams, for the opt-in real-client suite under
// e2e/clients/{sheets,airtable,lark}. It prints one JSON line — {"veil": URL, "audit": path}
// and the JWT settings below — and serves until its standard input closes or it is
// interrupted.
//
//	go run ./e2e/clients/tableserver
//
// Sheets and Lark callers identify themselves with the X-Veil-User and X-Veil-Roles headers
// (trusted from loopback) and send their own upstream credential. airtable.js can send no
// header but its API key, so Airtable callers use an HS256 JWT from the "SSO" (secret, issuer
// and audience are in the JSON line) as their API key: Veil verifies it, and replaces it with
// its own service credential towards the upstream (upstream_auth), as a deployment would.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/airtable"
	"github.com/veilproxy/veil/adapters/airtable/airtabletest"
	"github.com/veilproxy/veil/adapters/lark"
	"github.com/veilproxy/veil/adapters/lark/larktest"
	"github.com/veilproxy/veil/adapters/sheets"
	"github.com/veilproxy/veil/adapters/sheets/sheetstest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/limit"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/upstreamauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		// The test runner closes stdin (or dies): stop serving.
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tableserver:", err)
		os.Exit(1)
	}
}

// The "SSO" whose tokens the Airtable route accepts.
const (
	jwtSecret   = "veil-e2e-tableserver-hs256-secret-0123456789"
	jwtIssuer   = "https://sso.veil.test"
	jwtAudience = "veil"
)

// route is one fake upstream and the adapter Veil puts in front of it.
type route struct {
	name, prefix string
	upstream     http.Handler
	adapter      func() (adapters.Adapter, error)
	jwt          bool // callers present a JWT; the upstream gets Veil's service credential
}

func routes() []route {
	sheetOptions := sheets.Options{Spreadsheets: map[string]sheets.Spreadsheet{
		sheetstest.SpreadsheetID: {
			Settings: sheets.Settings{Type: "customers"},
			Sheets: map[string]sheets.Settings{"客户 名单": {Columns: map[string]string{
				"A": "客户ID", "B": "姓名", "C": "手机", "D": "邮箱", "E": "身份证号", "F": "地址", "G": "累计消费", "H": "备注",
			}}},
		},
	}}
	names := map[string]string{}
	for name, id := range airtabletest.FieldIDs {
		names[id] = name
	}
	sheetsUp := sheetstest.New()
	return []route{
		{"sheets", "/v4/spreadsheets", sheetsUp, func() (adapters.Adapter, error) { return sheets.New(sheetOptions) }, false},
		{"sheets-export", "/drive/v3/files/", sheetsUp, func() (adapters.Adapter, error) { return sheets.New(sheetOptions) }, false},
		{"airtable", "/v0/", airtabletest.New(), func() (adapters.Adapter, error) {
			return airtable.New(airtable.Options{Tables: map[string]string{"Customers": "customers"}, FieldNames: names})
		}, true},
		{"lark", "/open-apis/", larktest.New(), func() (adapters.Adapter, error) {
			return lark.New(lark.Options{Tables: map[string]string{"tblCustomers": "customers"}})
		}, false},
	}
}

func run(ctx context.Context, stdout io.Writer) error {
	dir, err := os.MkdirTemp("", "veil-tableserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	eng, err := policy.New(ctx, policy.Options{FS: policies.FS})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	authn, err := identity.New(ctx, identity.Config{
		TrustedHeaders: &identity.TrustedHeadersConfig{
			User: "X-Veil-User", Roles: "X-Veil-Roles", Department: "X-Veil-Department", Email: "X-Veil-Email",
			TrustedPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
		},
		JWT: &identity.JWTConfig{Issuer: jwtIssuer, Audience: jwtAudience, HMACSecret: []byte(jwtSecret)},
	})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	auditLog, err := audit.Open(audit.Options{Path: auditPath, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer auditLog.Close()

	var rs []proxy.Route
	for _, r := range routes() {
		up := httptest.NewServer(r.upstream)
		defer up.Close()
		u, _ := url.Parse(up.URL)
		ad, err := r.adapter()
		if err != nil {
			return fmt.Errorf("route %s: %w", r.name, err)
		}
		pr := proxy.Route{
			Name: r.name, PathPrefix: r.prefix, Upstream: u, Adapter: ad,
			IdentityModes: []string{"trusted_headers"}, OnStoreError: "deny", Timeout: 30 * time.Second,
		}
		if r.jwt {
			inj, err := upstreamauth.NewStatic("Authorization", "Bearer patVeilServiceCredential.0001")
			if err != nil {
				return err
			}
			if pr.UpstreamAuth, err = upstreamauth.New(upstreamauth.Config{Injector: inj, Adapter: r.name}); err != nil {
				return err
			}
			pr.IdentityModes = []string{"jwt"}
		}
		rs = append(rs, pr)
	}
	h, err := proxy.New(proxy.Deps{
		Routes: rs, Identity: authn, Policy: eng, Budgets: limit.NewMemory(time.Now), Audit: auditLog,
		HashKey: []byte("tableserver-hash-key"), Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if err := json.NewEncoder(stdout).Encode(map[string]string{
		"veil": "http://" + ln.Addr().String(), "audit": auditPath,
		"jwt_secret": jwtSecret, "jwt_issuer": jwtIssuer, "jwt_audience": jwtAudience,
	}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
