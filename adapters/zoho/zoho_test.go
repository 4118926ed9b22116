package zoho_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/zoho"
	"github.com/veilproxy/veil/adapters/zoho/zohotest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/mask"
	"github.com/veilproxy/veil/proxy/policy"
)

const token = "Zoho-oauthtoken 1000.test.token"

// secrets are the fixture's values a cs_agent must never see: e-mail addresses (the
// contacts' and their owners'), phones, mobiles, national ids and streets.
var secrets = []string{
	"grace.hopper@example.com", "chen.xiaoming@example.cn", "xm.chen@example.net", "ananya.iyer@example.in", "sofia.martinez@example.es",
	"patricia.boyle@zylker-example.com", "zhang.wei@zylker-example.com", "ravi.kumar@zylker-example.com",
	"+1-555-010-4477", "021-5555-0107", "+91-44-5555-0166", "+34 915 55 01 23", "+91-44-5555-0170",
	"+1-555-010-9912", "13900135578", "+81-90-5555-0123", "+91-94440-55512", "+34 655 55 01 89",
	"987-65-4321", "110101199003075578", "5555 4444 3333", "12345678Z",
	"1 Navy Yard Pl", "建国路 93 号", "Lakshmi Nivas", "Calle de Alcalá",
}

var shipped *policy.Engine

func TestMain(m *testing.M) {
	eng, err := policy.New(context.Background(), policy.Options{FS: policies.FS})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shipped = eng
	os.Exit(m.Run())
}

func rig(t *testing.T) (*veiltest.Rig, *zohotest.Server) {
	t.Helper()
	ad, err := zoho.New(zoho.Options{})
	if err != nil {
		t.Fatal(err)
	}
	z := zohotest.New()
	return veiltest.New(t, veiltest.Options{Upstream: z, Adapter: ad, PathPrefix: "/crm/", Policy: shipped}), z
}

func do(r *veiltest.Rig, method, target, user, roles string, body string) (*http.Response, []byte) {
	r.T.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return r.Do(method, target, user, roles, b, "Authorization", token, "Content-Type", "application/json")
}

// audits waits for n audit records: a request's record is written as its handler returns,
// which may be just after the client has read the response.
func audits(t *testing.T, r *veiltest.Rig, n int) []audit.Record {
	t.Helper()
	recs := r.WaitAudit(n)
	if len(recs) != n {
		t.Fatalf("audit records = %d, want %d", len(recs), n)
	}
	return recs
}

type page struct {
	Data []map[string]any `json:"data"`
	Info struct {
		Count         int     `json:"count"`
		MoreRecords   bool    `json:"more_records"`
		NextPageToken *string `json:"next_page_token"`
	} `json:"info"`
}

const fields = "Owner,First_Name,Last_Name,Full_Name,Email,Secondary_Email,Phone,Mobile,Home_Phone,Date_of_Birth,National_ID,Mailing_Street,Mailing_City,Account_Name"

