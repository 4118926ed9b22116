package sheets_test

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
	"github.com/veilproxy/veil/adapters/sheets"
	"github.com/veilproxy/veil/adapters/sheets/sheetstest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

// secrets are the values of the "客户 名单" sheet a cs_agent must never see: phones, ID
// numbers, e-mail addresses, street addresses, names.
var secrets = []string{
	"13812345678", "15800001111", "+86 137 0000 4444", "0087 555 0100",
	"320102198507152413", "44030519920811632X",
	"wangjianguo@example.cn", "liufang@example.com", "emily.chen@example.com", "sean.obrien@example.ie",
	"中山路 18 号", "科技园南区", "世纪大道 100 号",
	"王建国", "Emily Chen", "O'Brien, Sean",
}

// customersSecrets are those of the "Customers" sheet (named in English).
var customersSecrets = []string{
	"+1-555-010-4477", "+91-94440-55512", "+233 24 555 0190", "grace.hopper@example.com", "ananya.iyer@example.in",
}

const (
	id     = sheetstest.SpreadsheetID
	values = "/v4/spreadsheets/" + id + "/values/"
)

// columns names the "客户 名单" sheet's columns by letter, as a tenant would configure it.
var columns = map[string]string{"A": "客户ID", "B": "姓名", "C": "手机", "D": "邮箱", "E": "身份证号", "F": "地址", "G": "累计消费", "H": "备注"}

// shipped is the shipped policy, compiled once for the package's tests.
func shipped(t *testing.T) *policy.Engine { return veiltest.Shipped(t) }

// client sends requests through Veil with a Google API key and reads the audit record of
// the last one (Veil writes it after the response has gone out).
type client struct {
	*veiltest.Rig
	up   *sheetstest.Server
	sent int
}

func newClient(t *testing.T, o sheets.Options) *client {
	t.Helper()
	ad, err := sheets.New(o)
	if err != nil {
		t.Fatal(err)
	}
	up := sheetstest.New()
	return &client{Rig: veiltest.New(t, veiltest.Options{Upstream: up, Adapter: ad, Policy: shipped(t)}), up: up}
}

// get sends a request for path (a range is escaped the way client libraries escape it).
func (c *client) do(method, path, query, roles, body string) (*http.Response, []byte) {
	c.T.Helper()
	c.sent++
	target := (&url.URL{Path: path}).EscapedPath()
	if query != "" {
		target += "?" + query
	}
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return c.Do(method, target, "alice", roles, b, "Authorization", "Bearer ya29.veiltest", "Content-Type", "application/json")
}

func (c *client) audit(t *testing.T) audit.Record {
	t.Helper()
	return c.WaitAudit(c.sent)[c.sent-1]
}

type valueRange struct {
	Range  string  `json:"range"`
	Values [][]any `json:"values"`
}

