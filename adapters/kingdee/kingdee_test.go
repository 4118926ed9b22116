package kingdee_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/kingdee"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/mask"
	"github.com/veilproxy/veil/proxy/policy"
)

const (
	query     = "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
	view      = "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.View.common.kdsvc"
	save      = "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc"
	login     = "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser.common.kdsvc"
	fieldKeys = "FCUSTID,FNumber,FName,FShortName,FTEL,FADDRESS,FTAXREGISTERCODE,FINVOICEBANKACCOUNT,FSELLER.FName,FDocumentStatus,FForbidStatus,FCreateDate"
)

// secrets are the fixtures' values a cs_agent must never see: phones, street addresses, bank
// accounts and tax registration numbers (for sole traders, a personal id).
var secrets = []string{
	"025-55550101", "13800138000", "028-55556789", "0571-55550199", "+852 5555 0123",
	"软件大道 101 号", "前海大道", "红光大道 1 号", "文三路 478 号", "广东道 25 号",
	"6222 0210 0101 2345 678", "7559 1234 5678 9012", "3301 5555 0000 1111 222", "HK-012-345-678901",
	"91320114MA1XXXXX01", "91440300MA5XXXXX02", "93510124MA6XXXXX04", "92330106MA2XXXXX05",
	// 云星辰
	"13812345678", "15800001111", "18600002222", "13700004444", "+85255550123", "软件大道", "前海大道 18 楼",
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

// upstream answers like 云星空 (ExecuteBillQuery projecting the fixture's columns by the
// request's FieldKeys, View, Save, ValidateUser; failures as HTTP 200 envelopes) and 云星辰
// (/jdy/v2/bd/customer with page/page_size, customer_detail, writes).
type upstream struct {
	t     *testing.T
	rows  [][]json.RawMessage
	jdy   []json.RawMessage
	mu    sync.Mutex
	calls []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t}
	b, err := os.ReadFile("testdata/kingdee-customers.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &u.rows); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile("testdata/kingdee-xingchen-customers.json")
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		Data struct{ Rows []json.RawMessage }
	}
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	u.jdy = x.Data.Rows
	return u
}

func (u *upstream) called() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls)
}