func TestListPagesByPageToken(t *testing.T) {
	r, z := rig(t)
	var ids []string
	target := "/crm/v8/Contacts?fields=" + fields + "&per_page=2"
	for i := 0; i < 5; i++ {
		resp, body := do(r, "GET", target, "alice", "cs_agent", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Fatalf("cs_agent page %d leaks %q", i, l)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Data {
			ids = append(ids, d["id"].(string))
		}
		// Ids are opaque: the tag id passes the Luhn check, and must reach the client as it is
		// (the Zoho SDK parses every id as a BigInt).
		if strings.Contains(string(body), `"VIP"`) && !strings.Contains(string(body), `"5725767000001990001"`) {
			t.Errorf("page %d: the tag id 5725767000001990001 was masked:\n%s", i, body)
		}
		if i == 0 {
			owner := p.Data[0]["Owner"].(map[string]any)
			if owner["id"] != "5725767000000411001" || owner["email"] == "patricia.boyle@zylker-example.com" {
				t.Errorf("Owner = %v, want the lookup's id kept and its email masked", owner)
			}
			if got := p.Data[1]["National_ID"]; got != "110101********5578" {
				t.Errorf("National_ID = %v, want 110101********5578", got)
			}
		}
		if !p.Info.MoreRecords {
			break
		}
		target = "/crm/v8/Contacts?fields=" + fields + "&per_page=2&page_token=" + url.QueryEscape(*p.Info.NextPageToken)
	}
	if diff := cmp.Diff(z.ContactIDs(), ids); diff != "" {
		t.Fatalf("records paged through Veil by page_token (-want +got):\n%s", diff)
	}
	var got []int
	for _, a := range audits(t, r, 3) {
		got = append(got, a.Records)
		if a.Resource != "Contacts" || a.Action != "list" {
			t.Errorf("audit = %s %s, want list Contacts", a.Action, a.Resource)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]int{1, 2, 2}, got); diff != "" {
		t.Errorf("records charged per page (-want +got):\n%s", diff)
	}
}

func TestReadSearchAndNoContent(t *testing.T) {
	r, z := rig(t)
	id := z.ContactIDs()[1]
	resp, body := do(r, "GET", "/crm/v8/Contacts/"+id, "alice", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("read = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("read leaks %q", l)
	}
	resp, body = do(r, "GET", "/crm/v2/Contacts/search?email=sofia.martinez@example.es", "alice", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("search leaks %q", l)
	}
	resp, body = do(r, "GET", "/crm/v8/Contacts/search?email=nobody@example.com", "alice", "cs_agent", "")
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("search without a match = %d %q, want 204 and no body", resp.StatusCode, body)
	}
	recs := audits(t, r, 3)
	byPath := map[string]audit.Record{}
	for _, a := range recs {
		byPath[a.Path+"?"+a.Query] = a
	}
	for path, want := range map[string]int{
		"/crm/v8/Contacts/" + id + "?":                              1,
		"/crm/v2/Contacts/search?email=sofia.martinez%40example.es": 1,
		"/crm/v8/Contacts/search?email=nobody%40example.com":        0,
	} {
		a, ok := byPath[path]
		if !ok {
			t.Errorf("no audit record for %s (have %v)", path, keys(byPath))
			continue
		}
		if a.Records != want {
			t.Errorf("audit records for %s = %d, want %d", path, a.Records, want)
		}
	}
}

func keys(m map[string]audit.Record) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCOQL(t *testing.T) {
	r, _ := rig(t)
	resp, body := do(r, "POST", "/crm/v8/coql", "alice", "cs_agent", `{"select_query":"select Last_Name, Mobile, National_ID, Email from Contacts where Last_Name is not null limit 0, 3"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("coql = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("coql leaks %q", l)
	}
	a := audits(t, r, 1)[0]
	if a.Records != 3 || a.Action != "list" || a.Resource != "Contacts" {
		t.Errorf("audit = %s %s %d records, want list Contacts 3", a.Action, a.Resource, a.Records)
	}
}

func TestHostSeesOwnRecords(t *testing.T) {
	r, _ := rig(t)
	resp, body := do(r, "GET", "/crm/v8/Contacts?fields="+fields, "5725767000000411002", "host", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("host list = %d %s", resp.StatusCode, body)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Data) != 2 {
		t.Fatalf("host got %d records, want the 2 owned by 5725767000000411002", len(p.Data))
	}
	for _, d := range p.Data {
		if d["Owner"].(map[string]any)["id"] != "5725767000000411002" {
			t.Errorf("host got a record owned by %v", d["Owner"])
		}
	}
	if a := audits(t, r, 1)[0]; a.Records != 2 {
		t.Errorf("audit records = %d, want 2 (after row filtering)", a.Records)
	}
}

func TestWrites(t *testing.T) {
	r, z := rig(t)
	id := z.ContactIDs()[0]
	tests := []struct {
		name, method, path, roles, body string
		want                            int
	}{
		{"cs_agent updates a public field", "PUT", "/crm/v8/Contacts/" + id, "cs_agent", `{"data":[{"Lead_Source":"Web","Email_Opt_Out":true}]}`, 200},
		{"cs_agent may not update a mobile", "PUT", "/crm/v8/Contacts/" + id, "cs_agent", `{"data":[{"Mobile":"13900000000"}]}`, 403},
		{"cs_agent may not mass-update a mobile", "PUT", "/crm/v8/Contacts", "cs_agent", `{"data":[{"id":"1","Lead_Source":"Web"},{"id":"2","mobile":"1"}]}`, 403},
		{"cs_agent may not create", "POST", "/crm/v8/Contacts", "cs_agent", `{"data":[{"Last_Name":"X"}]}`, 403},
		{"cs_agent may not upsert", "POST", "/crm/v8/Contacts/upsert", "cs_agent", `{"data":[{"Lead_Source":"Web"}]}`, 403},
		{"cs_agent may not delete", "DELETE", "/crm/v8/Contacts/" + id, "cs_agent", "", 403},
		{"a body with data twice is refused", "PUT", "/crm/v8/Contacts/" + id, "cs_agent", `{"data":[{"Lead_Source":"Web"}],"data":[{"Mobile":"1"}]}`, 400},
		{"ops_manager may not write", "PUT", "/crm/v8/Contacts/" + id, "ops_manager", `{"data":[{"Lead_Source":"Web"}]}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(z.Writes())
			resp, body := do(r, tt.method, tt.path, "alice", tt.roles, tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s as %s = %d %s, want %d", tt.method, tt.path, tt.roles, resp.StatusCode, body, tt.want)
			}
			if reached := len(z.Writes()) > before; reached != (tt.want < 300) {
				t.Errorf("write reached the upstream = %v, want %v", reached, tt.want < 300)
			}
		})
	}
}

