package airtable_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/airtable"
	"github.com/veilproxy/veil/adapters/airtable/airtabletest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

// secrets are the fixture's values a cs_agent must never see: phones, national ids, e-mail
// addresses (the customers' and their account managers'), street addresses.
var secrets = []string{
	"(415) 555-0132", "+86 138 0013 5521", "+46 70 555 12 34", "+91 98450 55501", "+33 1 55 55 01 77", "+233 24 555 0190",
	"123-45-6789", "310104199102285521", "GHA-712345678-9",
	"m.okafor@northwind-example.com", "li.na@example.cn", "priya.r@contoso-example.in", "theo.moreau@example.fr",
	"kwame.mensah@example.com.gh", "daniel.reyes@example.com", "wang.lei@example.com", "aisha.bello@example.com",
	"415 Mission St", "漕溪北路 88 号", "MG Road", "8 Rue de la Paix", "14 Independence Ave",
}

const base = "/v0/appVeilTest0000001/Customers"

// client sends requests through Veil with an Airtable token and reads the audit record of
// the last one (Veil writes it after the response has gone out).
type client struct {
	*veiltest.Rig
	up   *airtabletest.Server
	sent int
}

func newClient(t *testing.T, o airtable.Options) *client {
	t.Helper()
	ad, err := airtable.New(o)
	if err != nil {
		t.Fatal(err)
	}
	up := airtabletest.New()
	return &client{Rig: veiltest.New(t, veiltest.Options{Upstream: up, Adapter: ad, Policy: shipped(t)}), up: up}
}

// shipped is the shipped policy, compiled once for the package's tests.
func shipped(t *testing.T) *policy.Engine { return veiltest.Shipped(t) }

func (c *client) do(method, target, roles string, body string) (*http.Response, []byte) {
	c.T.Helper()
	c.sent++
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return c.Do(method, target, "alice", roles, b, "Authorization", "Bearer patVeilTest.0001", "Content-Type", "application/json")
}

func (c *client) audit(t *testing.T) audit.Record {
	t.Helper()
	return c.WaitAudit(c.sent)[c.sent-1]
}

type page struct {
	Records []struct {
		ID     string                     `json:"id"`
		Fields map[string]json.RawMessage `json:"fields"`
	} `json:"records"`
	Offset string `json:"offset"`
}

func TestCSAgentListsMaskedAndPages(t *testing.T) {
	c := newClient(t, airtable.Options{Tables: map[string]string{"Customers": "customers"}})
	var ids []string
	target := base + "?pageSize=4"
	for n, want := range []int{4, 2} {
		resp, body := c.do("GET", target, "cs_agent", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: GET %s = %d %s", n+1, target, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Errorf("page %d leaks %q", n+1, l)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != want {
			t.Fatalf("page %d holds %d records, want %d", n+1, len(p.Records), want)
		}
		a := c.audit(t)
		if a.Records != want || a.Action != "list" || a.Resource != "customers" || a.System != "airtable" {
			t.Errorf("page %d audit = %s %s/%s records %d, want airtable customers/list %d", n+1, a.System, a.Resource, a.Action, a.Records, want)
		}
		ids = append(ids, a.IDs...)
		for _, r := range p.Records {
			if string(r.Fields["Tier"]) == "" && r.ID != "recC3d4E5f6G7h8I9" {
				t.Errorf("record %s lost its public field Tier", r.ID)
			}
		}
		if n == 0 {
			if p.Offset == "" {
				t.Fatal("page 1 carries no offset")
			}
			target = base + "?pageSize=4&offset=" + url.QueryEscape(p.Offset)
		} else if p.Offset != "" {
			t.Errorf("page 2 offset = %q, want none", p.Offset)
		}
	}
	want := []string{"recA1b2C3d4E5f6G7", "recB2c3D4e5F6g7H8", "recC3d4E5f6G7h8I9", "recD4e5F6g7H8i9J0", "recE5f6G7h8I9j0K1", "recF6g7H8i9J0k1L2"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("audit ids over both pages (-want +got):\n%s", diff)
	}
}

