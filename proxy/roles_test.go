package proxy_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/veilproxy/veil/internal/democrm"
)

type listBody struct {
	Data  []map[string]any `json:"data"`
	Total int              `json:"total"`
}

func allSecrets(cs []democrm.Customer) []string {
	var s []string
	for _, c := range cs {
		s = append(s, secretsOf(c)...)
	}
	return s
}

func TestCSAgentSeesEverySensitiveValueMasked(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, body := r.do("GET", "/api/customers?pageSize=50", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/customers = %d %s", resp.StatusCode, body)
	}
	if l := leaks(body, allSecrets(r.crm.Customers())); len(l) > 0 {
		t.Fatalf("cs_agent response leaks %d values, first %q", len(l), l[0])
	}
	var lb listBody
	if err := json.Unmarshal(body, &lb); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	if len(lb.Data) != 50 || lb.Total != 60 {
		t.Fatalf("got %d records, total %d; want 50 of 60", len(lb.Data), lb.Total)
	}
	first, want := lb.Data[0], r.crm.Customers()[0]
	if got := first["mobile"]; got != want.Mobile[:3]+"****"+want.Mobile[7:] {
		t.Errorf("mobile = %v, want %s****%s", got, want.Mobile[:3], want.Mobile[7:])
	}
	if got := first["id_card"]; got != want.IDCard[:6]+"********"+want.IDCard[14:] {
		t.Errorf("id_card = %v, want %s********%s", got, want.IDCard[:6], want.IDCard[14:])
	}
	if got, _ := first["id"].(string); got != want.ID {
		t.Errorf("id = %q, want %q (public fields kept)", got, want.ID)
	}
	for _, h := range []string{"Etag", "Last-Modified"} {
		if resp.Header.Get(h) != "" {
			t.Errorf("header %s = %q, want none on a rewritten response", h, resp.Header.Get(h))
		}
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control = %q, want private, no-store", cc)
	}
	recs := r.auditRecords()
	if len(recs) != 1 {
		t.Fatalf("audit records = %d, want 1", len(recs))
	}
	a := recs[0]
	if a.User != "alice" || a.Decision != "allow" || a.Records != 50 || a.Resource != "customers" || a.Action != "list" || a.PolicyRevision == "" {
		t.Errorf("audit record = %+v", a)
	}
	if len(a.IDs) != 50 || a.IDs[0] != want.ID {
		t.Errorf("audit ids = %v, want the 50 ids returned", a.IDs)
	}
	if a.Fields["mobile"] == 0 {
		t.Errorf("audit fields = %v, want mobile counted", a.Fields)
	}
}

func TestHostSeesOnlyOwnCustomers(t *testing.T) {
	r := newRig(t, rigOptions{})
	host := democrm.Hosts[1]
	resp, body := r.do("GET", "/api/customers?pageSize=60", host, "host", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var lb listBody
	if err := json.Unmarshal(body, &lb); err != nil {
		t.Fatal(err)
	}
	if len(lb.Data) == 0 || len(lb.Data) >= 60 {
		t.Fatalf("host got %d records, want only her own (about a third of 60)", len(lb.Data))
	}
	for _, c := range lb.Data {
		if c["owner_id"] != host {
			t.Fatalf("host %s got a record owned by %v", host, c["owner_id"])
		}
	}
	if l := leaks(body, allSecrets(r.crm.Customers())); len(l) > 0 {
		t.Fatalf("host response leaks %q", l[0])
	}
	recs := r.auditRecords()
	if recs[0].Records != len(lb.Data) {
		t.Errorf("audit records = %d, want %d (after row filtering)", recs[0].Records, len(lb.Data))
	}
}

func TestContractor(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, body := r.do("GET", "/api/customers", "vendor", "contractor", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("contractor GET customers = %d, want 403", resp.StatusCode)
	}
	var e struct{ Error, Reason string }
	if json.Unmarshal(body, &e) != nil || e.Reason == "" {
		t.Errorf("deny body = %s, want a JSON reason", body)
	}
	resp, body = r.do("GET", "/api/customers/export", "vendor", "contractor", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("contractor export = %d, want 403", resp.StatusCode)
	}
	resp, body = r.do("GET", "/api/orders?pageSize=20", "vendor", "contractor", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("contractor orders = %d %s", resp.StatusCode, body)
	}
	if l := leaks(body, allSecrets(r.crm.Customers())); len(l) > 0 {
		t.Fatalf("contractor orders leak %q", l[0])
	}
	var lb listBody
	json.Unmarshal(body, &lb)
	if len(lb.Data) != 20 || lb.Data[0]["status"] == nil {
		t.Fatalf("orders = %s, want 20 with status", body)
	}
}

func TestOpsManagerExportsMaskedCSV(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, body := r.do("GET", "/api/customers/export", "olivia", "ops_manager", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export = %d %s", resp.StatusCode, body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v", err)
	}
	if len(rows) != 61 || rows[0][0] != "id" {
		t.Fatalf("export has %d rows (header %v), want header + 60", len(rows), rows[0])
	}
	if l := leaks(body, allSecrets(r.crm.Customers())); len(l) > 0 {
		t.Fatalf("export leaks %q", l[0])
	}
	recs := r.auditRecords()
	if len(recs) != 1 || !recs[0].Export || recs[0].Records != 60 {
		t.Fatalf("audit = %+v, want one export of 60 records", recs)
	}
}