func failure(w http.ResponseWriter, wrap bool, msg string) {
	env := fmt.Sprintf(`{"Result":{"ResponseStatus":{"ErrorCode":500,"IsSuccess":false,"Errors":[{"FieldName":null,"Message":%q,"DIndex":0}],"SuccessEntitys":[],"SuccessMessages":[],"MsgCode":4}}}`, msg)
	if wrap {
		env = "[[" + env + "]]"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	io.WriteString(w, env)
}

// packet reads the data packet the way the test clients send it.
func packet(r *http.Request, body []byte) map[string]any {
	var raw any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		v, _ := url.ParseQuery(string(body))
		raw = v.Get("data")
	} else {
		var m map[string]any
		json.Unmarshal(body, &m)
		raw = m["data"]
		if p, ok := m["parameters"].([]any); ok && len(p) > 0 {
			raw = p[len(p)-1]
		}
	}
	if s, ok := raw.(string); ok {
		var m map[string]any
		json.Unmarshal([]byte(s), &m)
		return m
	}
	m, _ := raw.(map[string]any)
	return m
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.calls = append(u.calls, r.Method+" "+r.URL.Path)
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case r.URL.Path == query:
		p := packet(r, body)
		if p["FormId"] != "BD_Customer" {
			failure(w, true, "业务对象不存在")
			return
		}
		all := strings.Split(fieldKeys, ",")
		var idx []int
		for _, k := range strings.Split(p["FieldKeys"].(string), ",") {
			i := slices.IndexFunc(all, func(a string) bool { return strings.EqualFold(a, strings.TrimSpace(k)) })
			if i < 0 {
				failure(w, true, "字段不存在: "+k)
				return
			}
			idx = append(idx, i)
		}
		start, _ := p["StartRow"].(float64)
		limit, _ := p["Limit"].(float64)
		rows := u.rows[min(int(start), len(u.rows)):]
		if limit > 0 {
			rows = rows[:min(int(limit), len(rows))]
		}
		out := make([][]json.RawMessage, len(rows))
		for i, row := range rows {
			for _, j := range idx {
				out[i] = append(out[i], row[j])
			}
		}
		b, _ := json.Marshal(out)
		w.Write(b)
	case r.URL.Path == view:
		fmt.Fprintf(w, `{"Result":{"ResponseStatus":{"ErrorCode":0,"IsSuccess":true,"Errors":[],"SuccessEntitys":[],"SuccessMessages":[],"MsgCode":0},"Result":{"Id":100158,"Number":"CUST0001","Name":[{"Key":2052,"Value":"南京华信电子科技有限公司"}],"TEL":"025-55550101","ADDRESS":"南京市雨花台区软件大道 101 号","TAXREGISTERCODE":"91320114MA1XXXXX01","INVOICEBANKACCOUNT":"6222 0210 0101 2345 678","DocumentStatus":"C"}}}`)
	case r.URL.Path == save:
		io.WriteString(w, `{"Result":{"ResponseStatus":{"IsSuccess":true,"Errors":[],"SuccessEntitys":[{"Id":100158,"Number":"CUST0001","DIndex":0}],"SuccessMessages":[],"MsgCode":0},"Id":100158,"Number":"CUST0001","NeedReturnData":[{}]}}`)
	case r.URL.Path == login:
		io.WriteString(w, `{"Message":null,"MessageCode":"CheckPasswordPass","LoginResultType":1,"Context":{"UserName":"demo","UserId":100008,"DBid":"6512b7c9a1"},"KDSVCSessionId":"3e6a0f3d1c","IsSuccessByAPI":true}`)
	case r.URL.Path == "/jdy/v2/bd/customer" && r.Method == http.MethodGet:
		page, size := 1, 10
		if v := r.URL.Query().Get("page"); v != "" {
			page, _ = strconv.Atoi(v)
		}
		if v := r.URL.Query().Get("page_size"); v != "" {
			size, _ = strconv.Atoi(v)
		}
		start := min((page-1)*size, len(u.jdy))
		rows := u.jdy[start:min(start+size, len(u.jdy))]
		b, _ := json.Marshal(map[string]any{"errcode": 0, "description": "success", "data": map[string]any{
			"count": 128, "page": page, "page_size": size, "total_page": 22, "rows": rows}})
		w.Write(b)
	case r.URL.Path == "/jdy/v2/bd/customer_detail":
		for _, row := range u.jdy {
			if strings.Contains(string(row), `"id": "`+r.URL.Query().Get("id")+`"`) {
				fmt.Fprintf(w, `{"errcode":0,"description":"success","data":%s}`, row)
				return
			}
		}
		io.WriteString(w, `{"errcode":1000,"description":"数据不存在","data":null}`)
	case strings.HasPrefix(r.URL.Path, "/jdy/v2/bd/customer") && r.Method == http.MethodPost:
		io.WriteString(w, `{"errcode":0,"description":"success","data":{"ids":["1795216634413516800"]}}`)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"errcode":404,"description":"not found"}`)
	}
}

func rig(t *testing.T) (*veiltest.Rig, *upstream) {
	t.Helper()
	ad, err := kingdee.New(kingdee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := newUpstream(t)
	return veiltest.New(t, veiltest.Options{Upstream: u, Adapter: ad, Policy: shipped}), u
}

func post(r *veiltest.Rig, path, roles, body string) (*http.Response, []byte) {
	r.T.Helper()
	ct := "application/json"
	if !strings.HasPrefix(body, "{") {
		ct = "application/x-www-form-urlencoded"
	}
	return r.Do("POST", path, "alice", roles, []byte(body), "Content-Type", ct, "Cookie", "kdservice-sessionid=3e6a0f3d1c")
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

func queryBody(keys string, start, limit int) string {
	return fmt.Sprintf(`{"data":{"FormId":"BD_Customer","FieldKeys":%q,"FilterString":"","OrderString":"FNumber ASC","TopRowCount":0,"StartRow":%d,"Limit":%d,"SubSystemId":""}}`, keys, start, limit)
}

func TestExecuteBillQueryColumnsAreNamedByFieldKeys(t *testing.T) {
	r, _ := rig(t)
	resp, body := post(r, query, "cs_agent", queryBody(fieldKeys, 0, 2000))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ExecuteBillQuery = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("cs_agent ExecuteBillQuery leaks %q", l)
	}
	var rows [][]any
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("masked body is not JSON rows: %v", err)
	}
	if len(rows) != 6 || rows[0][1] != "CUST0001" || rows[0][0] != 100158.0 || rows[1][4] != "138****8000" {
		t.Errorf("rows[0] = %v, rows[1] = %v; want FCUSTID and FNumber kept, FTEL masked", rows[0], rows[1])
	}
	a := audits(t, r, 1)[0]
	if a.Records != 6 || a.Resource != "BD_Customer" || a.Action != "list" || a.Export {
		t.Errorf("audit = %s %s export %v %d records, want a list of 6 BD_Customer", a.Action, a.Resource, a.Export, a.Records)
	}
	if diff := cmp.Diff([]string{"100158", "100159", "100160", "100161", "100162", "100163"}, a.IDs); diff != "" {
		t.Errorf("audit ids (the FCUSTID column) (-want +got):\n%s", diff)
	}
	if a.Fields["FTEL"] == 0 || a.Fields["FINVOICEBANKACCOUNT"] == 0 {
		t.Errorf("audit fields = %v, want FTEL and FINVOICEBANKACCOUNT counted", a.Fields)
	}
}

func TestColumnsFollowTheRequest(t *testing.T) {
	r, _ := rig(t)
	// Another order, another case: the column names come from this request, not a schema.
	resp, body := post(r, query, "cs_agent", queryBody("FNumber, ftel ,FName", 0, 10))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ExecuteBillQuery = %d %s", resp.StatusCode, body)
	}
	var rows [][]any
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatal(err)
	}
	if rows[1][0] != "CUST0002" || rows[1][1] != "138****8000" || rows[1][2] != "深圳市前海云启贸易有限公司" {
		t.Errorf("row 1 = %v, want [CUST0002 138****8000 深圳市前海云启贸易有限公司]", rows[1])
	}
}

func TestPayloadForms(t *testing.T) {
	r, _ := rig(t)
	packet := `{"FormId":"BD_Customer","FieldKeys":"` + fieldKeys + `","StartRow":0,"Limit":100}`
	quoted, _ := json.Marshal(packet)
	for name, body := range map[string]string{
		"parameters":      `{"parameters":[` + packet + `]}`,
		"data as text":    `{"data":` + string(quoted) + `}`,
		"formid and data": `{"formid":"BD_Customer","data":` + packet + `}`,
		"form encoded":    "data=" + url.QueryEscape(packet),
	} {
		resp, got := post(r, query, "cs_agent", body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: ExecuteBillQuery = %d %s", name, resp.StatusCode, got)
			continue
		}
		if l := veiltest.Leaks(got, secrets); len(l) > 0 {
			t.Errorf("%s: leaks %q", name, l)
		}
	}
}

func TestPagingByStartRow(t *testing.T) {
	r, _ := rig(t)
	var ids []any
	for start := 0; ; start += 4 {
		resp, body := post(r, query, "cs_agent", queryBody("FCUSTID,FTEL", start, 4))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page at %d = %d %s", start, resp.StatusCode, body)
		}
		var rows [][]any
		if err := json.Unmarshal(body, &rows); err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			ids = append(ids, row[0])
		}
		if len(rows) < 4 {
			break
		}
	}
	if len(ids) != 6 {
		t.Fatalf("paged %d rows through Veil, want 6", len(ids))
	}
	var got []int
	for _, a := range audits(t, r, 2) {
		got = append(got, a.Records)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]int{2, 4}, got); diff != "" {
		t.Errorf("rows charged per page (-want +got):\n%s", diff)
	}
}

func TestUnboundedQueryIsAnExport(t *testing.T) {
	r, _ := rig(t)
	body := `{"data":{"FormId":"BD_Customer","FieldKeys":"FCUSTID,FTEL","TopRowCount":0,"StartRow":0,"Limit":0}}`
	if resp, got := post(r, query, "cs_agent", body); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cs_agent unbounded query = %d %s, want 403", resp.StatusCode, got)
	}
	resp, got := post(r, query, "ops_manager", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ops_manager unbounded query = %d %s", resp.StatusCode, got)
	}
	if l := veiltest.Leaks(got, secrets); len(l) > 0 {
		t.Fatalf("export leaks %q", l)
	}
	recs := audits(t, r, 2)
	if a := recs[len(recs)-1]; !a.Export || a.Records != 6 {
		t.Errorf("audit = export %v, %d records; want an export of 6", a.Export, a.Records)
	}
}

// Failures come with HTTP 200: 云星空 inside the rows array, 云星辰 as errcode ≠ 0. The
// adapters' status markers make them count nothing, and the audit line says so.
func TestFailuresAreNotCounted(t *testing.T) {
	r, _ := rig(t)
	resp, body := post(r, query, "cs_agent", `{"data":{"FormId":"BD_Nope","FieldKeys":"FID,FTEL","Limit":10}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"IsSuccess":false`) {
		t.Fatalf("failing query = %d %s, want the upstream's 200 failure envelope", resp.StatusCode, body)
	}
	resp, body = r.Do("GET", "/jdy/v2/bd/customer_detail?id=404", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"errcode":1000`) {
		t.Fatalf("missing detail = %d %s, want the upstream's errcode 1000", resp.StatusCode, body)
	}
	for _, a := range audits(t, r, 2) {
		if a.Records != 0 || !a.UpstreamFailed || len(a.IDs) != 0 {
			t.Errorf("%s audit = %d records, ids %v, upstream_failed %v; want 0, none, true", a.Path, a.Records, a.IDs, a.UpstreamFailed)
		}
	}
}

