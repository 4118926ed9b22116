package nocodb_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/nocodb"
	"github.com/veilproxy/veil/adapters/nocodb/nocodbtest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

// secrets are the fixture's values a cs_agent must never see: phones, national ids, e-mail
// addresses, street addresses, and (the table being classified as customers) names.
var secrets = []string{
	"+14155550132", "+8613800135521", "+46705551234", "+919845055501", "+33155550177", "+233245550190",
	"123-45-6789", "310104199102285521", "19800514-1234", "GHA-712345678-9", "1 00 01 75 123 456 78",
	"m.okafor@northwind-example.com", "li.na@example.cn", "priya.r@contoso-example.in", "theo.moreau@example.fr", "kwame.mensah@example.com.gh",
	"415 Mission St", "漕溪北路 88 号", "MG Road", "8 Rue de la Paix", "14 Independence Ave",
	"Margaret Okafor", "Priya Raghunathan", "Kwame Mensah",
}

const (
	v2 = "/api/v2/tables/mCustomers0001/records"
	v3 = "/api/v3/data/pBase0001/mCustomers0001/records"
)

// shipped is the shipped policy, compiled once for the package's tests.
func shipped(t *testing.T) *policy.Engine { return veiltest.Shipped(t) }

// client sends requests through Veil with a NocoDB token and reads the audit record of the
// last one (Veil writes it after the response has gone out).
type client struct {
	*veiltest.Rig
	up   *nocodbtest.Server
	sent int
}

func newClient(t *testing.T) *client {
	t.Helper()
	ad, err := nocodb.New(nocodb.Options{Tables: map[string]string{"mCustomers0001": "customers", "Customers": "customers"}})
	if err != nil {
		t.Fatal(err)
	}
	up := nocodbtest.New()
	return &client{Rig: veiltest.New(t, veiltest.Options{Upstream: up, Adapter: ad, Policy: shipped(t)}), up: up}
}

func (c *client) do(method, target, roles, body string) (*http.Response, []byte) {
	c.T.Helper()
	c.sent++
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return c.Do(method, target, "alice", roles, b, "xc-token", "nc-test-token", "Content-Type", "application/json")
}

func (c *client) audit(t *testing.T) audit.Record {
	t.Helper()
	return c.WaitAudit(c.sent)[c.sent-1]
}

func TestV2ListMaskedCountedAndPaged(t *testing.T) {
	c := newClient(t)
	var ids []string
	for _, p := range []struct {
		query string
		n     int
		last  bool
	}{{"limit=4", 4, false}, {"limit=4&offset=4", 2, true}} {
		resp, body := c.do("GET", v2+"?"+p.query, "cs_agent", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET ?%s = %d %s", p.query, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Errorf("GET ?%s leaks %q", p.query, l)
		}
		var doc struct {
			List     []map[string]any `json:"list"`
			PageInfo struct {
				TotalRows  int  `json:"totalRows"`
				IsLastPage bool `json:"isLastPage"`
			} `json:"pageInfo"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.List) != p.n || doc.PageInfo.TotalRows != 6 || doc.PageInfo.IsLastPage != p.last {
			t.Errorf("GET ?%s = %d rows, pageInfo %+v; want %d rows of 6, last %v", p.query, len(doc.List), doc.PageInfo, p.n, p.last)
		}
		a := c.audit(t)
		if a.Records != p.n || a.Action != "list" || a.Resource != "customers" || a.System != "nocodb" {
			t.Errorf("GET ?%s audit = %s %s/%s records %d, want nocodb customers/list %d", p.query, a.System, a.Resource, a.Action, a.Records, p.n)
		}
		ids = append(ids, a.IDs...)
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "4", "5", "6"}, ids); diff != "" {
		t.Errorf("audit ids over both pages (-want +got):\n%s", diff)
	}
}

func TestV3ListFollowsNext(t *testing.T) {
	c := newClient(t)
	target := v3 + "?pageSize=4"
	for n, want := range []int{4, 2} {
		resp, body := c.do("GET", target, "cs_agent", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Errorf("page %d leaks %q", n+1, l)
		}
		var doc struct {
			Records []struct {
				ID     int            `json:"id"`
				Fields map[string]any `json:"fields"`
			} `json:"records"`
			Next *string `json:"next"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Records) != want {
			t.Fatalf("page %d = %d records, want %d", n+1, len(doc.Records), want)
		}
		if a := c.audit(t); a.Records != want || len(a.IDs) != want {
			t.Errorf("page %d audit records %d ids %v, want %d", n+1, a.Records, a.IDs, want)
		}
		if n == 1 {
			if doc.Next != nil {
				t.Errorf("last page next = %q, want null", *doc.Next)
			}
			break
		}
		if doc.Next == nil {
			t.Fatal("page 1 has no next link")
		}
		u, err := url.Parse(*doc.Next)
		if err != nil {
			t.Fatal(err)
		}
		target = u.Path + "?" + u.RawQuery
	}
}