func TestSecurityAdminSeesEverything(t *testing.T) {
	r := newRig(t, rigOptions{})
	c := r.crm.Customers()[3]
	resp, body := r.do("GET", "/api/customers/"+c.ID, "sam", "security_admin", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(string(body), c.Mobile) || !strings.Contains(string(body), c.IDCard) {
		t.Fatalf("security_admin should see raw values: %s", body)
	}
}

func TestIdentityRequired(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, _ := r.do("GET", "/api/customers", "", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no identity = %d, want 401", resp.StatusCode)
	}
	// The same headers from a peer that is not trusted are stripped before anything reads them.
	r = newRig(t, rigOptions{TrustedPeers: []string{"10.9.0.0/16"}})
	resp, _ = r.do("GET", "/api/customers", "sam", "security_admin", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("spoofed identity headers = %d, want 401", resp.StatusCode)
	}
}

func TestNoRouteIs404(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, _ := r.do("GET", "/admin/export", "sam", "security_admin", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unrouted path = %d, want 404", resp.StatusCode)
	}
}

func TestUnknownResourceDenied(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, _ := r.do("GET", "/api/secrets", "olivia", "ops_manager", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unknown resource = %d, want 403", resp.StatusCode)
	}
}

func TestWrites(t *testing.T) {
	r := newRig(t, rigOptions{})
	c := r.crm.Customers()[0]
	tests := []struct {
		name, method, path, roles, body string
		want                            int
	}{
		{"cs_agent updates a public field", "PATCH", "/api/customers/" + c.ID, "cs_agent", `{"level":"VIP"}`, 200},
		{"cs_agent may not update a phone", "PATCH", "/api/customers/" + c.ID, "cs_agent", `{"mobile":"13900000000"}`, 403},
		{"cs_agent may not create", "POST", "/api/customers", "cs_agent", `{"name":"x"}`, 403},
		{"cs_agent may not delete", "DELETE", "/api/customers/" + c.ID, "cs_agent", "", 403},
		{"host may not write", "PATCH", "/api/customers/" + c.ID, "host", `{"level":"VIP"}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b []byte
			if tt.body != "" {
				b = []byte(tt.body)
			}
			resp, body := r.do(tt.method, tt.path, "u1", tt.roles, b, "Content-Type", "application/json")
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s as %s = %d %s, want %d", tt.method, tt.path, tt.roles, resp.StatusCode, body, tt.want)
			}
			if l := leaks(body, secretsOf(c)); len(l) > 0 && tt.roles != "security_admin" {
				t.Fatalf("write response leaks %q", l[0])
			}
		})
	}
}