func TestBulkReadIsAnExport(t *testing.T) {
	r, _ := rig(t)
	job := `{"query":{"module":{"api_name":"Contacts"},"fields":["Last_Name","Email","Mobile"],"page":1}}`
	resp, body := do(r, "POST", "/crm/bulk/v8/read", "alice", "cs_agent", job)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cs_agent bulk read job = %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = do(r, "POST", "/crm/bulk/v8/read", "olivia", "ops_manager", job)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("ops_manager bulk read job = %d %s, want 201", resp.StatusCode, body)
	}
	resp, body = do(r, "GET", "/crm/bulk/v8/read/5725767000002001001", "alice", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("cs_agent job status = %d %s, want 200 (metadata)", resp.StatusCode, body)
	}
	resp, body = do(r, "GET", "/crm/bulk/v8/read/5725767000002001001/result", "alice", "cs_agent", "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cs_agent result download = %d, want 403", resp.StatusCode)
	}
	// The result is a ZIP Veil cannot mask: even a role allowed to export gets no bytes of it.
	resp, body = do(r, "GET", "/crm/bulk/v8/read/5725767000002001001/result", "olivia", "ops_manager", "")
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "PK\x03\x04") {
		t.Errorf("ops_manager result download = %d (%d bytes), want 502 and no ZIP", resp.StatusCode, len(body))
	}
	for _, a := range audits(t, r, 5) {
		if strings.HasPrefix(a.Path, "/crm/bulk/v8/read") && a.Method == "POST" && !a.Export {
			t.Errorf("bulk read job audit = %+v, want export", a)
		}
	}
}

func TestErrorEnvelopeIsNotCounted(t *testing.T) {
	r, _ := rig(t)
	resp, _ := r.Do("GET", "/crm/v8/Contacts?fields=Email", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token = %d, want the upstream's 401", resp.StatusCode)
	}
	if a := audits(t, r, 1)[0]; a.Records != 0 {
		t.Errorf("an error body charged %d records, want 0", a.Records)
	}
}

