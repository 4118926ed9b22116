package salesforce_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/salesforce"
	"github.com/veilproxy/veil/proxy/mask"
)

func request(method, target, body string, hdr ...string) *adapters.Request {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	r := &adapters.Request{Method: method, Path: u.Path, Query: u.Query(), Header: h}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func TestDescribe(t *testing.T) {
	ad, _ := salesforce.New(salesforce.Options{})
	const v = "/services/data/v60.0"
	q := func(soql string) string { return v + "/query?q=" + url.QueryEscape(soql) }
	tests := []struct {
		name string
		req  *adapters.Request
		want adapters.Description
	}{
		{"query", request("GET", q("SELECT Id, Email, Account.Owner.Name, (SELECT Phone FROM Contacts) FROM Account WHERE Name LIKE 'a(b' LIMIT 50"), ""),
			adapters.Description{Type: "Account", Action: "list", PageSize: 50, Fields: []string{"Id", "Email", "Account.Owner.Name", "Contacts.Phone"}}},
		{"query without a size", request("GET", q("select id from contact"), ""),
			adapters.Description{Type: "Contact", Action: "list", Fields: []string{"id"}}},
		{"query with batchSize", request("GET", q("SELECT Id FROM Lead LIMIT 5000"), "", "Sforce-Query-Options", "batchSize=500"),
			adapters.Description{Type: "Lead", Action: "list", PageSize: 500, Fields: []string{"Id"}}},
		{"queryAll LIMIT over the batch", request("GET", v+"/queryAll?q="+url.QueryEscape("SELECT Id FROM Case LIMIT 9000"), ""),
			adapters.Description{Type: "Case", Action: "list", PageSize: 2000, Fields: []string{"Id"}}},
		{"nextRecordsUrl", request("GET", v+"/query/01gRO00000fXqPZYA0-2000", ""),
			adapters.Description{Type: "query", Action: "list"}},
		{"aggregate", request("GET", q("SELECT COUNT(Id) n, MAX(Phone) FROM Contact GROUP BY AccountId"), ""),
			adapters.Description{Type: "Contact", Action: "list", Fields: []string{"Id", "Phone"}}},
		{"sObject read", request("GET", v+"/sobjects/Contact/003RO00000Ab1CdYAJ?fields=Email,Phone", ""),
			adapters.Description{Type: "Contact", Action: "read", ID: "003RO00000Ab1CdYAJ", PageSize: 1, Fields: []string{"Email", "Phone"}}},
		{"sObject update", request("PATCH", v+"/sobjects/Contact/003RO00000Ab1CdYAJ", `{"Title":"VP","MailingAddress":{"street":"x"}}`),
			adapters.Description{Type: "Contact", Action: "update", ID: "003RO00000Ab1CdYAJ", Fields: []string{"MailingAddress", "Title"}}},
		{"sObject create", request("POST", v+"/sobjects/lead", `{"attributes":{"type":"Lead"},"LastName":"X"}`),
			adapters.Description{Type: "Lead", Action: "create", Fields: []string{"LastName"}}},
		{"upsert", request("PATCH", v+"/sobjects/Contact/Ext_Id__c/42", `{"Email":"x@y.z"}`),
			adapters.Description{Type: "Contact", Action: "create", ID: "42", Fields: []string{"Email"}}},
		{"delete", request("DELETE", v+"/sobjects/Contact/003RO00000Ab1CdYAJ", ""),
			adapters.Description{Type: "Contact", Action: "delete", ID: "003RO00000Ab1CdYAJ"}},
		{"describe", request("GET", v+"/sobjects/Contact/describe", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"basic info", request("GET", v+"/sobjects/Contact", ""),
			adapters.Description{Type: "Contact", Action: "list"}},
		{"collection retrieve", request("GET", v+"/composite/sobjects/Contact?ids=a,b,c&fields=Id,Email", ""),
			adapters.Description{Type: "Contact", Action: "list", PageSize: 3, Fields: []string{"Id", "Email"}}},
		{"collection create", request("POST", v+"/composite/sobjects", `{"allOrNone":true,"records":[{"attributes":{"type":"Contact"},"LastName":"a"},{"attributes":{"type":"Contact"},"Email":"b"}]}`),
			adapters.Description{Type: "Contact", Action: "create", Fields: []string{"Email", "LastName"}}},
		{"collection of two objects", request("PATCH", v+"/composite/sobjects", `{"records":[{"attributes":{"type":"Contact"},"id":"1","Title":"a"},{"attributes":{"type":"Lead"},"id":"2","Title":"b"}]}`),
			adapters.Description{Type: "composite", Action: "update", Fields: []string{"Title", "id"}}},
		{"tree", request("POST", v+"/composite/tree/Account", `{"records":[{"attributes":{"type":"Account","referenceId":"r1"},"Name":"A","Contacts":{"records":[{"attributes":{"type":"Contact","referenceId":"r2"},"Phone":"1"}]}}]}`),
			adapters.Description{Type: "Account", Action: "create", Fields: []string{"Contacts", "Contacts.Phone", "Name"}}},
		{"composite reads", request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"`+q("SELECT Id FROM Contact LIMIT 10")+`","referenceId":"a"},{"method":"GET","url":"/services/data/v60.0/sobjects/Contact/@{a.records[0].Id}","referenceId":"b"}]}`),
			adapters.Description{Type: "Contact", Action: "list", PageSize: 11, Fields: []string{"Id"}}},
		{"composite one update", request("POST", v+"/composite", `{"compositeRequest":[{"method":"PATCH","url":"/services/data/v60.0/sobjects/Contact/003x","referenceId":"a","body":{"Title":"x"}}]}`),
			adapters.Description{Type: "Contact", Action: "update", ID: "003x", Fields: []string{"Title"}}},
		{"composite write and read", request("POST", v+"/composite", `{"compositeRequest":[{"method":"PATCH","url":"/services/data/v60.0/sobjects/Contact/003x","referenceId":"a","body":{"Title":"x"}},{"method":"GET","url":"/services/data/v60.0/sobjects/Lead/00Qx","referenceId":"b"}]}`),
			adapters.Description{Type: "composite", Action: "other", PageSize: 1, Fields: []string{"Title"}}},
		{"composite export", request("POST", v+"/composite", `{"compositeRequest":[{"method":"POST","url":"/services/data/v60.0/jobs/query","referenceId":"a","body":{"operation":"query","query":"SELECT Id FROM Contact"}}]}`),
			adapters.Description{Type: "Contact", Action: "export", Export: true, Fields: []string{"Id"}}},
		{"composite with an unknown subrequest", request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"/services/data/v60.0/tooling/query?q=x","referenceId":"a"}]}`),
			adapters.Description{Action: "create"}},
		{"batch", request("POST", v+"/composite/batch", `{"batchRequests":[{"method":"GET","url":"v60.0/sobjects/Contact/003x"}]}`),
			adapters.Description{Type: "Contact", Action: "read", ID: "003x", PageSize: 1}},
		{"graph", request("POST", v+"/composite/graph", `{"graphs":[]}`),
			adapters.Description{Type: "composite", Action: "other"}},
		{"bulk job", request("POST", v+"/jobs/query", `{"operation":"query","query":"SELECT Id, Email FROM Contact"}`),
			adapters.Description{Type: "Contact", Action: "export", Export: true, Fields: []string{"Id", "Email"}}},
		{"bulk status", request("GET", v+"/jobs/query/750x", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"bulk abort", request("PATCH", v+"/jobs/query/750x", `{"state":"Aborted"}`),
			adapters.Description{Type: "metadata", Action: "update", Fields: []string{"state"}}},
		{"bulk results", request("GET", v+"/jobs/query/750x/results?maxRecords=10000&locator=abc", ""),
			adapters.Description{Type: "query", Action: "export", Export: true, PageSize: 10000, PageSizeParam: "maxRecords"}},
		{"report run", request("GET", v+"/analytics/reports/00Ox?includeDetails=true", ""),
			adapters.Description{Type: "report", Action: "export", Export: true, ID: "00Ox"}},
		{"report summary", request("GET", v+"/analytics/reports/00Ox", ""),
			adapters.Description{Type: "report", Action: "read", ID: "00Ox"}},
		{"report instance", request("GET", v+"/analytics/reports/00Ox/instances/0LGx", ""),
			adapters.Description{Type: "report", Action: "export", Export: true, ID: "00Ox"}},
		{"report list", request("GET", v+"/analytics/reports", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"search", request("GET", v+"/search?q="+url.QueryEscape("FIND {Acme} RETURNING Contact(Email)"), ""),
			adapters.Description{Type: "search", Action: "list"}},
		{"limits", request("GET", v+"/limits", ""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"tooling", request("GET", v+"/tooling/query?q=x", ""),
			adapters.Description{Action: "read"}},
		{"outside the API", request("GET", "/services/oauth2/userinfo", ""),
			adapters.Description{Action: "read"}},
		{"UI report export", request("GET", "/00ORO000000ABCDE?export=1&enc=UTF-8&xf=csv", ""),
			adapters.Description{Action: "export", Export: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ad.Describe(tt.req)
			if err != nil {
				t.Fatalf("Describe(%s %s) error: %v", tt.req.Method, tt.req.Path, err)
			}
			tt.want.System = "salesforce"
			if diff := cmp.Diff(tt.want, d, cmpopts.IgnoreFields(adapters.Description{}, "State")); diff != "" {
				t.Errorf("Describe(%s %s) (-want +got):\n%s", tt.req.Method, tt.req.Path, diff)
			}
		})
	}
}

func TestDescribeRefuses(t *testing.T) {
	ad, _ := salesforce.New(salesforce.Options{})
	const v = "/services/data/v60.0"
	tests := map[string]*adapters.Request{
		"q twice":              request("GET", v+"/query?q=SELECT+Id+FROM+Contact&q=SELECT+Email+FROM+Lead", ""),
		"SOQL without FROM":    request("GET", v+"/query?q=SELECT+Id", ""),
		"unclosed string":      request("GET", v+"/query?q="+url.QueryEscape("SELECT Id FROM Contact WHERE Name = 'x"), ""),
		"unbalanced subquery":  request("GET", v+"/query?q="+url.QueryEscape("SELECT Id, (SELECT Id FROM Contacts FROM Account"), ""),
		"options twice":        request("GET", v+"/query?q=SELECT+Id+FROM+Contact", "", "Sforce-Query-Options", "batchSize=200", "Sforce-Query-Options", "batchSize=2000"),
		"batchSize twice":      request("GET", v+"/query?q=SELECT+Id+FROM+Contact", "", "Sforce-Query-Options", "batchSize=200, batchSize=2000"),
		"batchSize not number": request("GET", v+"/query?q=SELECT+Id+FROM+Contact", "", "Sforce-Query-Options", "batchSize=lots"),
		"absolute subrequest":  request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"https://evil.example/services/data/v60.0/limits","referenceId":"a"}]}`),
		"dot segments":         request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"/services/data/v60.0/limits/../query?q=x","referenceId":"a"}]}`),
		"escaped subrequest":   request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"/services/data/v60.0/sobjects%2FContact","referenceId":"a"}]}`),
		"nested composite":     request("POST", v+"/composite", `{"compositeRequest":[{"method":"POST","url":"/services/data/v60.0/composite","referenceId":"a","body":{}}]}`),
		"duplicate list":       request("POST", v+"/composite", `{"compositeRequest":[],"compositeRequest":[{"method":"GET","url":"/services/data/v60.0/limits","referenceId":"a"}]}`),
		"empty composite":      request("POST", v+"/composite", `{"compositeRequest":[]}`),
		"bad method":           request("POST", v+"/composite", `{"compositeRequest":[{"method":"TRACE","url":"/services/data/v60.0/limits","referenceId":"a"}]}`),
		"bulk job query twice": request("POST", v+"/jobs/query", `{"query":"SELECT Id FROM Product2","Query":"SELECT Email FROM Contact"}`),
		"maxRecords negative":  request("GET", v+"/jobs/query/750x/results?maxRecords=-1", ""),
		"write not an object":  request("PATCH", v+"/sobjects/Contact/003x", `[{"Title":"x"}]`),
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ad.Describe(req); err == nil {
				t.Errorf("Describe(%s %s %s) = nil error, want a refusal", req.Method, req.Path, req.Body)
			} else if _, ok := err.(*adapters.Error); !ok {
				t.Errorf("Describe error = %T %v, want *adapters.Error", err, err)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	ad, _ := salesforce.New(salesforce.Options{})
	const v = "/services/data/v60.0"
	csv := http.Header{"Content-Type": {"text/csv"}}
	js := http.Header{"Content-Type": {"application/json;charset=UTF-8"}}
	tests := []struct {
		name   string
		req    *adapters.Request
		status int
		header http.Header
		want   mask.Layout
	}{
		{"query", request("GET", v+"/query?q=SELECT+MAX(Phone)+p+FROM+Contact", ""), 200, js,
			mask.Layout{Records: "records", HasRecords: true, ID: "Id", Nested: []string{"records"}, Aliases: map[string]string{"p": "Phone"}, Capture: "nextRecordsUrl"}},
		{"query error", request("GET", v+"/query?q=SELECT+Id+FROM+Contact", ""), 400, js,
			mask.Layout{}},
		{"record", request("GET", v+"/sobjects/Contact/003x", ""), 200, js,
			mask.Layout{Records: "@this", HasRecords: true, ID: "Id", Nested: []string{"records"}}},
		{"collection", request("GET", v+"/composite/sobjects/Contact?ids=a", ""), 200, js,
			mask.Layout{HasRecords: true, ID: "Id", Nested: []string{"records"}}},
		{"bulk results", request("GET", v+"/jobs/query/750x/results", ""), 200, csv,
			mask.Layout{Format: mask.FormatCSV, HasRecords: true, ID: "Id", Nested: []string{"records"}}},
		{"bulk results error", request("GET", v+"/jobs/query/750x/results", ""), 409, js,
			mask.Layout{}},
		{"report", request("GET", v+"/analytics/reports/00Ox?includeDetails=true", ""), 200, js,
			mask.Layout{Records: "@this", HasRecords: true, Nested: []string{"rows"}}},
		{"composite", request("POST", v+"/composite", `{"compositeRequest":[{"method":"GET","url":"/services/data/v60.0/sobjects/Contact/1","referenceId":"a"}]}`), 200, js,
			mask.Layout{Records: "compositeResponse", HasRecords: true, ID: "body.Id", Nested: []string{"records"}}},
		{"write", request("PATCH", v+"/sobjects/Contact/003x", `{"Title":"x"}`), 204, js,
			mask.Layout{ID: "Id", Nested: []string{"records"}}},
		{"metadata", request("GET", v+"/sobjects/Contact/describe", ""), 200, js,
			mask.Layout{ID: "Id", Nested: []string{"records"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ad.Describe(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			got := ad.Layout(d, tt.status, tt.header)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Layout(%s %s, %d) (-want +got):\n%s", tt.req.Method, tt.req.Path, tt.status, diff)
			}
		})
	}
}