func TestPageSizeReadsAndExport(t *testing.T) {
	c := newClient(t)

	resp, _ := c.do("GET", v2+"?limit=5000", "cs_agent", "")
	if got := c.up.Last().Query.Get("limit"); resp.StatusCode != http.StatusOK || got != "500" {
		t.Errorf("limit=5000 = %d, upstream saw limit=%q; want 200 and the cs_agent cap 500", resp.StatusCode, got)
	}
	c.audit(t)
	n := len(c.up.Requests())
	for _, q := range []string{"l=5000", "limit=5&limit=5000", "limit=5&LIMIT=5000", "limit=-1", "fields=Title&fields=Phone"} {
		resp, _ := c.do("GET", v2+"?"+q, "cs_agent", "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", q, resp.StatusCode)
		}
		c.audit(t)
	}
	resp, _ = c.do("GET", v3+"?limit=5000", "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("v3 GET ?limit=5000 = %d, want 400 (NocoDB reads limit as the page size)", resp.StatusCode)
	}
	c.audit(t)
	if got := len(c.up.Requests()); got != n {
		t.Errorf("refused requests reached the upstream %d times", got-n)
	}

	for _, p := range []string{v2 + "/2", v3 + "/2"} {
		resp, body := c.do("GET", p, "cs_agent", "")
		if resp.StatusCode != http.StatusOK || veiltest.Leaks(body, secrets) != nil {
			t.Errorf("GET %s = %d %s, want 200 masked", p, resp.StatusCode, body)
		}
		if a := c.audit(t); a.Action != "read" || a.Records != 1 || len(a.IDs) != 1 || a.IDs[0] != "2" {
			t.Errorf("GET %s audit = %s records %d ids %v, want read 1 [2]", p, a.Action, a.Records, a.IDs)
		}
	}
	resp, body := c.do("GET", v2+"/count", "cs_agent", "")
	if a := c.audit(t); resp.StatusCode != http.StatusOK || a.Records != 0 || a.Action != "list" {
		t.Errorf("GET count = %d %s, audit %s records %d; want 200, list, 0", resp.StatusCode, body, a.Action, a.Records)
	}
	resp, body = c.do("GET", v2+"/99", "cs_agent", "")
	if a := c.audit(t); resp.StatusCode != http.StatusNotFound || a.Records != 0 {
		t.Errorf("GET missing record = %d %s, audit records %d; want 404, 0", resp.StatusCode, body, a.Records)
	}

	export := "/api/v1/db/data/noco/pCRM/Customers/views/All/export/csv"
	resp, body = c.do("GET", export, "cs_agent", "")
	if a := c.audit(t); resp.StatusCode != http.StatusForbidden || !a.Export || a.Action != "export" {
		t.Errorf("cs_agent export = %d %s, audit export %v action %s; want 403, an export", resp.StatusCode, body, a.Export, a.Action)
	}
	resp, body = c.do("GET", export, "ops_manager", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ops_manager export = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Errorf("ops_manager export leaks %q", l)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(rows) != 7 || rows[0][1] != "Title" {
		t.Errorf("export = %d rows (%v), header %v; want the header and 6 rows", len(rows), err, rows[0])
	}
	if a := c.audit(t); a.Records != 6 || !a.Export || a.Resource != "customers" {
		t.Errorf("export audit = records %d export %v resource %q, want 6, true, customers", a.Records, a.Export, a.Resource)
	}
	resp, _ = c.do("GET", "/api/v1/db/data/noco/pCRM/Customers/views/All/export/excel", "ops_manager", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("excel export = %d, want 400 (cannot be masked)", resp.StatusCode)
	}
	c.audit(t)
}