func TestView(t *testing.T) {
	r, _ := rig(t)
	resp, body := post(r, view, "cs_agent", `{"formid":"BD_Customer","data":{"CreateOrgId":0,"Number":"CUST0001","Id":""}}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("View = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("View leaks %q", l)
	}
	if !strings.Contains(string(body), `{"Key":2052,`) {
		t.Errorf("View = %s, want the multi-language Name kept as it was", body)
	}
	a := audits(t, r, 1)[0]
	if a.Records != 1 || a.Action != "read" || len(a.IDs) != 1 || a.IDs[0] != "100158" {
		t.Errorf("audit = %s %d records ids %v, want a read of 100158", a.Action, a.Records, a.IDs)
	}
}

func TestWritesAndLogin(t *testing.T) {
	r, u := rig(t)
	tests := []struct {
		name, path, roles, body string
		want                    int
	}{
		{"cs_agent updates a public field", save, "cs_agent", `{"formid":"BD_Customer","data":{"NeedUpDateFields":["FShortName"],"Model":{"FCUSTID":100158,"FShortName":"华信"}}}`, 200},
		{"cs_agent may not update FTEL", save, "cs_agent", `{"formid":"BD_Customer","data":{"NeedUpDateFields":["FShortName"],"Model":{"FCUSTID":100158,"FShortName":"华信","FTEL":"13900000000"}}}`, 403},
		{"a full save is a create", save, "cs_agent", `{"formid":"BD_Customer","data":{"Model":{"FCUSTID":0,"FShortName":"x"}}}`, 403},
		{"cs_agent may not delete", "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Delete.common.kdsvc", "cs_agent", `{"formid":"BD_Customer","data":{"Ids":"100158"}}`, 403},
		{"workflow operations are other", "/K3Cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Audit.common.kdsvc", "cs_agent", `{"formid":"BD_Customer","data":{"Ids":"100158"}}`, 403},
		{"login is allowed", login, "cs_agent", `{"acctID":"6512b7c9a1","username":"demo","password":"x","lcid":2052}`, 200},
		{"contractors may log in", login, "contractor", `{"acctID":"6512b7c9a1","username":"demo","password":"x","lcid":2052}`, 200},
		{"云星辰 update of a public field", "/jdy/v2/bd/customer", "cs_agent", `{"id":"1795216634413516800","remark":"vip"}`, 200},
		{"云星辰 update of a mobile", "/jdy/v2/bd/customer", "cs_agent", `{"id":"1795216634413516800","mobile":"13900000000"}`, 403},
		{"云星辰 update of a contact's phone", "/jdy/v2/bd/customer", "cs_agent", `{"id":"1795216634413516800","bomentity":[{"contact_phone":"1"}]}`, 403},
		{"云星辰 create", "/jdy/v2/bd/customer", "cs_agent", `{"name":"x"}`, 403},
		{"云星辰 delete", "/jdy/v2/bd/customer_delete", "cs_agent", `{"ids":["1795216634413516800"]}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(u.called())
			resp, body := post(r, tt.path, tt.roles, tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("POST %s as %s = %d %s, want %d", tt.path, tt.roles, resp.StatusCode, body, tt.want)
			}
			if reached := len(u.called()) > before; reached != (tt.want == 200) {
				t.Errorf("request reached the upstream = %v, want %v", reached, tt.want == 200)
			}
		})
	}
}

