package generic_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/generic"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

func str(s string) *string { return &s }

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upstream answers like a server of one API style: page 1 is the fixture, a request carrying
// the page cursor gets a short last page, one entity, writes are acknowledged.
type upstream struct {
	mu    sync.Mutex
	seen  []*http.Request
	list  map[string][]byte // path -> body of the first page
	next  string            // query parameter whose presence asks for page 2
	page2 []byte
	one   map[string][]byte // path -> body of one record
	ctype string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, r)
	u.mu.Unlock()
	w.Header().Set("Content-Type", u.ctype)
	switch r.Method {
	case http.MethodGet:
		if b, ok := u.one[r.URL.Path]; ok {
			w.Write(b)
			return
		}
		b, ok := u.list[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Has(u.next) {
			b = u.page2
		}
		w.Write(b)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"ok": true}`))
	}
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func rig(t *testing.T, u *upstream, res ...generic.Resource) *client {
	t.Helper()
	ad, err := generic.New(generic.Options{Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	return &client{Rig: veiltest.New(t, veiltest.Options{Upstream: u, Adapter: ad, Policy: shipped(t)})}
}

// shipped is the shipped policy, compiled once for the package's tests.
func shipped(t *testing.T) *policy.Engine { return veiltest.Shipped(t) }

// client sends requests through Veil and reads the audit record of the last one. Veil writes
// a request's audit record after the response has gone out, so audit waits for it.
type client struct {
	*veiltest.Rig
	sent int
}

func (c *client) Do(method, target, user, roles string, body []byte, hdr ...string) (*http.Response, []byte) {
	c.T.Helper()
	c.sent++
	return c.Rig.Do(method, target, user, roles, body, hdr...)
}

// audit returns the audit record of the last request sent.
func (c *client) audit(t *testing.T) audit.Record {
	t.Helper()
	return c.WaitAudit(c.sent)[c.sent-1]
}

// presetCase is one API style run end to end through Veil with the shipped policy.
type presetCase struct {
	name     string
	fixture  string
	ctype    string
	res      []generic.Resource
	path     string   // the collection
	records  int      // records on page 1
	ids      []string // their ids, in order
	secrets  []string // values a cs_agent must never see
	nextLink func(body []byte) string
	next     string // the page cursor's query parameter
	page2    string
	page2N   int
	sizeParm string // the page-size parameter
	entity   string // path of one record
	entityID string
	oneBody  string
	write    string // path writes go to
	public   string // an update body naming only public fields
	private  string // an update body naming a sensitive field
}

var odataV4Secrets = []string{
	"030-0074321", "(5) 555-4729", "0921-12 34 65", "0452-076545", "+86 10 5555 0101",
	"maria.anders@example.de", "ana.trujillo@example.mx", "yang.wang@example.ch", "wangli@example.cn",
	"DE123456789", "TRUA800101XX1", "CHE-123.456.789", "110101198001010011",
	"Obere Str. 57", "Avda. de la Constitución 2222", "Berguvsvägen 8", "Hauptstr. 29", "朝阳区建国路 1 号",
}

func presetCases(t *testing.T) []presetCase {
	return []presetCase{
		{
			name: "odata-v4", fixture: "generic-odata-v4.json", ctype: "application/json;odata.metadata=minimal",
			res:  []generic.Resource{{Match: "/odata/v4/Customers", Type: "customers", Preset: "odata-v4", ID: "CustomerID"}},
			path: "/odata/v4/Customers", records: 5, ids: []string{"ALFKI", "ANATR", "BERGS", "CHOPS", "WANGL"},
			secrets: odataV4Secrets,
			nextLink: func(b []byte) string {
				var v struct {
					Next string `json:"@odata.nextLink"`
				}
				json.Unmarshal(b, &v)
				return v.Next
			},
			next:  "$skiptoken",
			page2: `{"@odata.context":"x","value":[{"CustomerID":"ZZZZZ","Phone":"13812345678"}]}`, page2N: 1,
			sizeParm: "$top",
			entity:   "/odata/v4/Customers('ALFKI')", entityID: "ALFKI",
			oneBody: `{"@odata.context":"x","CustomerID":"ALFKI","Name":"Maria Anders","Phone":"030-0074321"}`,
			write:   "/odata/v4/Customers('ALFKI')",
			public:  `{"RowVersion":"1"}`, private: `{"Phone":"13812345678"}`,
		},
		{
			name: "odata-v2", fixture: "generic-odata-v2.json", ctype: "application/json",
			res:  []generic.Resource{{Match: "/sap/opu/odata/sap/ZCUSTOMER_SRV/CustomerSet", Type: "customers", Preset: "odata-v2", ID: "CustomerNo"}},
			path: "/sap/opu/odata/sap/ZCUSTOMER_SRV/CustomerSet", records: 5,
			ids: []string{"0000100001", "0000100002", "0000100003", "0000100004", "0000100005"},
			secrets: []string{
				"030-0074321", "(5) 555-4729", "0921-12 34 65", "0452-076545", "+86 10 5555 0101",
				"maria.anders@example.de", "ana.trujillo@example.mx", "yang.wang@example.ch", "wangli@example.cn",
				"DE123456789", "TRUA800101XX1", "CHE-123.456.789", "110101198001010011",
			},
			nextLink: func(b []byte) string {
				var v struct {
					D struct {
						Next string `json:"__next"`
					} `json:"d"`
				}
				json.Unmarshal(b, &v)
				return v.D.Next
			},
			next:  "$skiptoken",
			page2: `{"d":{"results":[{"CustomerNo":"0000100006","Phone":"13812345678"},{"CustomerNo":"0000100007"}]}}`, page2N: 2,
			sizeParm: "$top",
			entity:   "/sap/opu/odata/sap/ZCUSTOMER_SRV/CustomerSet('0000100001')", entityID: "0000100001",
			oneBody: `{"d":{"__metadata":{"type":"ZCUSTOMER_SRV.Customer"},"CustomerNo":"0000100001","Phone":"030-0074321"}}`,
			write:   "/sap/opu/odata/sap/ZCUSTOMER_SRV/CustomerSet('0000100001')",
			public:  `{"CreatedOn":"/Date(1698796800000)/"}`, private: `{"TaxId":"DE1"}`,
		},
		{
			name: "jsonapi", fixture: "generic-jsonapi.json", ctype: "application/vnd.api+json",
			res: []generic.Resource{
				{Match: "/api/customers", Type: "customers", Preset: "jsonapi"},
				{Match: "/api/customers/{id}", Type: "customers", Preset: "jsonapi"},
			},
			path: "/api/customers", records: 5, ids: []string{"501", "502", "503", "504", "505"},
			secrets: []string{
				"+1 415 555 0132", "+86 138 0013 5521", "+46 70 555 12 34", "+91 98450 55501", "+233 24 555 0190",
				"m.okafor@northwind-example.com", "li.na@example.cn", "priya.r@contoso-example.in", "kwame.mensah@example.com.gh",
				"123-45-6789", "310104199102285521", "GHA-712345678-9", "415 Mission St", "漕溪北路 88 号", "14 Independence Ave",
				// side-loaded in included: masked as envelope
				"daniel.reyes@example.com", "+1 415 555 0100", "aisha.bello@example.com", "+44 20 5555 0100", "+1 415 555 0177",
			},
			nextLink: func(b []byte) string {
				var v struct {
					Links struct {
						Next string `json:"next"`
					} `json:"links"`
				}
				json.Unmarshal(b, &v)
				return v.Links.Next
			},
			next:  "page[number]",
			page2: `{"data":[{"type":"customers","id":"506","attributes":{"phone":"13812345678"}}],"links":{}}`, page2N: 1,
			sizeParm: "page[size]",
			entity:   "/api/customers/501", entityID: "501",
			oneBody: `{"data":{"type":"customers","id":"501","attributes":{"name":"Margaret Okafor","phone":"+1 415 555 0132"}}}`,
			write:   "/api/customers/501",
			public:  `{"data":{"type":"customers","id":"501","attributes":{"tier":"gold"}}}`,
			private: `{"data":{"type":"customers","id":"501","attributes":{"phone":"13812345678"}}}`,
		},
		{
			name: "hal", fixture: "generic-hal.json", ctype: "application/hal+json",
			res: []generic.Resource{
				{Match: "/api/customers", Type: "customers", Preset: "hal", ID: "customerId", PageSizeParam: "size"},
				{Match: "/api/customers/{id}", Type: "customers", Preset: "hal", ID: "customerId"},
			},
			path: "/api/customers", records: 5, ids: []string{"501", "502", "503", "504", "505"},
			secrets: []string{
				"+1 415 555 0132", "+86 138 0013 5521", "+46 70 555 12 34", "+91 98450 55501", "+233 24 555 0190",
				"m.okafor@northwind-example.com", "li.na@example.cn", "priya.r@contoso-example.in", "kwame.mensah@example.com.gh",
				"123-45-6789", "310104199102285521", "GHA-712345678-9",
			},
			nextLink: func(b []byte) string {
				var v struct {
					Links struct {
						Next struct {
							Href string `json:"href"`
						} `json:"next"`
					} `json:"_links"`
				}
				json.Unmarshal(b, &v)
				return v.Links.Next.Href
			},
			next:  "page",
			page2: `{"_embedded":{"customers":[{"customerId":506,"phone":"13812345678"}]},"_links":{}}`, page2N: 1,
			sizeParm: "size",
			entity:   "/api/customers/501", entityID: "501",
			oneBody: `{"customerId":501,"name":"Margaret Okafor","phone":"+1 415 555 0132","_links":{}}`,
			write:   "/api/customers/501",
			public:  `{"tier":"gold"}`, private: `{"nationalId":"123"}`,
		},
	}
}

func TestPresetsThroughVeil(t *testing.T) {
	for _, tc := range presetCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			u := &upstream{
				list: map[string][]byte{tc.path: fixture(t, tc.fixture)}, next: tc.next, page2: []byte(tc.page2),
				one: map[string][]byte{tc.entity: []byte(tc.oneBody)}, ctype: tc.ctype,
			}
			r := rig(t, u, tc.res...)

			// cs_agent lists: nothing sensitive survives, the records returned are charged.
			resp, body := r.Do("GET", tc.path, "alice", "cs_agent", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s", tc.path, resp.StatusCode, body)
			}
			if l := veiltest.Leaks(body, tc.secrets); len(l) > 0 {
				t.Errorf("cs_agent list leaks %q\n%s", l, body)
			}
			a := r.audit(t)
			if a.Records != tc.records || a.Action != "list" || a.Resource != "customers" {
				t.Errorf("audit = records %d, action %q, resource %q; want %d, list, customers", a.Records, a.Action, a.Resource, tc.records)
			}
			if diff := cmp.Diff(tc.ids, a.IDs); diff != "" {
				t.Errorf("audit ids (-want +got):\n%s", diff)
			}

			// Paging: the client follows the next link, through Veil.
			link, err := url.Parse(tc.nextLink(body))
			if err != nil || link.Query().Get(tc.next) == "" {
				t.Fatalf("next link %q carries no %s (masking must keep it)", tc.nextLink(body), tc.next)
			}
			resp, body = r.Do("GET", tc.path+"?"+link.RawQuery, "alice", "cs_agent", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET page 2 = %d %s", resp.StatusCode, body)
			}
			if got := u.last().URL.Query().Get(tc.next); got != link.Query().Get(tc.next) {
				t.Errorf("upstream saw %s=%q, want %q", tc.next, got, link.Query().Get(tc.next))
			}
			if l := veiltest.Leaks(body, []string{"13812345678"}); len(l) > 0 {
				t.Errorf("page 2 leaks %q", l)
			}
			if a := r.audit(t); a.Records != tc.page2N {
				t.Errorf("page 2 audit records = %d, want %d", a.Records, tc.page2N)
			}

			// The page size is the policy's to cap; a second copy of it is refused.
			resp, body = r.Do("GET", tc.path+"?"+url.QueryEscape(tc.sizeParm)+"=5000", "alice", "cs_agent", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s=5000 = %d %s", tc.sizeParm, resp.StatusCode, body)
			}
			if got := u.last().URL.Query().Get(tc.sizeParm); got != "500" {
				t.Errorf("upstream saw %s=%q, want the cs_agent cap 500", tc.sizeParm, got)
			}
			n := u.count()
			resp, _ = r.Do("GET", tc.path+"?"+url.QueryEscape(tc.sizeParm)+"=5&"+url.QueryEscape(tc.sizeParm)+"=5000", "alice", "cs_agent", nil)
			if resp.StatusCode != http.StatusBadRequest || u.count() != n {
				t.Errorf("two page sizes = %d (upstream called %d times), want 400 and no upstream call", resp.StatusCode, u.count()-n)
			}

			// One record.
			resp, body = r.Do("GET", tc.entity, "alice", "cs_agent", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s", tc.entity, resp.StatusCode, body)
			}
			if bytes.Contains(body, []byte("Margaret Okafor")) || bytes.Contains(body, []byte("030-0074321")) || bytes.Contains(body, []byte("+1 415 555 0132")) {
				t.Errorf("cs_agent read leaks: %s", body)
			}
			a = r.audit(t)
			if a.Action != "read" || a.Records != 1 || len(a.IDs) != 1 || a.IDs[0] != tc.entityID {
				t.Errorf("read audit = action %q records %d ids %v; want read, 1, [%s]", a.Action, a.Records, a.IDs, tc.entityID)
			}

			// Writes are recognised as such and the shipped policy decides them.
			writes := []struct {
				method, path, body, role string
				status                   int
				action                   string
			}{
				{"POST", tc.path, tc.public, "cs_agent", http.StatusForbidden, "create"},
				{"PATCH", tc.write, tc.private, "cs_agent", http.StatusForbidden, "update"},
				{"PATCH", tc.write, tc.public, "cs_agent", http.StatusOK, "update"},
				{"DELETE", tc.write, "", "cs_agent", http.StatusForbidden, "delete"},
			}
			for _, w := range writes {
				var b []byte
				if w.body != "" {
					b = []byte(w.body)
				}
				resp, body := r.Do(w.method, w.path, "alice", w.role, b, "Content-Type", "application/json")
				if resp.StatusCode != w.status {
					t.Errorf("%s %s %s as %s = %d %s, want %d", w.method, w.path, w.body, w.role, resp.StatusCode, body, w.status)
				}
				if a := r.audit(t); a.Action != w.action || a.Records != 0 {
					t.Errorf("%s %s audit = action %q records %d, want %s, 0", w.method, w.path, a.Action, a.Records, w.action)
				}
			}
		})
	}
}

func TestPresetDescribe(t *testing.T) {
	ad, err := generic.New(generic.Options{Resources: []generic.Resource{
		{Match: "/odata/Customers", Type: "customers", Preset: "odata-v4"},
		{Match: "/v2/CustomerSet", Type: "customers", Preset: "odata-v2", ID: "CustomerNo"},
		{Match: "/api/people", Type: "people", Preset: "jsonapi"},
		{Match: "/api/people/{id}", Type: "people", Preset: "jsonapi"},
		{Match: "/hal/customers", Type: "customers", Preset: "hal"},
		{Match: "/hal/other", Type: "customers", Preset: "hal", Records: str("_embedded.items")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target, body string
		want                 adapters.Description
		layout               string // records path of a 200 response
		id                   string
		err                  bool
	}{
		{method: "GET", target: "/odata/Customers?$top=20",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "list", PageSize: 20, PageSizeParam: "$top"},
			layout: "value", id: "id"},
		{method: "GET", target: "/odata/Customers?top=20", err: true},
		{method: "GET", target: "/odata/Customers?$TOP=20&$top=1", err: true},
		{method: "GET", target: "/odata/Customers('O''Brien')",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "read", ID: "O'Brien", PageSize: 1},
			layout: "@this", id: "id"},
		{method: "GET", target: "/odata/Customers(42)",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "read", ID: "42", PageSize: 1},
			layout: "@this", id: "id"},
		{method: "GET", target: "/odata/Customers()", want: adapters.Description{System: "generic", Action: "list"}},
		{method: "GET", target: "/odata/Customers/$count", want: adapters.Description{System: "generic", Action: "list"}},
		{method: "POST", target: "/odata/$batch", want: adapters.Description{System: "generic", Action: "create"}},
		{method: "GET", target: "/odata/Customers(OrderID=1,ProductID=2)",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "read", ID: "OrderID=1,ProductID=2", PageSize: 1},
			layout: "@this", id: "id"},
		{method: "GET", target: "/odata/Customers('A')/Orders", want: adapters.Description{System: "generic", Action: "list"}},
		{method: "DELETE", target: "/odata/Customers('A')",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "delete", ID: "A"},
			layout: "", id: "id"},
		{method: "GET", target: "/v2/CustomerSet('0001')",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "read", ID: "0001", PageSize: 1},
			layout: "@this", id: "d.CustomerNo"},
		{method: "GET", target: "/v2/CustomerSet?$top=3",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "list", PageSize: 3, PageSizeParam: "$top"},
			layout: "d.results", id: "CustomerNo"},
		{method: "GET", target: "/api/people?page[size]=7",
			want:   adapters.Description{System: "generic", Type: "people", Action: "list", PageSize: 7, PageSizeParam: "page[size]"},
			layout: "data", id: "id"},
		{method: "GET", target: "/api/people/9",
			want:   adapters.Description{System: "generic", Type: "people", Action: "read", ID: "9", PageSize: 1},
			layout: "@this", id: "data.id"},
		{method: "PATCH", target: "/api/people/9", body: `{"data":{"type":"people","id":"9","attributes":{"phone":"1","tier":"x"},"relationships":{"owner":{}}}}`,
			want:   adapters.Description{System: "generic", Type: "people", Action: "update", ID: "9", Fields: []string{"owner", "phone", "tier"}},
			layout: "", id: "id"},
		{method: "POST", target: "/api/people", body: `{"data":[{"type":"people","attributes":{"email":"x"}}]}`,
			want:   adapters.Description{System: "generic", Type: "people", Action: "create", Fields: []string{"email"}},
			layout: "", id: "id"},
		{method: "POST", target: "/api/people", body: `{"phone":"1"}`,
			want:   adapters.Description{System: "generic", Type: "people", Action: "create"},
			layout: "", id: "id"},
		{method: "GET", target: "/hal/customers",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "list"},
			layout: "_embedded.customers", id: "id"},
		{method: "GET", target: "/hal/other",
			want:   adapters.Description{System: "generic", Type: "customers", Action: "list"},
			layout: "_embedded.items", id: "id"},
	}
	for _, tc := range tests {
		u, _ := url.Parse(tc.target)
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
		state := d.State
		d.State = nil
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("Describe(%s %s) (-want +got):\n%s", tc.method, tc.target, diff)
		}
		if tc.want.Type == "" {
			continue
		}
		d.State = state
		l := ad.Layout(d, http.StatusOK, http.Header{})
		if l.Records != tc.layout || l.ID != tc.id {
			t.Errorf("Layout(%s %s) = records %q id %q, want %q %q", tc.method, tc.target, l.Records, l.ID, tc.layout, tc.id)
		}
	}
}

func TestPresetOptionsRefused(t *testing.T) {
	tests := []struct {
		res  generic.Resource
		want string
	}{
		{generic.Resource{Match: "/x", Type: "t", Preset: "odata-v3"}, "not one of"},
		{generic.Resource{Match: "/", Type: "t", Preset: "hal"}, "rel"},
		{generic.Resource{Match: "/api/{kind}", Type: "t", Preset: "hal"}, "rel"},
	}
	for _, tc := range tests {
		_, err := generic.New(generic.Options{Resources: []generic.Resource{tc.res}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want one mentioning %q", tc.res, err, tc.want)
		}
	}
}