func TestValuesGetNamedByHeaderRow(t *testing.T) {
	c := newClient(t, sheets.Options{})
	resp, body := c.do("GET", values+"'客户 名单'!A1:H1000", "valueRenderOption=FORMATTED_VALUE", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("values.get = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Errorf("cs_agent values.get leaks %q\n%s", l, body)
	}
	var vr valueRange
	if err := json.Unmarshal(body, &vr); err != nil {
		t.Fatal(err)
	}
	if len(vr.Values) != 7 {
		t.Fatalf("values = %d rows, want the header and 6 rows", len(vr.Values))
	}
	if diff := cmp.Diff([]any{"客户ID", "姓名", "手机", "邮箱", "身份证号", "地址", "累计消费", "备注"}, vr.Values[0]); diff != "" {
		t.Errorf("header row changed (-want +got):\n%s", diff)
	}
	row := vr.Values[1]
	if row[0] != "C-0001" || row[6] != "58,600.50" {
		t.Errorf("public cells = %v, %v; want C-0001, 58,600.50 kept", row[0], row[6])
	}
	if row[2] != "138****5678" || row[4] != "320102********2413" {
		t.Errorf("手机, 身份证号 = %v, %v; want 138****5678, 320102********2413", row[2], row[4])
	}
	if len(vr.Values[3]) != 2 || len(vr.Values[4]) != 0 {
		t.Errorf("ragged rows = %v, %v; want their lengths kept (2, 0)", vr.Values[3], vr.Values[4])
	}
	a := c.audit(t)
	if a.Records != 6 || a.Action != "list" || a.Resource != sheets.DefaultType || a.System != "sheets" {
		t.Errorf("audit = %s %s/%s records %d, want sheets spreadsheet/list 6 (the header row is not a record)", a.System, a.Resource, a.Action, a.Records)
	}
}

func TestRangesBelowTheHeaderRow(t *testing.T) {
	// Paging a sheet by ranges: the first page holds the header row, later ones do not.
	pages := []struct{ rng string }{{"'客户 名单'!A1:H4"}, {"'客户 名单'!A5:H7"}}

	refusing := newClient(t, sheets.Options{})
	resp, body := refusing.do("GET", values+pages[1].rng, "", "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "header row") {
		t.Errorf("a range below the header row without columns = %d %s, want 400 naming the header row", resp.StatusCode, body)
	}
	if n := len(refusing.up.Requests()); n != 0 {
		t.Errorf("the refused request reached the upstream (%d requests)", n)
	}
	refusing.audit(t)

	c := newClient(t, sheets.Options{Spreadsheets: map[string]sheets.Spreadsheet{
		id: {Sheets: map[string]sheets.Settings{"客户 名单": {Type: "customers", Columns: columns}}},
	}})
	total := 0
	for n, p := range pages {
		resp, body := c.do("GET", values+p.rng, "", "cs_agent", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: %s = %d %s", n+1, p.rng, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Errorf("page %d leaks %q\n%s", n+1, l, body)
		}
		var vr valueRange
		json.Unmarshal(body, &vr)
		a := c.audit(t)
		if a.Records != 3 || a.Resource != "customers" {
			t.Errorf("page %d audit = %s records %d, want customers, 3", n+1, a.Resource, a.Records)
		}
		total += a.Records
		if n == 1 && (len(vr.Values) != 3 || vr.Values[1][0] != "C-0005") {
			t.Errorf("page 2 = %v, want rows 5 to 7", vr.Values)
		}
	}
	if total != 6 {
		t.Errorf("records over both pages = %d, want 6", total)
	}

	// With unnamed: detect, the range goes through with only the detectors.
	d := newClient(t, sheets.Options{Unnamed: sheets.UnnamedDetect})
	resp, body = d.do("GET", values+pages[1].rng, "", "cs_agent", "")
	if resp.StatusCode != http.StatusOK || veiltest.Leaks(body, []string{"13700004444", "emily.chen@example.com", "sean.obrien@example.ie"}) != nil {
		t.Errorf("detect mode = %d %s, want 200 with phones and e-mails found by the detectors", resp.StatusCode, body)
	}
	if a := d.audit(t); a.Records != 3 {
		t.Errorf("detect mode audit records = %d, want 3", a.Records)
	}
}

func TestNamedRangesAndSheets(t *testing.T) {
	c := newClient(t, sheets.Options{Spreadsheets: map[string]sheets.Spreadsheet{
		id: {Sheets: map[string]sheets.Settings{"Customers": {Type: "customers"}}},
	}})
	// A bare name may be a named range starting anywhere: refused unless the sheet is listed.
	resp, body := c.do("GET", values+"客户 名单", "", "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("values.get of an unlisted bare name = %d %s, want 400", resp.StatusCode, body)
	}
	c.audit(t)
	resp, body = c.do("GET", values+"Customers", "", "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("values.get Customers = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, append(customersSecrets, "Grace Hopper", "Kwame Mensah")); len(l) > 0 {
		t.Errorf("Customers leaks %q\n%s", l, body)
	}
	if a := c.audit(t); a.Records != 3 || a.Resource != "customers" {
		t.Errorf("audit = %s records %d, want customers, 3", a.Resource, a.Records)
	}
	var vr valueRange
	json.Unmarshal(body, &vr)
	if len(vr.Values) != 4 || vr.Values[1][0] != float64(1001) || vr.Values[1][4] != 12500.75 {
		t.Errorf("Customers = %v, want UNFORMATTED numbers kept", vr.Values)
	}
}

func ranges(rs ...string) string {
	q := url.Values{"ranges": rs}
	return q.Encode()
}

// dataRows counts the rows of a batchGet answer: all of them, or with first those that are
// not a range's first (header) row.
func dataRows(t *testing.T, body []byte, first bool) int {
	t.Helper()
	var b struct{ ValueRanges []valueRange }
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("batchGet body: %v", err)
	}
	n := 0
	for _, vr := range b.ValueRanges {
		n += len(vr.Values)
		if first && len(vr.Values) > 0 {
			n--
		}
	}
	return n
}