func request(method, target, body string) *adapters.Request {
	u, _ := url.Parse(target)
	r := &adapters.Request{Method: method, Path: u.Path, Query: u.Query(), Header: http.Header{}}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func TestDescribe(t *testing.T) {
	ad, _ := zoho.New(zoho.Options{})
	tests := []struct {
		name string
		req  *adapters.Request
		want adapters.Description
	}{
		{"list", request("GET", "/crm/v8/Contacts?fields=Email,Mobile&per_page=50", ""),
			adapters.Description{Type: "Contacts", Action: "list", PageSize: 50, PageSizeParam: "per_page", Fields: []string{"Email", "Mobile"}}},
		{"list default size", request("GET", "/crm/v2/leads", ""),
			adapters.Description{Type: "Leads", Action: "list", PageSize: 200, PageSizeParam: "per_page"}},
		{"by ids", request("GET", "/crm/v8/Contacts?ids=1,2,3&fields=Email", ""),
			adapters.Description{Type: "Contacts", Action: "list", PageSize: 3, Fields: []string{"Email"}}},
		{"read", request("GET", "/crm/v2.1/Contacts/5725767000001839001", ""),
			adapters.Description{Type: "Contacts", Action: "read", ID: "5725767000001839001", PageSize: 1}},
		{"search", request("GET", "/crm/v8/Contacts/search?criteria=(Email:equals:x)", ""),
			adapters.Description{Type: "Contacts", Action: "list", PageSize: 200, PageSizeParam: "per_page"}},
		{"related list", request("GET", "/crm/v8/Accounts/57257/Contacts?fields=Email", ""),
			adapters.Description{Type: "Contacts", Action: "list", PageSize: 200, PageSizeParam: "per_page", Fields: []string{"Email"}}},
		{"coql", request("POST", "/crm/v8/coql", `{"select_query":"select Last_Name, Account_Name.Account_Name, MAX(Mobile) as m from Contacts where Last_Name is not null limit 10, 50"}`),
			adapters.Description{Type: "Contacts", Action: "list", PageSize: 50, Fields: []string{"Last_Name", "Account_Name.Account_Name", "Mobile"}}},
		{"update", request("PUT", "/crm/v8/Contacts/1", `{"data":[{"Lead_Source":"Web","Subform_1":[{"Phone":"1"}],"Interests":["a"]}]}`),
			adapters.Description{Type: "Contacts", Action: "update", ID: "1", Fields: []string{"Interests", "Lead_Source", "Subform_1", "Subform_1.Phone"}}},
		{"create", request("POST", "/crm/v8/Contacts", `{"data":[{"Last_Name":"X"}],"trigger":["workflow"]}`),
			adapters.Description{Type: "Contacts", Action: "create", Fields: []string{"Last_Name"}}},
		{"upsert", request("POST", "/crm/v8/Contacts/upsert", `{"data":[{"Email":"x"}],"duplicate_check_fields":["Email"]}`),
			adapters.Description{Type: "Contacts", Action: "create", Fields: []string{"Email"}}},
		{"delete", request("DELETE", "/crm/v8/Contacts?ids=1,2", ""),
			adapters.Description{Type: "Contacts", Action: "delete"}},
		{"count", request("GET", "/crm/v8/Contacts/actions/count", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"fields", request("GET", "/crm/v8/settings/fields?module=Contacts", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"current user", request("GET", "/crm/v8/users?type=CurrentUser", ""),
			adapters.Description{Type: "users", Action: "list", PageSize: 200, PageSizeParam: "per_page"}},
		{"bulk job", request("POST", "/crm/bulk/v8/read", `{"query":{"module":{"api_name":"contacts"},"fields":["Email"]}}`),
			adapters.Description{Type: "Contacts", Action: "export", Export: true, Fields: []string{"Email"}}},
		{"bulk status", request("GET", "/crm/bulk/v8/read/123", ""),
			adapters.Description{Type: "metadata", Action: "read", ID: "123"}},
		{"bulk result", request("GET", "/crm/bulk/v8/read/123/result", ""),
			adapters.Description{Type: "bulk", Action: "export", Export: true, ID: "123"}},
		{"photo", request("GET", "/crm/v8/Contacts/1/photo", ""),
			adapters.Description{Action: "read"}},
		{"not the CRM", request("GET", "/oauth/v2/token", ""),
			adapters.Description{Action: "read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ad.Describe(tt.req)
			if err != nil {
				t.Fatalf("Describe error: %v", err)
			}
			tt.want.System = "zoho"
			if diff := cmp.Diff(tt.want, d, cmpopts.IgnoreFields(adapters.Description{}, "State")); diff != "" {
				t.Errorf("Describe(%s %s) (-want +got):\n%s", tt.req.Method, tt.req.Path, diff)
			}
		})
	}
	refused := map[string]*adapters.Request{
		"per_page twice":   request("GET", "/crm/v8/Contacts?per_page=2&per_page=200", ""),
		"page_token twice": request("GET", "/crm/v8/Contacts?page_token=a&page_token=b", ""),
		"per_page text":    request("GET", "/crm/v8/Contacts?per_page=all", ""),
		"fields twice":     request("GET", "/crm/v8/Contacts?fields=Id&Fields=Email", ""),
		"coql unreadable":  request("POST", "/crm/v8/coql", `{"select_query":"select from"}`),
		"coql twice":       request("POST", "/crm/v8/coql", `{"select_query":"select Id from Products","select_query":"select Email from Contacts"}`),
		"write not data":   request("PUT", "/crm/v8/Contacts/1", `{"Mobile":"1"}`),
	}
	for name, req := range refused {
		if _, err := ad.Describe(req); err == nil {
			t.Errorf("%s: Describe(%s %s) = nil error, want a refusal", name, req.Method, req.Path)
		}
	}
}

func TestLayout(t *testing.T) {
	ad, _ := zoho.New(zoho.Options{})
	d, err := ad.Describe(request("POST", "/crm/v8/coql", `{"select_query":"select MAX(Mobile) from Contacts"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := mask.Layout{Records: "data", HasRecords: true, ID: "id", Aliases: map[string]string{"MAX(Mobile)": "Mobile"}, Opaque: []string{"id"}}
	if diff := cmp.Diff(want, ad.Layout(d, 200, nil)); diff != "" {
		t.Errorf("Layout(coql) (-want +got):\n%s", diff)
	}
	if got := ad.Layout(d, 400, nil); got.HasRecords {
		t.Errorf("Layout(coql, 400).HasRecords = true, want false for an error body")
	}
	d, _ = ad.Describe(request("PUT", "/crm/v8/Contacts/1", `{"data":[{"Lead_Source":"Web"}]}`))
	if got := ad.Layout(d, 200, nil); got.HasRecords {
		t.Errorf("Layout(update).HasRecords = true, want false for a write acknowledgement")
	}
}
