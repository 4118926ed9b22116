package salesforce_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/adapters/salesforce"
	"github.com/veilproxy/veil/adapters/salesforce/salesforcetest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

// secrets are the fixture's values a cs_agent must never see: e-mail addresses, phones,
// mobiles, national ids and street addresses.
var secrets = []string{
	"m.okafor@northwind-example.com", "li.na@example.cn", "jonas.lindqvist@example.se",
	"priya.r@contoso-example.in", "theo.moreau@example.fr", "kwame.mensah@example.com.gh",
	"(415) 555-0132", "+86 21 5555 0188", "+91 80 5555 0142", "+33 1 55 55 01 77", "+233 30 255 5011",
	"+1 415 555 0199", "+86 138 0013 5521", "+46 70 555 12 34", "+91 98450 55501", "+233 24 555 0190",
	"123-45-6789", "310104199102285521", "19800514-1234", "1 00 01 75 123 456 78", "GHA-712345678-9",
	"415 Mission St", "漕溪北路", "Prestige", "8 Rue de la Paix", "14 Independence Ave",
}

// shipped is the shipped policy, compiled once for the package's tests.
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

func rig(t *testing.T) (*veiltest.Rig, *salesforcetest.Server) {
	t.Helper()
	ad, err := salesforce.New(salesforce.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sf := salesforcetest.New()
	return veiltest.New(t, veiltest.Options{Upstream: sf, Adapter: ad, PathPrefix: "/services/", Policy: shipped}), sf
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
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

const contactSOQL = "SELECT Id, FirstName, LastName, Name, Email, Phone, MobilePhone, Birthdate, National_ID__c, MailingAddress, " +
	"AnnualSpend__c, DoNotCall, LastModifiedDate, AccountId, Account.Name, Account.Owner.Name, Owner.Name FROM Contact"

func TestQueryPagesAreMaskedAndCounted(t *testing.T) {
	r, sf := rig(t)
	target := salesforcetest.QueryURL(contactSOQL)
	var ids []string
	var sizes []int
	for i := 0; target != "" && i < 5; i++ {
		resp, body := r.Do("GET", target, "alice", "cs_agent", nil, "Authorization", "Bearer 00Dxx!token")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Fatalf("cs_agent query page %d leaks %q", i, l)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %d is not JSON: %v", i, err)
		}
		for _, rec := range p.Records {
			ids = append(ids, rec["Id"].(string))
		}
		sizes = append(sizes, len(p.Records))
		if i == 0 {
			first := p.Records[0]
			if first["MobilePhone"] != "+1 41* *** 0199" || first["DoNotCall"] != false || first["AnnualSpend__c"] != 125000.5 {
				t.Errorf("first record = %v, want MobilePhone masked, DoNotCall and AnnualSpend__c kept", first)
			}
			addr, _ := first["MailingAddress"].(map[string]any)
			if addr == nil || addr["street"] == "415 Mission St\nSuite 300" || addr["latitude"] != nil {
				t.Errorf("MailingAddress = %v, want the compound address masked leaf by leaf, nulls kept", first["MailingAddress"])
			}
		}
		target = p.NextRecordsURL
	}
	if diff := cmp.Diff(sf.ContactIDs(), ids); diff != "" {
		t.Fatalf("records paged through Veil by nextRecordsUrl (-want +got):\n%s", diff)
	}
	recs := audits(t, r, 2)
	var got []int
	for _, a := range recs {
		got = append(got, a.Records)
		if a.Resource != "Contact" {
			t.Errorf("audit resource = %q, want Contact: the nextRecordsUrl page continues the Contact query", a.Resource)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]int{2, 4}, got); diff != "" {
		t.Errorf("records charged per page (-want +got), not totalSize or the batch size:\n%s", diff)
	}
	var left []int64
	for _, a := range recs {
		left = append(left, a.Limits["user-"+a.Resource+"-hourly"])
	}
	slices.Sort(left)
	if diff := cmp.Diff([]int64{2000 - 6, 2000 - 4}, left); diff != "" {
		t.Errorf("Contact budget left after each page, both pages charged to it (-want +got):\n%s", diff)
	}
}

func TestSubqueryRecordsAreNestedRecords(t *testing.T) {
	r, _ := rig(t)
	resp, body := r.Do("GET", salesforcetest.QueryURL("SELECT Id, Name, (SELECT Id, Email, Phone, MobilePhone, National_ID__c FROM Contacts) FROM Account"), "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subquery = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("subquery leaks %q", l)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	nested := 0
	for _, acc := range p.Records {
		nested += len(acc["Contacts"].(map[string]any)["records"].([]any))
	}
	a := audits(t, r, 1)[0]
	if want := len(p.Records) + nested; a.Records != want || nested == 0 {
		t.Errorf("audit records = %d, want %d accounts + %d contacts", a.Records, len(p.Records), nested)
	}
	if a.Resource != "Account" {
		t.Errorf("audit resource = %q, want Account", a.Resource)
	}
}

func TestAggregateAliasIsMasked(t *testing.T) {
	r, _ := rig(t)
	for _, soql := range []string{"SELECT MAX(MobilePhone) m FROM Contact", "SELECT MAX(MobilePhone) FROM Contact"} {
		resp, body := r.Do("GET", salesforcetest.QueryURL(soql), "alice", "cs_agent", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d %s", soql, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "+91 98450 55501") || !strings.Contains(string(body), "+91 9**** *5501") {
			t.Errorf("%s through Veil = %s, want the aggregate value masked as a phone", soql, body)
		}
	}
}

func TestSObjectRead(t *testing.T) {
	r, sf := rig(t)
	id := sf.ContactIDs()[1]
	resp, body := r.Do("GET", "/services/data/v60.0/sobjects/Contact/"+id, "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sObject GET = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("sObject GET leaks %q", l)
	}
	if !strings.Contains(string(body), `"310104********5521"`) {
		t.Errorf("National_ID__c not masked as an ID number: %s", body)
	}
	a := audits(t, r, 1)[0]
	if a.Records != 1 || a.Action != "read" || len(a.IDs) != 1 || a.IDs[0] != id {
		t.Errorf("audit = %d records, action %s, ids %v; want 1 read of %s", a.Records, a.Action, a.IDs, id)
	}
	resp, _ = r.Do("GET", "/services/data/v60.0/sobjects/Contact/003RO00000Missing", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing record = %d, want the upstream's 404", resp.StatusCode)
	}
	if a := audits(t, r, 2)[1]; a.Records != 0 {
		t.Errorf("a 404 error body charged %d records, want 0", a.Records)
	}
}

func TestCollectionRetrieve(t *testing.T) {
	r, sf := rig(t)
	ids := sf.ContactIDs()
	resp, body := r.Do("GET", "/services/data/v60.0/composite/sobjects/Contact?ids="+ids[0]+","+ids[3]+"&fields=Id,Email,Phone", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("collection GET = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("collection leaks %q", l)
	}
	if a := audits(t, r, 1)[0]; a.Records != 2 || a.Action != "list" {
		t.Errorf("audit = %d records, action %s; want a list of 2", a.Records, a.Action)
	}
}

func TestBulkQueryExport(t *testing.T) {
	r, sf := rig(t)
	job := []byte(`{"operation":"query","query":"SELECT Id, Email, Phone FROM Contact","contentType":"CSV"}`)
	for _, c := range []struct {
		roles string
		want  int
	}{{"cs_agent", 403}, {"contractor", 403}, {"ops_manager", 200}} {
		resp, body := r.Do("POST", "/services/data/v60.0/jobs/query", "u", c.roles, job, "Content-Type", "application/json")
		if resp.StatusCode != c.want {
			t.Errorf("create query job as %s = %d %s, want %d", c.roles, resp.StatusCode, body, c.want)
		}
		resp, body = r.Do("GET", "/services/data/v60.0/jobs/query/750RO00000BulkQAAQ/results?maxRecords=5000", "u", c.roles, nil)
		if resp.StatusCode != c.want {
			t.Errorf("job results as %s = %d %s, want %d", c.roles, resp.StatusCode, body, c.want)
		}
		if c.want != 200 {
			continue
		}
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			t.Fatalf("results are not CSV: %v", err)
		}
		if len(rows) != 7 || rows[0][3] != "Email" {
			t.Fatalf("results have %d rows (header %v), want header + 6", len(rows), rows[0])
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Fatalf("bulk results leak %q", l)
		}
	}
	var exports []audit.Record
	for _, a := range audits(t, r, 6) {
		if a.Decision == "allow" && strings.HasSuffix(a.Path, "/results") {
			exports = append(exports, a)
		}
	}
	if len(exports) != 1 || !exports[0].Export || exports[0].Records != 6 || exports[0].Action != "export" {
		t.Errorf("allowed result downloads = %+v, want one export of 6 records", exports)
	}
	// The job was created through Veil, so its results are the job's query: Contact.
	if len(exports) == 1 && exports[0].Resource != "Contact" {
		t.Errorf("job results resource = %q, want Contact (learned from the job Veil created)", exports[0].Resource)
	}
	if n := len(sf.Writes()); n != 0 {
		t.Errorf("upstream writes = %d, want 0", n)
	}
}

func TestReportRunIsAnExport(t *testing.T) {
	r, _ := rig(t)
	path := "/services/data/v60.0/analytics/reports/00ORO000000ABCDE?includeDetails=true"
	resp, body := r.Do("GET", path, "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cs_agent report run = %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = r.Do("GET", path, "olivia", "ops_manager", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ops_manager report run = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("report leaks %q", l)
	}
	if !strings.Contains(string(body), `"Full Name"`) {
		t.Errorf("report column labels were masked too: %s", body)
	}
	a := audits(t, r, 2)[1]
	// The run document counts as one record besides its six detail rows (a documented limit).
	if !a.Export || a.Records != 7 {
		t.Errorf("audit = export %v, %d records; want an export of 6 rows + the run", a.Export, a.Records)
	}
}

func TestComposite(t *testing.T) {
	r, sf := rig(t)
	id := sf.ContactIDs()[0]
	reads := fmt.Sprintf(`{"allOrNone":false,"compositeRequest":[
		{"method":"GET","url":%q,"referenceId":"q"},
		{"method":"GET","url":"/services/data/v60.0/sobjects/Contact/%s","referenceId":"c"}]}`,
		salesforcetest.QueryURL("SELECT Id, Email, MobilePhone FROM Contact LIMIT 3"), id)
	resp, body := r.Do("POST", "/services/data/v60.0/composite", "alice", "cs_agent", []byte(reads), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("composite reads = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("composite leaks %q", l)
	}
	a := audits(t, r, 1)[0]
	// Each subresponse counts as a record, and the query's three rows as nested ones.
	if a.Action != "list" || a.Resource != "Contact" || a.Records != 2+3 {
		t.Errorf("audit = %s %s %d records, want list Contact 5", a.Action, a.Resource, a.Records)
	}
	mixed := fmt.Sprintf(`{"compositeRequest":[
		{"method":"PATCH","url":"/services/data/v60.0/sobjects/Contact/%s","referenceId":"u","body":{"Title":"VP"}},
		{"method":"GET","url":%q,"referenceId":"q"}]}`, id, salesforcetest.QueryURL("SELECT Id, Email FROM Contact"))
	resp, body = r.Do("POST", "/services/data/v60.0/composite", "alice", "cs_agent", []byte(mixed), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("composite mixing a write and a read = %d %s, want 403", resp.StatusCode, body)
	}
	update := fmt.Sprintf(`{"compositeRequest":[{"method":"PATCH","url":"/services/data/v60.0/sobjects/Contact/%s","referenceId":"u","body":{"Title":"VP"}}]}`, id)
	resp, body = r.Do("POST", "/services/data/v60.0/composite", "alice", "cs_agent", []byte(update), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("composite update of a public field = %d %s, want 200", resp.StatusCode, body)
	}
	phone := strings.Replace(update, `{"Title":"VP"}`, `{"MobilePhone":"+1 555 0100"}`, 1)
	resp, body = r.Do("POST", "/services/data/v60.0/composite", "alice", "cs_agent", []byte(phone), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("composite update of MobilePhone = %d %s, want 403", resp.StatusCode, body)
	}
	if w := sf.Writes(); len(w) != 1 || w[0].Method != "PATCH" {
		t.Errorf("upstream writes = %+v, want only the allowed PATCH", w)
	}
}

func TestWrites(t *testing.T) {
	r, sf := rig(t)
	id := sf.ContactIDs()[2]
	tests := []struct {
		name, method, path, roles, body string
		want                            int
	}{
		{"cs_agent updates a public field", "PATCH", "/services/data/v60.0/sobjects/Contact/" + id, "cs_agent", `{"Title":"VP","DoNotCall":true}`, 204},
		{"cs_agent may not update a phone", "PATCH", "/services/data/v60.0/sobjects/Contact/" + id, "cs_agent", `{"Title":"VP","MobilePhone":"+1 555 0100"}`, 403},
		{"cs_agent may not update a phone in any case", "PATCH", "/services/data/v60.0/sobjects/Contact/" + id, "cs_agent", `{"mobilephone":"+1 555 0100"}`, 403},
		{"cs_agent may not create", "POST", "/services/data/v60.0/sobjects/Contact", "cs_agent", `{"LastName":"X"}`, 403},
		{"cs_agent may not upsert", "PATCH", "/services/data/v60.0/sobjects/Contact/Ext__c/42", "cs_agent", `{"Title":"X"}`, 403},
		{"cs_agent may not delete", "DELETE", "/services/data/v60.0/sobjects/Contact/" + id, "cs_agent", "", 403},
		{"cs_agent may not create a collection", "POST", "/services/data/v60.0/composite/sobjects", "cs_agent", `{"records":[{"attributes":{"type":"Contact"},"LastName":"X"}]}`, 403},
		{"cs_agent updates a collection's public fields", "PATCH", "/services/data/v60.0/composite/sobjects", "cs_agent", `{"records":[{"attributes":{"type":"Contact"},"id":"` + id + `","Title":"VP"}]}`, 200},
		{"every occurrence of a key is checked", "PATCH", "/services/data/v60.0/sobjects/Contact/" + id, "cs_agent", `{"Title":"VP","Title":"x","MobilePhone":"1"}`, 403},
		{"host may not write", "PATCH", "/services/data/v60.0/sobjects/Contact/" + id, "host", `{"Title":"VP"}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(sf.Writes())
			var b []byte
			if tt.body != "" {
				b = []byte(tt.body)
			}
			resp, body := r.Do(tt.method, tt.path, "alice", tt.roles, b, "Content-Type", "application/json")
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s as %s = %d %s, want %d", tt.method, tt.path, tt.roles, resp.StatusCode, body, tt.want)
			}
			if reached := len(sf.Writes()) > before; reached != (tt.want < 300) {
				t.Errorf("write reached the upstream = %v, want %v", reached, tt.want < 300)
			}
		})
	}
}

func TestContractorReadsOnlyNonPersonalObjects(t *testing.T) {
	r, _ := rig(t)
	resp, _ := r.Do("GET", salesforcetest.QueryURL("SELECT Id, Email FROM Contact"), "v", "contractor", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("contractor query on Contact = %d, want 403", resp.StatusCode)
	}
	resp, body := r.Do("GET", salesforcetest.QueryURL("SELECT Id, Name FROM product2 LIMIT 2"), "v", "contractor", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("contractor query on Product2 = %d %s, want 200", resp.StatusCode, body)
	}
	if a := audits(t, r, 2)[1]; a.Resource != "Product2" {
		t.Errorf("audit resource = %q, want Product2 (object names are case-insensitive)", a.Resource)
	}
}

func TestQueryRefusals(t *testing.T) {
	r, _ := rig(t)
	for name, target := range map[string]string{
		"q twice":     salesforcetest.QueryURL("SELECT Id FROM Contact") + "&q=" + url.QueryEscape("SELECT Email FROM Lead"),
		"q in a case": salesforcetest.QueryURL("SELECT Id FROM Contact") + "&Q=x",
		"bad SOQL":    salesforcetest.QueryURL("SELECT Id FROM"),
		"no q":        "/services/data/v60.0/query",
	} {
		resp, body := r.Do("GET", target, "sam", "security_admin", nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: GET %s = %d %s, want 400", name, target, resp.StatusCode, body)
		}
	}
	resp, body := r.Do("GET", salesforcetest.QueryURL("SELECT Id FROM Contact"), "sam", "security_admin", nil,
		"Sforce-Query-Options", "batchSize=200")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("one Sforce-Query-Options = %d %s, want 200", resp.StatusCode, body)
	}
	resp, _ = r.Do("GET", "/services/data/v60.0/tooling/query?q=SELECT+Id+FROM+ApexLog", "sam", "security_admin", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unrecognised path = %d, want 403 (no resource)", resp.StatusCode)
	}
}
