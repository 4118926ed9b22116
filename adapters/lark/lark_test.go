package lark_test

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
	"github.com/veilproxy/veil/adapters/lark"
	"github.com/veilproxy/veil/adapters/lark/larktest"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/policy"
)

// secrets are the fixture's values a cs_agent must never see: phones (one inside a note's
// text segments), ID numbers, e-mail addresses (customers' and account managers' inside
// person fields), street addresses inside location fields, customer names.
var secrets = []string{
	"13812345678", "15800001111", "+85261234567", "18600002222", "13700004444", "13987654321",
	"320102198507152413", "44030519920811632X", "H12345678", "510107200101014851", "E12345678",
	"wangjianguo@example.cn", "liufang@example.com", "zhaolj@example.hk", "xiaoming.huang@example.org",
	"emily.chen@example.com", "zhouting@example.com", "chenhao@example.com",
	"中山路 18 号", "皇后大道中 99 号",
	"王建国", "赵丽娟", "黄小明", "Emily Chen",
}

const (
	table   = "/open-apis/bitable/v1/apps/bascnVeilTest/tables/tblCustomers/records"
	missing = "/open-apis/bitable/v1/apps/bascnVeilTest/tables/" + larktest.MissingTable + "/records"
	tasks   = "/open-apis/drive/v1/export_tasks"
)

// shipped is the shipped policy, compiled once for the package's tests.
func shipped(t *testing.T) *policy.Engine { return veiltest.Shipped(t) }

// client sends requests through Veil with a Lark token and reads the audit record of the
// last one (Veil writes it after the response has gone out).
type client struct {
	*veiltest.Rig
	up   *larktest.Server
	sent int
}

func newClient(t *testing.T) *client {
	t.Helper()
	ad, err := lark.New(lark.Options{Tables: map[string]string{"tblCustomers": "customers"}})
	if err != nil {
		t.Fatal(err)
	}
	up := larktest.New()
	return &client{Rig: veiltest.New(t, veiltest.Options{Upstream: up, Adapter: ad, Policy: shipped(t)}), up: up}
}

func (c *client) do(method, target, roles, body string) (*http.Response, []byte) {
	c.T.Helper()
	c.sent++
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return c.Do(method, target, "alice", roles, b, "Authorization", "Bearer u-veiltest-user-token", "Content-Type", "application/json; charset=utf-8")
}

func (c *client) audit(t *testing.T) audit.Record {
	t.Helper()
	return c.WaitAudit(c.sent)[c.sent-1]
}

type page struct {
	Code int `json:"code"`
	Data struct {
		HasMore   bool   `json:"has_more"`
		PageToken string `json:"page_token"`
		Total     int    `json:"total"`
		Items     []struct {
			RecordID string                     `json:"record_id"`
			Fields   map[string]json.RawMessage `json:"fields"`
		} `json:"items"`
	} `json:"data"`
}