func TestFieldIDsAreMaskedByName(t *testing.T) {
	names := map[string]string{}
	for name, id := range airtabletest.FieldIDs {
		names[id] = name
	}
	c := newClient(t, airtable.Options{FieldNames: names})
	for _, target := range []string{base + "?returnFieldsByFieldId=true", base + "/listRecords"} {
		method, body := "GET", ""
		if strings.HasSuffix(target, "listRecords") {
			method, body = "POST", `{"returnFieldsByFieldId": true, "pageSize": 10}`
		}
		resp, got := c.do(method, target, "cs_agent", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s = %d %s", method, target, resp.StatusCode, got)
		}
		if !strings.Contains(string(got), airtabletest.FieldIDs["Phone"]) {
			t.Fatalf("%s %s: the fake did not answer by field id: %s", method, target, got)
		}
		if l := veiltest.Leaks(got, secrets); len(l) > 0 {
			t.Errorf("%s %s leaks %q", method, target, l)
		}
		if a := c.audit(t); a.Records != 6 || a.Fields["phone"] == 0 {
			t.Errorf("%s %s audit = records %d fields %v, want 6 records and Phone masked", method, target, a.Records, a.Fields)
		}
	}
}

func TestReadErrorsAndPageSize(t *testing.T) {
	c := newClient(t, airtable.Options{})

	resp, body := c.do("GET", base+"/recB2c3D4e5F6g7H8", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("read = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Errorf("read leaks %q", l)
	}
	if a := c.audit(t); a.Action != "read" || a.Records != 1 || len(a.IDs) != 1 || a.IDs[0] != "recB2c3D4e5F6g7H8" {
		t.Errorf("read audit = %s records %d ids %v, want read 1 [recB2c3D4e5F6g7H8]", a.Action, a.Records, a.IDs)
	}

	resp, _ = c.do("GET", base+"/recDoesNotExist00", "cs_agent", "")
	if a := c.audit(t); resp.StatusCode != http.StatusNotFound || a.Records != 0 {
		t.Errorf("read of a missing record = %d, audit records %d; want 404, 0", resp.StatusCode, a.Records)
	}

	// The policy caps the page size; Airtable refuses more than 100 with an error body,
	// which is not counted.
	resp, body = c.do("GET", base+"?pageSize=2000", "cs_agent", "")
	if got := c.up.Last().Query.Get("pageSize"); got != "500" {
		t.Errorf("upstream saw pageSize=%q, want the cs_agent cap 500", got)
	}
	if a := c.audit(t); resp.StatusCode != http.StatusUnprocessableEntity || a.Records != 0 {
		t.Errorf("pageSize=2000 = %d %s, audit records %d; want Airtable's 422, 0 records", resp.StatusCode, body, a.Records)
	}

	n := len(c.up.Requests())
	for _, q := range []string{"pageSize=5&pageSize=100", "pageSize=5&PageSize=100", "pageSize=5&limit=100", "pageSize=x"} {
		resp, _ := c.do("GET", base+"?"+q, "cs_agent", "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", q, resp.StatusCode)
		}
	}
	if got := len(c.up.Requests()); got != n {
		t.Errorf("refused requests reached the upstream %d times", got-n)
	}
}