func TestBatchGetAndColumns(t *testing.T) {
	c := newClient(t, sheets.Options{})
	batch := "/v4/spreadsheets/" + id + "/values:batchGet"
	// Every range starts at its header row: each is named by its own first row.
	resp, body := c.do("GET", batch, ranges("'客户 名单'!A1:H4", "Customers!A1:E4", "'客户 名单'!A1:C1000"), "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batchGet from header rows = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, append(append([]string{}, secrets...), customersSecrets...)); len(l) > 0 {
		t.Errorf("batchGet from header rows leaks %q", l)
	}
	if a, want := c.audit(t), dataRows(t, body, true); a.Records != want || want < 6 {
		t.Errorf("batchGet from header rows charged %d records, want the %d data rows returned", a.Records, want)
	}
	// One range starts below the header row and nothing names its columns: refused.
	resp, body = c.do("GET", batch, ranges("'客户 名单'!A1:H4", "'客户 名单'!A3:H4"), "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "values.get") {
		t.Errorf("batchGet named two ways (unnamed: refuse) = %d %s, want 400 pointing to values.get", resp.StatusCode, body)
	}
	c.audit(t)
	// ByDataFilter names its ranges in data filters Veil does not read: refused.
	resp, _ = c.do("POST", "/v4/spreadsheets/"+id+"/values:batchGetByDataFilter", "", "cs_agent", `{"dataFilters":[{"a1Range":"A1:H4"}]}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("batchGetByDataFilter (unnamed: refuse) = %d, want 400", resp.StatusCode)
	}
	c.audit(t)
	resp, body = c.do("GET", values+"'客户 名单'!A1:H4", "majorDimension=COLUMNS", "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("majorDimension=COLUMNS = %d %s, want 400", resp.StatusCode, body)
	}
	c.audit(t)
	resp, _ = c.do("GET", values+"'客户 名单'!A1:H4", "majorDimension=ROWS&majorDimension=COLUMNS", "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("majorDimension twice = %d, want 400", resp.StatusCode)
	}
	c.audit(t)

	// With columns configured, ranges below the header row are named by them.
	byCols := newClient(t, sheets.Options{Settings: sheets.Settings{Columns: columns}})
	resp, body = byCols.do("GET", batch, ranges("'客户 名单'!A2:H3", "'客户 名单'!A4:H9"), "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batchGet by columns = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Errorf("batchGet by columns leaks %q", l)
	}
	if a, want := byCols.audit(t), dataRows(t, body, false); a.Records != want || want < 3 {
		t.Errorf("batchGet by columns charged %d records, want the %d rows returned", a.Records, want)
	}
	// Some by their first row, some by columns: the engine names all ranges one way.
	resp, _ = byCols.do("GET", batch, ranges("'客户 名单'!A1:H4", "'客户 名单'!A3:H4"), "cs_agent", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("batchGet named two ways = %d, want 400", resp.StatusCode)
	}
	byCols.audit(t)

	d := newClient(t, sheets.Options{Unnamed: sheets.UnnamedDetect})
	resp, body = d.do("GET", batch, ranges("'客户 名单'!A1:H4", "'客户 名单'!A3:H4"), "cs_agent", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batchGet (unnamed: detect) = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, []string{"13812345678", "15800001111", "44030519920811632X", "wangjianguo@example.cn", "liufang@example.com"}); len(l) > 0 {
		t.Errorf("batchGet leaks what the detectors find: %q", l)
	}
	// Ranges that cannot be named one way: each range and each row is a record.
	if a, want := d.audit(t), 2+dataRows(t, body, false); a.Records != want {
		t.Errorf("batchGet audit records = %d, want %d (2 ranges and every row, header rows included)", a.Records, want)
	}
}

func TestExports(t *testing.T) {
	c := newClient(t, sheets.Options{})
	export := "/spreadsheets/d/" + id + "/export"
	resp, body := c.do("GET", export, "format=csv&gid=0", "cs_agent", "")
	if a := c.audit(t); resp.StatusCode != http.StatusForbidden || !a.Export {
		t.Errorf("cs_agent export = %d %s (export %v), want 403 on an export", resp.StatusCode, body, a.Export)
	}
	for _, e := range []struct{ path, query string }{{export, "format=csv&gid=0"}, {"/drive/v3/files/" + id + "/export", "mimeType=text%2Fcsv"}} {
		resp, body := c.do("GET", e.path, e.query, "ops_manager", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ops_manager %s = %d %s", e.path, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Errorf("ops_manager %s leaks %q\n%s", e.path, l, body)
		}
		cr := csv.NewReader(strings.NewReader(string(body)))
		cr.FieldsPerRecord = -1
		rows, err := cr.ReadAll()
		if err != nil || len(rows) != 6 || rows[0][2] != "手机" || rows[1][0] != "C-0001" {
			t.Errorf("%s = %v (%v), want the header and rows", e.path, rows, err)
		}
		if a := c.audit(t); a.Records != len(rows)-1 || !a.Export || a.Action != "export" {
			t.Errorf("%s audit = records %d export %v action %s, want %d, an export", e.path, a.Records, a.Export, a.Action, len(rows)-1)
		}
	}
	for _, q := range []string{"format=xlsx", "format=csv&format=pdf"} {
		resp, _ := c.do("GET", export, q, "ops_manager", "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("export ?%s = %d, want 400", q, resp.StatusCode)
		}
		c.audit(t)
	}
}

func TestWritesAndMetadata(t *testing.T) {
	c := newClient(t, sheets.Options{Spreadsheets: map[string]sheets.Spreadsheet{
		id: {Sheets: map[string]sheets.Settings{"客户 名单": {Columns: columns}}},
	}})
	tests := []struct {
		method, path, query, body string
		status                    int
		action                    string
	}{
		{"PUT", values + "'客户 名单'!G2", "valueInputOption=RAW", `{"values": [["60,000.00"]]}`, http.StatusOK, "update"},
		{"PUT", values + "'客户 名单'!A2:C2", "valueInputOption=RAW", `{"values": [["C-0001", "王建国", "13900000000"]]}`, http.StatusForbidden, "update"},
		{"PUT", values + "'客户 名单'!G2:I2", "valueInputOption=RAW", `{"values": [["1", "2", "3"]]}`, http.StatusForbidden, "update"},
		{"PUT", values + "Other!A2", "valueInputOption=RAW", `{"values": [["x"]]}`, http.StatusForbidden, "update"},
		{"POST", values + "'客户 名单'!A1:H1:append", "valueInputOption=RAW", `{"values": [["C-0007"]]}`, http.StatusForbidden, "create"},
		{"POST", values + "'客户 名单'!A2:H2:clear", "", `{}`, http.StatusForbidden, "delete"},
		{"POST", "/v4/spreadsheets/" + id + "/values:batchUpdate", "", `{"valueInputOption": "RAW", "data": [{"range": "'客户 名单'!G3", "values": [["1"]]}]}`, http.StatusOK, "update"},
		{"POST", "/v4/spreadsheets/" + id + "/values:batchUpdate", "", `{"valueInputOption": "RAW", "data": [{"range": "'客户 名单'!G3", "values": [["1"]]}, {"range": "'客户 名单'!D3", "values": [["a@b.c"]]}]}`, http.StatusForbidden, "update"},
		{"POST", "/v4/spreadsheets/" + id + "/values:batchClear", "", `{"ranges": ["'客户 名单'!A2:H2"]}`, http.StatusForbidden, "delete"},
		{"POST", "/v4/spreadsheets/" + id + ":batchUpdate", "", `{"requests": []}`, http.StatusForbidden, "update"},
		{"POST", "/v4/spreadsheets", "", `{"properties": {"title": "x"}}`, http.StatusForbidden, "create"},
		{"GET", "/v4/spreadsheets/" + id, "fields=sheets.properties", "", http.StatusOK, "read"},
		{"GET", "/v4/spreadsheets/" + id + "/developerMetadata/1", "", "", http.StatusForbidden, "other"},
	}
	for _, tc := range tests {
		resp, body := c.do(tc.method, tc.path, tc.query, "cs_agent", tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s = %d %s, want %d", tc.method, tc.path, tc.body, resp.StatusCode, body, tc.status)
		}
		if a := c.audit(t); a.Action != tc.action || a.Records != 0 {
			t.Errorf("%s %s audit = action %q records %d, want %s, 0", tc.method, tc.path, a.Action, a.Records, tc.action)
		}
	}
	for _, q := range []string{"includeGridData=true", "fields=sheets", "fields=sheets.data.rowData.values.formattedValue", "ranges=A1&includeGridData=true"} {
		resp, body := c.do("GET", "/v4/spreadsheets/"+id, q, "security_admin", "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("spreadsheets.get ?%s = %d %s, want 400 (grid data)", q, resp.StatusCode, body)
		}
		c.audit(t)
	}
}

func TestDescribe(t *testing.T) {
	ad, err := sheets.New(sheets.Options{
		Settings: sheets.Settings{HeaderRow: 2, Columns: map[string]string{"A": "id", "B": "phone", "C": "email"}},
		Spreadsheets: map[string]sheets.Spreadsheet{
			"book1": {Settings: sheets.Settings{Type: "customers"}, Sheets: map[string]sheets.Settings{"Leads": {Type: "leads", HeaderRow: 1}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	first := layoutOf(t, ad, "GET", "/v4/spreadsheets/x/values/Sheet1!A2:C10")
	if !first.ColumnsFromFirstRecord || first.Records != "values" {
		t.Errorf("a range starting at header_row 2 = %+v, want columns from its first row", first)
	}
	below := layoutOf(t, ad, "GET", "/v4/spreadsheets/x/values/Sheet1!B5:C")
	if diff := cmp.Diff([]string{"phone", "email"}, below.Columns); diff != "" || below.ColumnsFromFirstRecord {
		t.Errorf("a range from column B below the header (-want +got):\n%s", diff)
	}
	tests := []struct {
		method, target, body string
		want                 adapters.Description
		err                  bool
	}{
		{method: "GET", target: "/v4/spreadsheets/book1/values/Sheet1!A2:C10",
			want: adapters.Description{System: "sheets", Type: "customers", Action: "list", PageSize: 8}},
		{method: "GET", target: "/v4/spreadsheets/book1/values/Leads!A1:Z",
			want: adapters.Description{System: "sheets", Type: "leads", Action: "list"}},
		{method: "GET", target: "/v4/spreadsheets/book1/values/Leads",
			want: adapters.Description{System: "sheets", Type: "leads", Action: "list"}},
		{method: "GET", target: "/v4/spreadsheets/x/values/Sheet1!A5:B9",
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "list", PageSize: 5, Fields: []string{"id", "phone"}}},
		{method: "GET", target: "/v4/spreadsheets/x/values/Sheet1!A5:F9", err: true},
		// Above the header row with columns configured: every row, the header one included, is
		// a record named by the columns.
		{method: "GET", target: "/v4/spreadsheets/x/values/Sheet1!A1:C9",
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "list", PageSize: 9, Fields: []string{"id", "phone", "email"}}},
		{method: "GET", target: "/v4/spreadsheets/x/values/Sheet1!H:A2", err: true},
		{method: "PUT", target: "/v4/spreadsheets/x/values/Sheet1!B3", body: `{"values": [["1", "a@b"]]}`,
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "update", Fields: []string{"email", "phone"}}},
		{method: "PUT", target: "/v4/spreadsheets/x/values/Sheet1!B3", body: `{"majorDimension": "COLUMNS", "values": [["1", "2", "3"]]}`,
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "update", Fields: []string{"phone"}}},
		{method: "PUT", target: "/v4/spreadsheets/x/values/Sheet1!C3", body: `{"values": [["1", "2"]]}`,
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "update"}},
		{method: "POST", target: "/v4/spreadsheets/x/values/Sheet1!A1:append", body: `{"values": [["1", "2"]]}`,
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "create", Fields: []string{"id", "phone"}}},
		{method: "POST", target: "/v4/spreadsheets/x/values/Sheet1!A1:clear",
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "delete"}},
		{method: "GET", target: "/v4/spreadsheets/x/values/Sheet1!A1:clear",
			want: adapters.Description{System: "sheets", Action: "other"}},
		{method: "GET", target: "/v4/spreadsheets/x/values:batchGet?ranges=A2:B4&ranges=A2:C9",
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "list", PageSize: 2 + 7}},
		{method: "GET", target: "/v4/spreadsheets/x/values:batchGet?ranges=A3:C4&ranges=A6:C9",
			want: adapters.Description{System: "sheets", Type: "spreadsheet", Action: "list", PageSize: 2 + 4, Fields: []string{"email", "id", "phone"}}},
		{method: "GET", target: "/v4/spreadsheets/x/values:batchGet?ranges=A2:B4&ranges=A5:C9", err: true},
		{method: "GET", target: "/v4/spreadsheets/x/values:batchGet?ranges=A3:C4&ranges=B6:C9", err: true},
		{method: "GET", target: "/v4/spreadsheets/book1",
			want: adapters.Description{System: "sheets", Type: "customers", Action: "read", ID: "book1"}},
		{method: "GET", target: "/spreadsheets/d/book1/export?format=csv&gid=3",
			want: adapters.Description{System: "sheets", Type: "customers", Action: "export", ID: "book1", Export: true}},
		{method: "GET", target: "/spreadsheets/d/book1/gviz/tq?tqx=out:csv",
			want: adapters.Description{System: "sheets", Action: "other"}},
		{method: "GET", target: "/drive/v3/files/book1/export?mimeType=application/pdf", err: true},
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
		d.State = nil
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("Describe(%s %s) (-want +got):\n%s", tc.method, tc.target, diff)
		}
	}

	// batchGet under unnamed: detect: valueRanges are records, their rows nested records.
	det, err := sheets.New(sheets.Options{Unnamed: sheets.UnnamedDetect})
	if err != nil {
		t.Fatal(err)
	}
	l := layoutOf(t, det, "GET", "/v4/spreadsheets/x/values:batchGet?ranges=A1:B2&ranges=C2:C9")
	if l.Records != "valueRanges" || !l.HasRecords || len(l.Nested) != 1 || l.Nested[0] != "values" {
		t.Errorf("batchGet layout = %+v, want valueRanges with nested values", l)
	}
}

func layoutOf(t *testing.T, ad *sheets.Adapter, method, target string) (l layout) {
	t.Helper()
	u, _ := url.Parse(target)
	d, err := ad.Describe(&adapters.Request{Method: method, Path: u.Path, Query: u.Query()})
	if err != nil {
		t.Fatalf("Describe(%s %s) error: %v", method, target, err)
	}
	ml := ad.Layout(d, http.StatusOK, http.Header{"Content-Type": {"application/json"}})
	return layout{Records: ml.Records, HasRecords: ml.HasRecords, Nested: ml.Nested, Columns: ml.Columns, ColumnsFromFirstRecord: ml.ColumnsFromFirstRecord}
}

type layout struct {
	Records                string
	HasRecords             bool
	Nested, Columns        []string
	ColumnsFromFirstRecord bool
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []sheets.Options{
		{Unnamed: "allow"},
		{Settings: sheets.Settings{HeaderRow: -1}},
		{Settings: sheets.Settings{Columns: map[string]string{"A1": "x"}}},
		{Settings: sheets.Settings{Columns: map[string]string{"B": " "}}},
		{Spreadsheets: map[string]sheets.Spreadsheet{"x": {Sheets: map[string]sheets.Settings{"s": {Columns: map[string]string{"?": "x"}}}}}},
	} {
		if _, err := sheets.New(o); err == nil {
			t.Errorf("New(%+v) = nil error, want one", o)
		}
	}
}

func TestShippedClassification(t *testing.T) {
	ctx := context.Background()
	d, err := shipped(t).Decide(ctx, policy.Input{
		User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}},
		Request:  policy.Request{Method: "GET", Path: values + "A1:H10"},
		Route:    "sheets",
		Resource: policy.Resource{System: "sheets", Type: sheets.DefaultType, Action: "list"},
	})
	if err != nil || !d.Allow {
		t.Fatalf("Decide(cs_agent list) = %+v, %v; want an allow", d, err)
	}
	for f, a := range map[string]string{
		"姓名": "mask:name", "手机": "mask:phone", "邮箱": "mask:email", "身份证号": "mask:id_card",
		"地址": "mask:address", "银行卡号": "mask:bank_card", "phone": "mask:phone", "email": "mask:email",
	} {
		if d.Fields[f] != a {
			t.Errorf("Decide(cs_agent list).Fields[%q] = %q, want %q", f, d.Fields[f], a)
		}
	}
}