func TestSearchAndListMaskedCountedAndPaged(t *testing.T) {
	c := newClient(t)
	for _, call := range []struct{ method, path, body string }{
		{"POST", table + "/search", `{"automatic_fields": false}`},
		{"GET", table, ""},
	} {
		var ids []string
		query := "?page_size=4&user_id_type=open_id"
		for n, want := range []int{4, 2} {
			resp, body := c.do(call.method, call.path+query, "cs_agent", call.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s%s = %d %s", call.method, call.path, query, resp.StatusCode, body)
			}
			if l := veiltest.Leaks(body, secrets); len(l) > 0 {
				t.Errorf("%s page %d leaks %q", call.method, n+1, l)
			}
			var p page
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Code != 0 || len(p.Data.Items) != want || p.Data.Total != 6 {
				t.Fatalf("%s page %d: code %d, %d items of %d; want 0, %d of 6", call.method, n+1, p.Code, len(p.Data.Items), p.Data.Total, want)
			}
			if got := string(p.Data.Items[0].Fields["客户等级"]); got == "" {
				t.Errorf("%s page %d lost the public field 客户等级", call.method, n+1)
			}
			// Masked text segments keep their segment type, which clients render by.
			var segs []struct{ Text, Type string }
			if err := json.Unmarshal(p.Data.Items[0].Fields["客户姓名"], &segs); err != nil || len(segs) == 0 || segs[0].Type != "text" || !strings.Contains(segs[0].Text, "*") {
				t.Errorf("%s page %d: 客户姓名 = %s (%v), want masked text segments of type text", call.method, n+1, p.Data.Items[0].Fields["客户姓名"], err)
			}
			a := c.audit(t)
			if a.Records != want || a.Action != "list" || a.Resource != "customers" || a.System != "lark" {
				t.Errorf("%s page %d audit = %s %s/%s records %d, want lark customers/list %d", call.method, n+1, a.System, a.Resource, a.Action, a.Records, want)
			}
			ids = append(ids, a.IDs...)
			if n == 0 {
				if !p.Data.HasMore || p.Data.PageToken == "" {
					t.Fatalf("%s page 1: has_more %v page_token %q", call.method, p.Data.HasMore, p.Data.PageToken)
				}
				query = "?page_size=4&page_token=" + url.QueryEscape(p.Data.PageToken)
			} else if p.Data.HasMore {
				t.Errorf("%s page 2 has_more = true", call.method)
			}
		}
		want := []string{"recuXq2Ba1", "recuXq2Ba2", "recuXq2Ba3", "recuXq2Ba4", "recuXq2Ba5", "recuXq2Ba6"}
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("%s audit ids (-want +got):\n%s", call.method, diff)
		}
	}
}

func TestBusinessErrorsAreNotCounted(t *testing.T) {
	c := newClient(t)
	for _, call := range []struct{ method, path string }{
		{"POST", missing + "/search"},
		{"GET", missing},
		{"POST", table + "/search?page_token=bogus"},
		{"GET", table + "/recNoSuchRecord"}, // a read: counted one before the status marker
	} {
		resp, body := c.do(call.method, call.path, "cs_agent", "{}")
		var p page
		json.Unmarshal(body, &p)
		if resp.StatusCode != http.StatusOK || p.Code == 0 {
			t.Fatalf("%s %s = %d %s, want the fake's HTTP 200 with a non-zero code", call.method, call.path, resp.StatusCode, body)
		}
		if a := c.audit(t); a.Records != 0 || a.Decision != "allow" || !a.UpstreamFailed || len(a.IDs) != 0 {
			t.Errorf("%s %s audit = %s records %d ids %v upstream_failed %v, want allow, 0, none, true", call.method, call.path, a.Decision, a.Records, a.IDs, a.UpstreamFailed)
		}
	}
}

func TestReadBatchGetAndPageSize(t *testing.T) {
	c := newClient(t)
	resp, body := c.do("GET", table+"/recuXq2Ba4", "cs_agent", "")
	if resp.StatusCode != http.StatusOK || veiltest.Leaks(body, secrets) != nil {
		t.Errorf("read = %d %s, want 200 masked", resp.StatusCode, body)
	}
	if a := c.audit(t); a.Action != "read" || a.Records != 1 || len(a.IDs) != 1 || a.IDs[0] != "recuXq2Ba4" {
		t.Errorf("read audit = %s records %d ids %v, want read 1 [recuXq2Ba4]", a.Action, a.Records, a.IDs)
	}
	resp, body = c.do("POST", table+"/batch_get", "cs_agent", `{"record_ids": ["recuXq2Ba1", "recuXq2Ba6"]}`)
	if resp.StatusCode != http.StatusOK || veiltest.Leaks(body, secrets) != nil {
		t.Errorf("batch_get = %d %s, want 200 masked", resp.StatusCode, body)
	}
	if a := c.audit(t); a.Action != "list" || a.Records != 2 {
		t.Errorf("batch_get audit = %s records %d, want list 2", a.Action, a.Records)
	}

	resp, _ = c.do("POST", table+"/search?page_size=2000", "cs_agent", "{}")
	if got := c.up.Last().Query.Get("page_size"); resp.StatusCode != http.StatusOK || got != "500" {
		t.Errorf("page_size=2000 = %d, upstream saw page_size=%q; want 200 and the cs_agent cap 500", resp.StatusCode, got)
	}
	c.audit(t)
	n := len(c.up.Requests())
	for _, q := range []string{"page_size=5&page_size=500", "page_size=5&PAGE_SIZE=500", "page_size=x"} {
		resp, _ := c.do("POST", table+"/search?"+q, "cs_agent", "{}")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("search ?%s = %d, want 400", q, resp.StatusCode)
		}
		c.audit(t)
	}
	if got := len(c.up.Requests()); got != n {
		t.Errorf("refused requests reached the upstream %d times", got-n)
	}
}