func TestXingchenList(t *testing.T) {
	r, _ := rig(t)
	var ids []string
	for page := 1; page < 5; page++ {
		resp, body := r.Do("GET", fmt.Sprintf("/jdy/v2/bd/customer?page=%d&page_size=4", page), "alice", "cs_agent", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d = %d %s", page, resp.StatusCode, body)
		}
		if l := veiltest.Leaks(body, secrets); len(l) > 0 {
			t.Fatalf("cs_agent 云星辰 list leaks %q", l)
		}
		var p struct {
			Data struct {
				Count int
				Rows  []struct{ ID string }
			}
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, row := range p.Data.Rows {
			ids = append(ids, row.ID)
		}
		if len(p.Data.Rows) < 4 {
			break
		}
	}
	if len(ids) != 6 {
		t.Fatalf("paged %d customers, want 6", len(ids))
	}
	var got []int
	for _, a := range audits(t, r, 2) {
		got = append(got, a.Records)
		if a.Resource != "customer" {
			t.Errorf("audit resource = %q, want customer", a.Resource)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]int{2, 4}, got); diff != "" {
		t.Errorf("records charged per page, not data.count (-want +got):\n%s", diff)
	}
}

func TestXingchenDetail(t *testing.T) {
	r, _ := rig(t)
	resp, body := r.Do("GET", "/jdy/v2/bd/customer_detail?id=1795216634413516801", "alice", "cs_agent", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("detail = %d %s", resp.StatusCode, body)
	}
	if l := veiltest.Leaks(body, secrets); len(l) > 0 {
		t.Fatalf("detail leaks %q", l)
	}
	a := audits(t, r, 1)[0]
	if a.Records != 1 || a.Action != "read" || len(a.IDs) != 1 || a.IDs[0] != "1795216634413516801" {
		t.Errorf("audit = %s %d records ids %v, want one read", a.Action, a.Records, a.IDs)
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
	ad, _ := kingdee.New(kingdee.Options{ExportAbove: 5000})
	lower := strings.ToLower(query)
	tests := []struct {
		name string
		req  *adapters.Request
		want adapters.Description
	}{
		{"query", request("POST", query, queryBody("FCUSTID,FTEL", 0, 500)),
			adapters.Description{Type: "BD_Customer", Action: "list", PageSize: 500, Fields: []string{"FCUSTID", "FTEL"}}},
		{"query path in lower case, form id in another case", request("POST", lower, `{"data":{"FormId":"bd_customer","FieldKeys":"FNumber","Limit":10}}`),
			adapters.Description{Type: "BD_Customer", Action: "list", PageSize: 10, Fields: []string{"FNumber"}}},
		{"TopRowCount bounds the query", request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber","TopRowCount":"20"}}`),
			adapters.Description{Type: "BD_Customer", Action: "list", PageSize: 20, Fields: []string{"FNumber"}}},
		{"above export_above", request("POST", query, queryBody("FNumber", 0, 6000)),
			adapters.Description{Type: "BD_Customer", Action: "export", Export: true, PageSize: 6000, Fields: []string{"FNumber"}}},
		{"unbounded", request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber"}}`),
			adapters.Description{Type: "BD_Customer", Action: "export", Export: true, Fields: []string{"FNumber"}}},
		{"view", request("POST", view, `{"formid":"BD_Customer","data":{"Id":100158}}`),
			adapters.Description{Type: "BD_Customer", Action: "read", ID: "100158", PageSize: 1}},
		{"view as parameters", request("POST", view, `{"parameters":["BD_Customer",{"Number":"CUST0001","Id":0}]}`),
			adapters.Description{Type: "BD_Customer", Action: "read", ID: "CUST0001", PageSize: 1}},
		{"batch save", request("POST", strings.Replace(save, "Save", "BatchSave", 1), `{"formid":"BD_Customer","data":{"Model":[{"FName":"a","FT_Entry":[{"FMOBILE":"1"}]},{"FTEL":"2"}]}}`),
			adapters.Description{Type: "BD_Customer", Action: "create", Fields: []string{"FName", "FTEL", "FT_Entry", "FT_Entry.FMOBILE"}}},
		{"delete", request("POST", strings.Replace(save, "Save", "Delete", 1), `{"formid":"BD_Customer","data":{"Ids":"1,2"}}`),
			adapters.Description{Type: "BD_Customer", Action: "delete"}},
		{"metadata", request("POST", strings.Replace(save, "Save", "QueryBusinessInfo", 1), `{"data":{"FormId":"BD_Customer"}}`),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"login by app secret", request("POST", strings.Replace(login, "ValidateUser", "LoginByAppSecret", 1), `{}`),
			adapters.Description{Type: "session", Action: "read"}},
		{"other service", request("POST", "/K3Cloud/Kingdee.K3.SCM.WebApi.ServicesStub.ExpectQtyQueryWebApi.GetExpectQty.common.kdsvc", `{}`),
			adapters.Description{Action: "create"}},
		{"GET on a service", request("GET", query, ""),
			adapters.Description{Action: "read"}},
		{"xingchen list", request("GET", "/jdy/v2/bd/customer?page=2&page_size=50&search=x", ""),
			adapters.Description{Type: "customer", Action: "list", PageSize: 50, PageSizeParam: "page_size"}},
		{"xingchen default size", request("GET", "/jdy/v2/bd/customer", ""),
			adapters.Description{Type: "customer", Action: "list", PageSize: 10, PageSizeParam: "page_size"}},
		{"xingchen detail", request("GET", "/jdy/v2/bd/customer_detail?number=KH0001", ""),
			adapters.Description{Type: "customer", Action: "read", ID: "KH0001", PageSize: 1}},
		{"xingchen create", request("POST", "/jdy/v2/bd/customer", `{"name":"x","mobile":"1"}`),
			adapters.Description{Type: "customer", Action: "create", Fields: []string{"mobile", "name"}}},
		{"xingchen audit", request("POST", "/jdy/v2/bd/customer_audit", `{"ids":["1"]}`),
			adapters.Description{Type: "customer", Action: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ad.Describe(tt.req)
			if err != nil {
				t.Fatalf("Describe error: %v", err)
			}
			tt.want.System = "kingdee"
			if diff := cmp.Diff(tt.want, d, cmpopts.IgnoreFields(adapters.Description{}, "State")); diff != "" {
				t.Errorf("Describe(%s %s) (-want +got):\n%s", tt.req.Method, tt.req.Path, diff)
			}
		})
	}
	refused := map[string]*adapters.Request{
		"data and parameters":   request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber"},"parameters":[{}]}`),
		"FieldKeys twice":       request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber","fieldkeys":"FTEL"}}`),
		"no FieldKeys":          request("POST", query, `{"data":{"FormId":"BD_Customer"}}`),
		"empty column":          request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber,,FTEL"}}`),
		"no FormId":             request("POST", query, `{"data":{"FieldKeys":"FNumber"}}`),
		"two form ids":          request("POST", query, `{"formid":"BD_Material","data":{"FormId":"BD_Customer","FieldKeys":"FNumber"}}`),
		"form data twice":       request("POST", query, "data=%7B%7D&data=%7B%7D"),
		"not a packet":          request("POST", query, `{"data":[1,2]}`),
		"negative limit":        request("POST", query, `{"data":{"FormId":"BD_Customer","FieldKeys":"FNumber","Limit":-5}}`),
		"page_size twice":       request("GET", "/jdy/v2/bd/customer?page_size=10&page_size=1000", ""),
		"xingchen body not obj": request("POST", "/jdy/v2/bd/customer", `[{}]`),
	}
	asForm := request("POST", query, queryBody("FCUSTID,FTEL", 0, 10))
	asForm.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	refused["a JSON body sent as a form"] = asForm
	for name, req := range refused {
		if _, err := ad.Describe(req); err == nil {
			t.Errorf("%s: Describe(%s %s) = nil error, want a refusal", name, req.Method, req.Path)
		}
	}
}

func TestLayout(t *testing.T) {
	ad, _ := kingdee.New(kingdee.Options{})
	d, err := ad.Describe(request("POST", query, queryBody("FNumber,FCUSTID,FTEL", 0, 10)))
	if err != nil {
		t.Fatal(err)
	}
	want := mask.Layout{HasRecords: true, ID: "FCUSTID", Columns: []string{"FNumber", "FCUSTID", "FTEL"},
		Status: mask.Status{Path: "*.*.Result.ResponseStatus.IsSuccess", OK: "true"}}
	if diff := cmp.Diff(want, ad.Layout(d, 200, nil)); diff != "" {
		t.Errorf("Layout(ExecuteBillQuery) (-want +got):\n%s", diff)
	}
	if got := ad.Layout(d, 500, nil); got.HasRecords {
		t.Errorf("Layout(ExecuteBillQuery, 500).HasRecords = true, want false")
	}
	d, _ = ad.Describe(request("GET", "/jdy/v2/bd/customer", ""))
	want = mask.Layout{Records: "data.rows", HasRecords: true, ID: "id", Status: mask.Status{Path: "errcode", OK: "0"}, Opaque: []string{"id"}}
	if diff := cmp.Diff(want, ad.Layout(d, 200, nil)); diff != "" {
		t.Errorf("Layout(云星辰 list) (-want +got):\n%s", diff)
	}
}
