package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/veilproxy/veil/internal/democrm"
	"github.com/veilproxy/veil/proxy/config"
)

// demoConfig is the configuration `veil demo` runs: the sample CRM behind one generic route,
// identity from trusted headers sent by curl on this machine.
const demoConfig = `# veil demo: the sample live-commerce CRM behind Veil
listen: "{{.Proxy}}"
admin_listen: "{{.Admin}}"
identity:
  trusted_headers:
    trusted_peers: ["127.0.0.1/32", "::1/128"]
audit:
  file: "{{.Audit}}"
log:
  level: warn
  format: text
alerts:
  notifiers:
    - {name: console, type: console}
routes:
  - name: livecrm
    path_prefix: /api/
    upstream: "http://{{.Upstream}}"
    generic:
      resources:
        - {match: /api/customers, type: customers, records: data, page_size_param: pageSize}
        - {match: /api/customers/export, type: customers, export: true, format: csv}
        - {match: "/api/customers/{id}", type: customers}
        - {match: /api/orders, type: orders, records: data, id: order_id, page_size_param: pageSize}
        - {match: "/api/orders/{id}", type: orders, id: order_id}
        - {match: /api/products, type: products, records: data}
`

type demoAddrs struct{ Proxy, Admin, Upstream, Audit string }

// demoConfigFor renders the demo configuration.
func demoConfigFor(a demoAddrs) (*config.Config, error) {
	var b strings.Builder
	if err := template.Must(template.New("demo").Parse(demoConfig)).Execute(&b, a); err != nil {
		return nil, err
	}
	return config.Parse("demo.yaml", []byte(b.String()))
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	proxyAddr := fs.String("proxy", "127.0.0.1:8080", "proxy listen address")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin listen address (/metrics, /healthz)")
	upAddr := fs.String("upstream", "127.0.0.1:8081", "sample CRM listen address")
	auditFile := fs.String("audit", "veil-demo-audit.jsonl", "audit log file")
	customers := fs.Int("customers", 1200, "customers to generate")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	upLn, err := net.Listen("tcp", *upAddr)
	if err != nil {
		return fmt.Errorf("sample CRM: %w", err)
	}
	crm := democrm.New(*customers, 42)
	upSrv := &http.Server{Handler: crm.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go upSrv.Serve(upLn)
	defer upSrv.Close()

	cfg, err := demoConfigFor(demoAddrs{Proxy: *proxyAddr, Admin: *adminAddr, Upstream: upLn.Addr().String(), Audit: *auditFile})
	if err != nil {
		return err
	}
	getenv := os.Getenv
	if os.Getenv("VEIL_HASH_KEY") == "" {
		key := make([]byte, 32)
		rand.Read(key)
		k := hex.EncodeToString(key)
		getenv = func(name string) string {
			if name == "VEIL_HASH_KEY" {
				return k
			}
			return os.Getenv(name)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := build(ctx, cfg, buildOptions{getenv: getenv, logOut: stderr})
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
	first := crm.Customers()[0]
	printDemoTour(stdout, pl.Addr().String(), al.Addr().String(), upLn.Addr().String(), *auditFile, first)
	return a.serve(ctx, pl, al)
}

func printDemoTour(w io.Writer, proxyAddr, adminAddr, upAddr, auditFile string, c democrm.Customer) {
	p := "http://" + proxyAddr
	hdr := func(user, roles string) string {
		return fmt.Sprintf(`-H 'X-Veil-User: %s' -H 'X-Veil-Roles: %s'`, user, roles)
	}
	fmt.Fprintf(w, `
Veil demo is running.
  proxy     %s   (policies built in, in-process budgets)
  upstream  http://%s   (sample live-commerce CRM, the data Veil protects)
  admin     http://%s/metrics
  audit     %s

Try each role (the first customer is %s, owned by %s):

  # 客服 customer service: phones, ID cards, bank cards, addresses masked; chat logs scanned
  curl -s %s '%s/api/customers?pageSize=2'

  # the same customer, straight from the upstream (what Veil hides)
  curl -s 'http://%s/api/customers/%s'

  # 主播 live-stream host: only her own customers, core fields redacted
  curl -s %s '%s/api/customers?pageSize=5'

  # host asks for 2000 at once: the page is capped and counted against her hourly budget
  curl -si %s '%s/api/customers?pageSize=2000' | head -20

  # 第三方 contractor: order status without personal data; customers and exports denied
  curl -s %s '%s/api/orders?pageSize=2'
  curl -s %s '%s/api/customers/export'

  # ops manager: CSV export, masked, within budget
  curl -s %s '%s/api/customers/export' | head -5

  # security admin: everything, every access audited
  curl -s %s '%s/api/customers/%s'

  # no identity: 401;  spoofed identity from a non-trusted peer is stripped before anything reads it
  curl -si '%s/api/customers' | head -1

Then:
  go run ./cmd/veil audit verify %s
  go run ./cmd/veil audit who --record %s %s
  curl -s http://%s/metrics | grep ^veil_

`, p, upAddr, adminAddr, auditFile, c.ID, c.OwnerID,
		hdr("alice", "cs_agent"), p,
		upAddr, c.ID,
		hdr(c.OwnerID, "host"), p,
		hdr(c.OwnerID, "host"), p,
		hdr("vendor_kuaidi", "contractor"), p,
		hdr("vendor_kuaidi", "contractor"), p,
		hdr("olivia", "ops_manager"), p,
		hdr("sam", "security_admin"), p, c.ID,
		p,
		auditFile, c.ID, auditFile, adminAddr)
}
