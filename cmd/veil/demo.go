package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/veilproxy/veil/internal/democrm"
	"github.com/veilproxy/veil/policies"
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
	script := fs.Bool("script", false, "play a departing host paging through the customer list: the budget alert fires and containment stops her")
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
	o := buildOptions{getenv: getenv, logOut: stderr, alertOut: stdout}
	if *script {
		// The scripted run contains on the budget rule (the shipped rules only alert).
		if o.policyFS, err = demoScriptPolicy(); err != nil {
			return err
		}
	}
	a, err := build(ctx, cfg, o)
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
	if *script {
		go playDepartingHost(ctx, stdout, "http://"+pl.Addr().String(), first.OwnerID)
	}
	return a.serve(ctx, pl, al)
}

// demoScriptPolicy is the shipped policy with containment on the budget rule: a user who
// takes 80 % of a budget is restricted for 30 minutes.
func demoScriptPolicy() (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		if p == "veil/data.json" {
			var data map[string]any
			if err := json.Unmarshal(b, &data); err != nil {
				return err
			}
			alerts, _ := data["alerts"].(map[string]any)
			budget, _ := alerts["budget"].(map[string]any)
			if budget == nil {
				return fmt.Errorf("policy data has no alerts.budget")
			}
			budget["contain"] = "30m"
			if b, err = json.Marshal(data); err != nil {
				return err
			}
		}
		out[p] = &fstest.MapFile{Data: b}
		return nil
	})
	return out, err
}

// playDepartingHost pages through the customer list as a host about to leave, until Veil
// contains her, printing what each request got.
func playDepartingHost(ctx context.Context, w io.Writer, proxyURL, host string) {
	say := func(format string, args ...any) { fmt.Fprintf(w, "[script] "+format+"\n", args...) }
	get := func(page int) (int, int) {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/customers?pageSize=100&page=%d", proxyURL, page), nil)
		req.Header.Set("X-Veil-User", host)
		req.Header.Set("X-Veil-Roles", "host")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0
		}
		defer resp.Body.Close()
		var body struct {
			Data []json.RawMessage `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, len(body.Data)
	}
	time.Sleep(time.Second)
	say("%s, who handed in her notice, pages through the customer list (budget: 500 records an hour)", host)
	for page := 1; page <= 12 && ctx.Err() == nil; page++ {
		status, n := get(page)
		say("page %d: HTTP %d, %d records", page, status, n)
		if status != http.StatusOK || n == 0 {
			break
		}
		time.Sleep(700 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // the detector judges every 2 s
	status, _ := get(1)
	if status == http.StatusOK {
		say("after the alert window: HTTP %d — %s was not contained (did the budget alert fire?)", status, host)
		return
	}
	say("after the alert: HTTP %d — %s is contained (input.user.restricted); a security admin lifts it with", status, host)
	say("  VEIL_ADMIN_TOKEN=… veil users release %s", host)
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