func TestWritesAreRecognisedAndDecided(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		method, path, body, roles string
		status                    int
		action                    string
	}{
		{"POST", v2, `{"Title": "New", "Tier": "Gold"}`, "cs_agent", http.StatusForbidden, "create"},
		{"PATCH", v2, `{"Id": 1, "Tier": "Gold"}`, "cs_agent", http.StatusOK, "update"},
		{"PATCH", v2, `[{"Id": 1, "Tier": "Gold"}, {"Id": 2, "Phone": "13800000000"}]`, "cs_agent", http.StatusForbidden, "update"},
		{"PATCH", v2, `{"Id": 1}`, "cs_agent", http.StatusForbidden, "update"},
		{"DELETE", v2, `{"Id": 1}`, "cs_agent", http.StatusForbidden, "delete"},
		{"POST", v3, `{"fields": {"Tier": "Gold"}}`, "cs_agent", http.StatusForbidden, "create"},
		{"PATCH", v3, `{"id": 1, "fields": {"Tier": "Gold"}}`, "cs_agent", http.StatusOK, "update"},
		{"PATCH", v3, `[{"id": 1, "fields": {"Email": "x@example.com"}}]`, "cs_agent", http.StatusForbidden, "update"},
		{"DELETE", v3, `[{"id": 1}]`, "cs_agent", http.StatusForbidden, "delete"},
		{"PATCH", v2 + "/1", `{"Tier": "Gold"}`, "cs_agent", http.StatusForbidden, "other"},
	}
	for _, tc := range tests {
		resp, body := c.do(tc.method, tc.path, tc.roles, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s as %s = %d %s, want %d", tc.method, tc.path, tc.body, tc.roles, resp.StatusCode, body, tc.status)
		}
		if a := c.audit(t); a.Action != tc.action || a.Records != 0 {
			t.Errorf("%s %s audit = action %q records %d, want %s, 0", tc.method, tc.path, a.Action, a.Records, tc.action)
		}
	}
}