func TestWritesAreRecognisedAndDecided(t *testing.T) {
	c := newClient(t, airtable.Options{Tables: map[string]string{"Customers": "customers"}})
	tests := []struct {
		method, path, body, roles string
		status                    int
		action                    string
	}{
		{"POST", base, `{"fields": {"Tier": "Gold"}}`, "cs_agent", http.StatusForbidden, "create"},
		{"PATCH", base + "/recA1b2C3d4E5f6G7", `{"fields": {"Tier": "Silver"}}`, "cs_agent", http.StatusOK, "update"},
		{"PATCH", base + "/recA1b2C3d4E5f6G7", `{"fields": {"Phone": "13800000000"}}`, "cs_agent", http.StatusForbidden, "update"},
		{"PATCH", base, `{"records": [{"id": "recA1b2C3d4E5f6G7", "fields": {"Tier": "Gold", "National ID": "1"}}]}`, "cs_agent", http.StatusForbidden, "update"},
		{"PUT", base + "/recA1b2C3d4E5f6G7", `{"fields": {}}`, "cs_agent", http.StatusForbidden, "update"},
		{"PATCH", base, `{"performUpsert": {"fieldsToMergeOn": ["Name"]}, "records": [{"fields": {"Tier": "Gold"}}]}`, "cs_agent", http.StatusForbidden, "create"},
		{"DELETE", base + "/recA1b2C3d4E5f6G7", "", "cs_agent", http.StatusForbidden, "delete"},
		{"DELETE", base + "?records[]=recA1b2C3d4E5f6G7&records[]=recB2c3D4e5F6g7H8", "", "cs_agent", http.StatusForbidden, "delete"},
		{"DELETE", base + "/recA1b2C3d4E5f6G7", "", "security_admin", http.StatusForbidden, "delete"},
		{"GET", "/v0/meta/bases/appVeilTest0000001/tables", "", "cs_agent", http.StatusForbidden, "other"},
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
	// The acknowledgement of an allowed update is masked too (the detectors run on it).
	resp, body := c.do("PATCH", base+"/recA1b2C3d4E5f6G7", "cs_agent", `{"fields": {"Tier": "call 13812345678"}}`)
	if resp.StatusCode != http.StatusOK || veiltest.Leaks(body, []string{"13812345678"}) != nil {
		t.Errorf("update acknowledgement = %d %s, want 200 with the phone masked", resp.StatusCode, body)
	}
	c.audit(t)
}

func TestDescribe(t *testing.T) {
	ad, err := airtable.New(airtable.Options{
		Tables:     map[string]string{"tblCust": "customers", "appB/Leads": "leads"},
		FieldNames: map[string]string{"fldPhone": "Phone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target, body string
		want                 adapters.Description
		records              string
		err                  bool
	}{
		{method: "GET", target: "/v0/appA/tblCust?pageSize=20&fields[]=Name&fields[]=fldPhone",
			want:    adapters.Description{System: "airtable", Type: "customers", Action: "list", PageSize: 20, PageSizeParam: "pageSize", Fields: []string{"Name", "Phone"}},
			records: "records"},
		{method: "GET", target: "/v0/appA/Other%20Table/",
			want:    adapters.Description{System: "airtable", Type: "Other Table", Action: "list", PageSize: 100, PageSizeParam: "pageSize"},
			records: "records"},
		{method: "GET", target: "/v0/appB/Leads?maxRecords=3",
			want:    adapters.Description{System: "airtable", Type: "leads", Action: "list", PageSize: 3, PageSizeParam: "pageSize"},
			records: "records"},
		{method: "GET", target: "/v0/appA/tblCust?limit=50",
			want:    adapters.Description{System: "airtable", Type: "customers", Action: "list", PageSize: 50, PageSizeParam: "limit"},
			records: "records"},
		{method: "GET", target: "/v0/appA/tblCust?returnFieldsByFieldId=true&returnFieldsByFieldId=false", err: true},
		{method: "GET", target: "/v0/appA/tblCust?maxRecords=-1", err: true},
		{method: "POST", target: "/v0/appA/tblCust/listRecords", body: `{"pageSize": 30, "fields": ["fldPhone"]}`,
			want:    adapters.Description{System: "airtable", Type: "customers", Action: "list", PageSize: 30, Fields: []string{"Phone"}},
			records: "records"},
		{method: "POST", target: "/v0/appA/tblCust/listRecords", body: `[`, err: true},
		{method: "GET", target: "/v0/appA/tblCust/recX",
			want:    adapters.Description{System: "airtable", Type: "customers", Action: "read", ID: "recX", PageSize: 1},
			records: "@this"},
		{method: "POST", target: "/v0/appA/tblCust", body: `{"records": [{"fields": {"fldPhone": "1"}}, {"fields": {"Tier": "x"}}]}`,
			want: adapters.Description{System: "airtable", Type: "customers", Action: "create", Fields: []string{"Phone", "Tier"}}},
		{method: "PATCH", target: "/v0/appA/tblCust/recX", body: `{"fields": {"Tier": "x"}}`,
			want: adapters.Description{System: "airtable", Type: "customers", Action: "update", ID: "recX", Fields: []string{"Tier"}}},
		{method: "DELETE", target: "/v0/appA/tblCust?records[]=recX",
			want: adapters.Description{System: "airtable", Type: "customers", Action: "delete", ID: "recX"}},
		{method: "POST", target: "/v0/appA/tblCust/recX",
			want: adapters.Description{System: "airtable", Action: "other"}},
		{method: "GET", target: "/v0/meta/bases",
			want: adapters.Description{System: "airtable", Action: "other"}},
		{method: "GET", target: "/v0/appA/tblCust/recX/comments",
			want: adapters.Description{System: "airtable", Action: "other"}},
		{method: "POST", target: "/v0/appA/tblCust/sync/abc",
			want: adapters.Description{System: "airtable", Action: "other"}},
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
		l := ad.Layout(d, http.StatusOK, http.Header{})
		if l.Records != tc.records || l.HasRecords != (tc.records != "") || l.Aliases["fldPhone"] != "Phone" {
			t.Errorf("Layout(%s %s) = records %q has %v aliases %v, want %q", tc.method, tc.target, l.Records, l.HasRecords, l.Aliases, tc.records)
		}
		if l := ad.Layout(d, http.StatusUnprocessableEntity, http.Header{}); l.HasRecords || l.Records != "" {
			t.Errorf("Layout(%s %s, 422) counts records at %q", tc.method, tc.target, l.Records)
		}
		d.State = nil
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("Describe(%s %s) (-want +got):\n%s", tc.method, tc.target, diff)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []airtable.Options{
		{FieldNames: map[string]string{"Phone": "Phone"}},
		{FieldNames: map[string]string{"fldX": " "}},
		{Tables: map[string]string{"tblX": ""}},
	} {
		if _, err := airtable.New(o); err == nil {
			t.Errorf("New(%+v) = nil error, want one", o)
		}
	}
}

// TestShippedClassification checks the shipped policy's plan for a cs_agent reading an
// Airtable table: the fixture's personal fields are masked in their formats.
func TestShippedClassification(t *testing.T) {
	ctx := context.Background()
	eng := shipped(t)
	for _, typ := range []string{"Customers", "customers"} {
		d, err := eng.Decide(ctx, policy.Input{
			User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}},
			Request:  policy.Request{Method: "GET", Path: base},
			Route:    "airtable",
			Resource: policy.Resource{System: "airtable", Type: typ, Action: "list", PageSize: 100},
		})
		if err != nil || !d.Allow {
			t.Fatalf("Decide(cs_agent list %s) = %+v, %v; want an allow", typ, d, err)
		}
		want := map[string]string{
			"phone": "mask:phone", "email": "mask:email", "national id": "mask:id_card",
			"address": "mask:address", "date of birth": "mask:generic", "bank account": "mask:bank_card",
		}
		if typ == "customers" {
			want["name"] = "mask:name"
		}
		for f, a := range want {
			if d.Fields[f] != a {
				t.Errorf("Decide(cs_agent list %s).Fields[%q] = %q, want %q", typ, f, d.Fields[f], a)
			}
		}
	}
}