func TestWritesAreRecognisedAndDecided(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		method, path, body, roles string
		status                    int
		action                    string
	}{
		{"POST", table, `{"fields": {"客户等级": "VIP"}}`, "cs_agent", http.StatusForbidden, "create"},
		{"POST", table + "/batch_create", `{"records": [{"fields": {"客户等级": "VIP"}}]}`, "cs_agent", http.StatusForbidden, "create"},
		{"PUT", table + "/recuXq2Ba1", `{"fields": {"客户等级": "普通"}}`, "cs_agent", http.StatusOK, "update"},
		{"PUT", table + "/recuXq2Ba1", `{"fields": {"手机号": "13900000000"}}`, "cs_agent", http.StatusForbidden, "update"},
		{"POST", table + "/batch_update", `{"records": [{"record_id": "recuXq2Ba1", "fields": {"客户等级": "VIP", "身份证号": "1"}}]}`, "cs_agent", http.StatusForbidden, "update"},
		{"POST", table + "/batch_update", `{"records": [{"record_id": "recuXq2Ba1", "fields": {"客户等级": "VIP"}}]}`, "cs_agent", http.StatusOK, "update"},
		{"DELETE", table + "/recuXq2Ba1", "", "cs_agent", http.StatusForbidden, "delete"},
		{"POST", table + "/batch_delete", `{"records": ["recuXq2Ba1"]}`, "cs_agent", http.StatusForbidden, "delete"},
		{"GET", table + "/search", "", "cs_agent", http.StatusForbidden, "other"},
		{"GET", "/open-apis/bitable/v1/apps/bascnVeilTest/tables/tblCustomers/fields", "", "cs_agent", http.StatusForbidden, "other"},
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

func TestExportTasksAndTokens(t *testing.T) {
	c := newClient(t)
	create := `{"file_extension": "csv", "token": "bascnVeilTest", "type": "bitable", "sub_id": "tblCustomers"}`
	resp, body := c.do("POST", tasks, "cs_agent", create)
	if a := c.audit(t); resp.StatusCode != http.StatusForbidden || !a.Export || a.Resource != "customers" {
		t.Errorf("cs_agent export task = %d %s, audit export %v resource %q; want 403 on an export of customers", resp.StatusCode, body, a.Export, a.Resource)
	}
	resp, body = c.do("POST", tasks, "ops_manager", strings.Replace(create, "csv", "xlsx", 1))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("xlsx export task = %d %s, want 400 (cannot be masked)", resp.StatusCode, body)
	}
	c.audit(t)
	resp, body = c.do("POST", tasks, "ops_manager", create)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ops_manager export task = %d %s", resp.StatusCode, body)
	}
	c.audit(t)
	resp, body = c.do("GET", tasks+"/6933093124755423251?token=bascnVeilTest", "ops_manager", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "boxcnExportVeilTest") {
		t.Fatalf("export task status = %d %s", resp.StatusCode, body)
	}
	c.audit(t)
	resp, body = c.do("GET", tasks+"/file/boxcnExportVeilTest/download", "ops_manager", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export download = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Errorf("ops_manager export leaks %q", l)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(rows) != 7 || rows[0][0] != "客户姓名" {
		t.Errorf("export = %d rows (%v), want the header and 6 rows: %s", len(rows), err, body)
	}
	if a := c.audit(t); a.Records != 6 || !a.Export || a.Action != "export" {
		t.Errorf("download audit = records %d export %v action %s, want 6, true, export", a.Records, a.Export, a.Action)
	}
	resp, body = c.do("GET", tasks+"/file/boxcnExportVeilTest/download", "cs_agent", "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cs_agent download = %d %s, want 403", resp.StatusCode, body)
	}
	c.audit(t)

	resp, body = c.do("POST", "/open-apis/auth/v3/tenant_access_token/internal", "contractor", `{"app_id": "cli_x", "app_secret": "s"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "tenant_access_token") {
		t.Errorf("tenant token = %d %s, want 200", resp.StatusCode, body)
	}
	if a := c.audit(t); a.Resource != lark.TypeAuth || a.Records != 0 {
		t.Errorf("token audit = %s records %d, want auth, 0", a.Resource, a.Records)
	}
}

func TestDescribe(t *testing.T) {
	ad, err := lark.New(lark.Options{Tables: map[string]string{"tblC": "customers", "bascnB/tblL": "leads"}})
	if err != nil {
		t.Fatal(err)
	}
	const base = "/open-apis/bitable/v1/apps/bascnA/tables/"
	tests := []struct {
		method, target, body string
		want                 adapters.Description
		records, id          string
		err                  bool
	}{
		{method: "POST", target: base + "tblC/records/search?page_size=100&page_token=x", body: `{"field_names": ["客户姓名", "手机号"]}`,
			want:    adapters.Description{System: "lark", Type: "customers", Action: "list", PageSize: 100, PageSizeParam: "page_size", Fields: []string{"客户姓名", "手机号"}},
			records: "data.items", id: "record_id"},
		{method: "POST", target: base + "tblC/records/search", body: `[1]`, err: true},
		{method: "GET", target: base + "tblX/records?field_names=%5B%22%E6%89%8B%E6%9C%BA%E5%8F%B7%22%5D",
			want:    adapters.Description{System: "lark", Type: "tblX", Action: "list", PageSize: 20, PageSizeParam: "page_size", Fields: []string{"手机号"}},
			records: "data.items", id: "record_id"},
		{method: "GET", target: base + "tblC/records?field_names=phone", err: true},
		{method: "GET", target: "/open-apis/bitable/v1/apps/bascnB/tables/tblL/records/recA",
			want:    adapters.Description{System: "lark", Type: "leads", Action: "read", ID: "recA", PageSize: 1},
			records: "@this", id: "data.record.record_id"},
		{method: "POST", target: base + "tblC/records/batch_get", body: `{"record_ids": ["a", "b", "c"]}`,
			want:    adapters.Description{System: "lark", Type: "customers", Action: "list", PageSize: 3},
			records: "data.records", id: "record_id"},
		{method: "PUT", target: base + "tblC/records/recA", body: `{"fields": {"b": 1, "a": 2}}`,
			want: adapters.Description{System: "lark", Type: "customers", Action: "update", ID: "recA", Fields: []string{"a", "b"}}, id: "record_id"},
		{method: "POST", target: base + "tblC/records/batch_delete", body: `{"records": ["recA"]}`,
			want: adapters.Description{System: "lark", Type: "customers", Action: "delete", ID: "recA"}, id: "record_id"},
		{method: "POST", target: "/open-apis/drive/v1/export_tasks", body: `{"file_extension": "csv", "token": "bascnA", "type": "bitable", "sub_id": "tblC"}`,
			want: adapters.Description{System: "lark", Type: "customers", Action: "export", Export: true}, id: "record_id"},
		{method: "POST", target: "/open-apis/drive/v1/export_tasks", body: `{"file_extension": "xlsx", "token": "bascnA", "type": "bitable", "sub_id": "tblC"}`, err: true},
		{method: "GET", target: "/open-apis/drive/v1/export_tasks/file/boxcnX/download",
			want: adapters.Description{System: "lark", Type: "export", Action: "export", ID: "boxcnX", Export: true}, id: "record_id"},
		{method: "POST", target: "/open-apis/auth/v3/app_access_token/internal",
			want: adapters.Description{System: "lark", Type: "auth", Action: "read"}, id: "record_id"},
		{method: "GET", target: "/open-apis/authen/v1/user_info",
			want: adapters.Description{System: "lark", Action: "other"}, id: "record_id"},
		{method: "GET", target: base + "tblC/fields",
			want: adapters.Description{System: "lark", Action: "other"}, id: "record_id"},
		{method: "POST", target: base + "tblC/records/recA",
			want: adapters.Description{System: "lark", Action: "other"}, id: "record_id"},
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
		l := ad.Layout(d, http.StatusOK, http.Header{"Content-Type": {"application/json"}})
		if l.Records != tc.records || l.ID != tc.id || l.HasRecords != (tc.records != "") {
			t.Errorf("Layout(%s %s) = records %q id %q has %v, want %q %q", tc.method, tc.target, l.Records, l.ID, l.HasRecords, tc.records, tc.id)
		}
		if l := ad.Layout(d, http.StatusBadRequest, http.Header{}); l.HasRecords {
			t.Errorf("Layout(%s %s, 400) counts records", tc.method, tc.target)
		}
		d.State = nil
		if diff := cmp.Diff(tc.want, d); diff != "" {
			t.Errorf("Describe(%s %s) (-want +got):\n%s", tc.method, tc.target, diff)
		}
	}

	// An export file is CSV by Content-Type or attachment name; anything else is parsed as
	// JSON, which an xlsx file is not (refused).
	d, _ := ad.Describe(&adapters.Request{Method: "GET", Path: "/open-apis/drive/v1/export_tasks/file/boxcnX/download"})
	for _, h := range []http.Header{
		{"Content-Type": {"text/csv; charset=utf-8"}},
		{"Content-Type": {"application/octet-stream"}, "Content-Disposition": {`attachment; filename="客户.CSV"`}},
	} {
		if l := ad.Layout(d, http.StatusOK, h); l.Format != 1 || !l.HasRecords {
			t.Errorf("Layout(download, %v) = %+v, want CSV with records", h, l)
		}
	}
	if l := ad.Layout(d, http.StatusOK, http.Header{"Content-Disposition": {`attachment; filename="x.xlsx"`}}); l.Format != 0 || l.HasRecords {
		t.Errorf("Layout(xlsx download) = %+v, want JSON without records", l)
	}
}

func TestShippedClassification(t *testing.T) {
	ctx := context.Background()
	d, err := shipped(t).Decide(ctx, policy.Input{
		User:     policy.User{ID: "alice", Roles: []string{"cs_agent"}},
		Request:  policy.Request{Method: "POST", Path: table + "/search"},
		Route:    "lark",
		Resource: policy.Resource{System: "lark", Type: "tblAnything", Action: "list", PageSize: 20},
	})
	if err != nil || !d.Allow {
		t.Fatalf("Decide(cs_agent list) = %+v, %v; want an allow", d, err)
	}
	for f, a := range map[string]string{
		"客户姓名": "mask:name", "手机号": "mask:phone", "邮箱": "mask:email", "身份证号": "mask:id_card",
		"联系地址": "mask:address", "银行卡号": "mask:bank_card", "备注": "mask",
	} {
		if d.Fields[f] != a {
			t.Errorf("Decide(cs_agent list).Fields[%q] = %q, want %q", f, d.Fields[f], a)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	if _, err := lark.New(lark.Options{Tables: map[string]string{"": "x"}}); err == nil {
		t.Error("New(tables '': x) = nil error, want one")
	}
}