func TestDescribe(t *testing.T) {
	ad, err := nocodb.New(nocodb.Options{Tables: map[string]string{"mC": "customers"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target, body string
		want                 adapters.Description
		records, id          string
		csv                  bool
		err                  bool
	}{
		{method: "GET", target: "/api/v2/tables/mC/records?limit=10&offset=20&fields=Title,Email",
			want:    adapters.Description{System: "nocodb", Type: "customers", Action: "list", PageSize: 10, PageSizeParam: "limit", Fields: []string{"Title", "Email"}},
			records: "list", id: "Id"},
		{method: "GET", target: "/api/v2/tables/mOther/records",
			want:    adapters.Description{System: "nocodb", Type: "mOther", Action: "list", PageSize: 25, PageSizeParam: "limit"},
			records: "list", id: "Id"},
		{method: "GET", target: "/api/v2/tables/mC/records?l=10", err: true},
		{method: "GET", target: "/api/v2/tables/mC/records/7",
			want:    adapters.Description{System: "nocodb", Type: "customers", Action: "read", ID: "7", PageSize: 1},
			records: "@this", id: "Id"},
		{method: "GET", target: "/api/v2/tables/mC/records/count",
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "list"}, id: "Id"},
		{method: "DELETE", target: "/api/v2/tables/mC/records", body: `[{"Id": 7}]`,
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "delete", ID: "7"}, id: "Id"},
		{method: "POST", target: "/api/v2/tables/mC/records", body: `[{"Title": "a"}, {"Email": "b", "Id": 3}]`,
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "create", Fields: []string{"Email", "Title"}}, id: "Id"},
		{method: "PATCH", target: "/api/v2/tables/mC/records", body: `not json`,
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "update"}, id: "Id"},
		{method: "GET", target: "/api/v3/data/pB/mC/records?pageSize=100&page=2",
			want:    adapters.Description{System: "nocodb", Type: "customers", Action: "list", PageSize: 100, PageSizeParam: "pageSize"},
			records: "records", id: "id"},
		{method: "GET", target: "/api/v3/data/pB/mC/records/9",
			want:    adapters.Description{System: "nocodb", Type: "customers", Action: "read", ID: "9", PageSize: 1},
			records: "@this", id: "id"},
		{method: "PATCH", target: "/api/v3/data/pB/mC/records", body: `{"records": [{"id": 9, "fields": {"Phone": "1"}}]}`,
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "update", Fields: []string{"Phone"}}, id: "id"},
		{method: "GET", target: "/api/v1/db/data/noco/p/mC/views/v/export/csv",
			want: adapters.Description{System: "nocodb", Type: "customers", Action: "export", Export: true}, id: "Id", csv: true},
		{method: "GET", target: "/api/v1/db/data/noco/p/mC/views/v/export/excel", err: true},
		{method: "POST", target: "/api/v2/export/vwX/csv",
			want: adapters.Description{System: "nocodb", Type: "export", Action: "export", Export: true}, id: "Id", csv: true},
		{method: "GET", target: "/api/v2/tables/mC/links/lnk/records/1",
			want: adapters.Description{System: "nocodb", Action: "other"}, id: "Id"},
		{method: "GET", target: "/api/v1/db/data/noco/p/mC",
			want: adapters.Description{System: "nocodb", Action: "other"}, id: "Id"},
		{method: "GET", target: "/api/v2/tables/mC/records/1/extra",
			want: adapters.Description{System: "nocodb", Action: "other"}, id: "Id"},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		req := &adapters.Request{Method: tc.method, Path: u.Path, Query: u.Query()}
		if tc.body != "" {
			req.Body = []byte(tc.body)
		}
		d, err := ad.Describe(req)
		if tc.err {
			if err == nil {
				t.Errorf("Describe(%s %s) = %+v, want an error", tc.method, tc.target, d)
			}
			continue
		}
		if err != nil {
			t.Errorf("Describe(%s %s) error: %v", tc.method, tc.target, err)
			continue
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if tc.csv {
			h.Set("Content-Type", "text/csv; charset=utf-8")
		}
		l := ad.Layout(d, http.StatusOK, h)
		if l.Records != tc.records || l.ID != tc.id || l.HasRecords != (tc.records != "" || tc.csv) || (l.Format == 1) != tc.csv {
			t.Errorf("Layout(%s %s) = %+v, want records %q id %q csv %v", tc.method, tc.target, l, tc.records, tc.id, tc.csv)
		}
		if l := ad.Layout(d, http.StatusBadRequest, h); l.HasRecords {
			t.Errorf("Layout(%s %s, 400) counts records", tc.method, tc.target)
		}
		d.State = nil
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("Describe(%s %s) (-want +got):\n%s", tc.method, tc.target, diff)
		}
	}
}

func TestShippedClassification(t *testing.T) {
	ctx := context.Background()
	d, err := shipped(t).Decide(ctx, policy.Input{
		User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}},
		Request:  policy.Request{Method: "GET", Path: v2},
		Route:    "nocodb",
		Resource: policy.Resource{System: "nocodb", Type: "customers", Action: "list", PageSize: 25},
	})
	if err != nil || !d.Allow {
		t.Fatalf("Decide(cs_agent list customers) = %+v, %v; want an allow", d, err)
	}
	for f, a := range map[string]string{
		"phone": "mask:phone", "email": "mask:email", "nationalid": "mask:id_card", "address": "mask:address",
		"dateofbirth": "mask:generic", "title": "mask:name", "bankaccount": "mask:bank_card", "notes": "mask",
	} {
		if d.Fields[f] != a {
			t.Errorf("Decide(cs_agent list customers).Fields[%q] = %q, want %q", f, d.Fields[f], a)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	if _, err := nocodb.New(nocodb.Options{Tables: map[string]string{"m": " "}}); err == nil {
		t.Error("New(tables m: ' ') = nil error, want one")
	}
}
