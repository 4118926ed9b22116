package jiandaoyun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/adapters/jiandaoyun"
	"github.com/veilproxy/veil/internal/veiltest"
	"github.com/veilproxy/veil/policies"
	veilaudit "github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/mask"
	"github.com/veilproxy/veil/proxy/policy"
)

const (
	appID   = "65f1c0d2a3b4c5d6e7f80911"
	entryID = "65f1c0d2a3b4c5d6e7f80a22"
	apiKey  = "Bearer jdy-test-key"
)

// secrets are the fixture's values a cs_agent must never see: phones (widget and subform),
// ID numbers, e-mail addresses and street addresses.
var secrets = []string{
	"13812345678", "15800001111", "+85261234567", "18600002222", "13700004444",
	"13987654321", "025-55550123", "+85298765432", "028-55556789", "18600003333",
	"320102198507152413", "44030519920811632X", "510107200101014851", "H12345678", "E12345678",
	"wangjianguo@example.cn", "liufang@example.com", "zhaolj@example.hk", "xiaoming.huang@example.org", "emily.chen@example.com",
	"中山路 18 号德基广场 2 栋 1502 室", "科技园南区粤海街道", "皇后大道中 99 号", "人民南路四段 1 号", "世纪大道 100 号",
}

// upstream answers like Jiandaoyun's v5 API from the fixtures: every call a POST with a JSON
// body, data/list paged by data_id, errors as HTTP 400 {code, msg}.
type upstream struct {
	t        *testing.T
	records  []json.RawMessage
	ids      []string
	widgets  []byte
	failList atomic.Bool // widget/list answers 500

	mu          sync.Mutex
	widgetCalls int
	widgetAuth  []string
	dataCalls   atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	var list struct{ Data []json.RawMessage }
	if err := json.Unmarshal(readFile(t, "testdata/jiandaoyun-data-list.json"), &list); err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, records: list.Data, widgets: readFile(t, "testdata/jiandaoyun-widget-list.json")}
	for _, r := range list.Data {
		var rec struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal(r, &rec); err != nil {
			t.Fatal(err)
		}
		u.ids = append(u.ids, rec.ID)
	}
	return u
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	var body struct {
		AppID   string `json:"app_id"`
		EntryID string `json:"entry_id"`
		DataID  string `json:"data_id"`
		Limit   *int   `json:"limit"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		apiError(w, 400, 1000, "invalid request")
		return
	}
	if body.EntryID != entryID {
		apiError(w, 400, 3005, "form does not exist")
		return
	}
	switch r.URL.Path {
	case "/api/v5/app/entry/widget/list":
		u.mu.Lock()
		u.widgetCalls++
		u.widgetAuth = append(u.widgetAuth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		if u.failList.Load() {
			apiError(w, 500, 5000, "internal error")
			return
		}
		w.Write(u.widgets)
	case "/api/v5/app/entry/data/list":
		u.dataCalls.Add(1)
		limit := 10
		if body.Limit != nil {
			limit = *body.Limit
		}
		var page []json.RawMessage
		for i, id := range u.ids {
			if id > body.DataID && len(page) < limit {
				page = append(page, u.records[i])
			}
		}
		writeJSON(w, map[string]any{"data": page})
	case "/api/v5/app/entry/data/get":
		u.dataCalls.Add(1)
		for i, id := range u.ids {
			if id == body.DataID {
				writeJSON(w, map[string]any{"data": u.records[i]})
				return
			}
		}
		apiError(w, 400, 3001, "data does not exist")
	case "/api/v5/app/entry/data/update", "/api/v5/app/entry/data/create":
		u.dataCalls.Add(1)
		writeJSON(w, map[string]any{"data": u.records[0]})
	case "/api/v5/app/entry/data/delete":
		u.dataCalls.Add(1)
		writeJSON(w, map[string]any{"status": "success"})
	default:
		apiError(w, 404, 1001, "not found")
	}
}

func (u *upstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.widgetCalls
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"msg":%q}`, code, msg)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
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

// rig starts Veil with the Jiandaoyun adapter in front of u.
func rig(t *testing.T, u *upstream, o jiandaoyun.Options) *veiltest.Rig {
	t.Helper()
	var ad *jiandaoyun.Adapter
	r := veiltest.New(t, veiltest.Options{Upstream: u, Adapter: lazy{&ad}, PathPrefix: "/api/", Policy: shipped})
	var err error
	ad, err = jiandaoyun.New(o, r.Upstream.URL, r.Upstream.Client())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lazy is an adapter built once the upstream's URL is known.
type lazy struct{ a **jiandaoyun.Adapter }

func (l lazy) Describe(req *adapters.Request) (adapters.Description, error) {
	return (*l.a).Describe(req)
}

func (l lazy) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	return (*l.a).Layout(d, status, h)
}

func body(extra string) []byte {
	return []byte(`{"app_id":"` + appID + `","entry_id":"` + entryID + `"` + extra + `}`)
}

func post(r *veiltest.Rig, op, user, roles string, b []byte) (*http.Response, []byte) {
	r.T.Helper()
	return r.Do("POST", "/api/v5/app/entry/"+op, user, roles, b, "Content-Type", "application/json", "Authorization", apiKey)
}

func TestCSAgentListIsMasked(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{Forms: []jiandaoyun.Form{{EntryID: entryID, Type: "customers"}}})
	resp, got := post(r, "data/list", "alice", "cs_agent", body(`,"limit":100`))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("data/list = %d %s, want 200", resp.StatusCode, got)
	}
	if l := veiltest.Leaks(got, secrets); len(l) > 0 {
		t.Fatalf("cs_agent data/list leaks %q:\n%s", l, got)
	}
	var list struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(got, &list); err != nil {
		t.Fatalf("masked body is not JSON: %v", err)
	}
	if len(list.Data) != 6 {
		t.Fatalf("data/list returned %d records, want 6", len(list.Data))
	}
	first := list.Data[0]
	for key, want := range map[string]string{
		"_widget_1700000000002": `{"phone":"138****5678","verified":true}`, // shape kept
		"_widget_1700000000003": `"320102********2413"`,
		"_widget_1700000000006": `"VIP"`,         // 客户等级: public
		"customer_code":         `"KH2024-0001"`, // alias key, public
	} {
		if s := compact(first[key]); s != want {
			t.Errorf("record 0 %s = %s, want %s", key, s, want)
		}
	}
	sub := compact(first["_widget_1700000000010"])
	if strings.Contains(sub, "13987654321") || !strings.Contains(sub, "139****4321") || !strings.Contains(sub, `"配偶"`) {
		t.Errorf("subform = %s, want 联系人电话 masked and 关系 kept", sub)
	}
	a := audit(t, r, 1)[0]
	if a.Records != 6 || a.Resource != "customers" || a.Action != "list" || a.System != "jiandaoyun" {
		t.Errorf("audit = records %d resource %q action %q system %q, want 6 customers list jiandaoyun", a.Records, a.Resource, a.Action, a.System)
	}
	if got, want := a.Limits["user-customers-hourly"], int64(2000-6); got != want {
		t.Errorf("user budget left = %d, want %d (6 records charged, not the page size)", got, want)
	}
	if a.Fields["手机号"] == 0 || a.Fields["身份证号"] == 0 || a.Fields["联系人电话"] == 0 {
		t.Errorf("audit fields = %v, want 手机号, 身份证号 and 联系人电话 counted", a.Fields)
	}
	if len(a.IDs) != 6 || a.IDs[0] != "6720a1f3c2b8e40007a1b001" {
		t.Errorf("audit ids = %v, want the 6 _id values", a.IDs)
	}
}

// audit waits for n audit records: a request's record is written as its handler returns,
// which may be just after the client has read the response.
func audit(t *testing.T, r *veiltest.Rig, n int) []veilaudit.Record {
	t.Helper()
	recs := r.WaitAudit(n)
	if len(recs) != n {
		t.Fatalf("audit records = %d, want %d", len(recs), n)
	}
	return recs
}

func compact(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

func TestWidgetLabelsAreFetchedOnceWithTheClientsKey(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{})
	for range 3 {
		if resp, got := post(r, "data/list", "alice", "cs_agent", body("")); resp.StatusCode != 200 {
			t.Fatalf("data/list = %d %s", resp.StatusCode, got)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.widgetCalls != 1 {
		t.Errorf("widget/list called %d times for 3 requests, want 1 (cached)", u.widgetCalls)
	}
	if len(u.widgetAuth) == 0 || u.widgetAuth[0] != apiKey {
		t.Errorf("widget/list Authorization = %q, want the client's %q", u.widgetAuth, apiKey)
	}
}

func TestConfiguredWidgetsNeedNoFetch(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{Forms: []jiandaoyun.Form{{
		EntryID: entryID, Type: "customers",
		Widgets: map[string]string{
			"_widget_1700000000002": "手机号", "_widget_1700000000003": "身份证号", "_widget_1700000000004": "邮箱",
			"_widget_1700000000005": "联系地址", "_widget_1700000000012": "联系人电话",
		},
	}}})
	resp, got := post(r, "data/list", "alice", "cs_agent", body(`,"limit":100`))
	if resp.StatusCode != 200 {
		t.Fatalf("data/list = %d %s", resp.StatusCode, got)
	}
	if l := veiltest.Leaks(got, secrets); len(l) > 0 {
		t.Fatalf("leaks %q", l)
	}
	if n := u.calls(); n != 0 {
		t.Errorf("widget/list called %d times, want 0 with configured widgets", n)
	}
}

func TestUnresolvedLabelsFailClosed(t *testing.T) {
	u := newUpstream(t)
	u.failList.Store(true)
	r := rig(t, u, jiandaoyun.Options{})
	resp, got := post(r, "data/list", "alice", "cs_agent", body(""))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("data/list with widget/list failing = %d %s, want 400", resp.StatusCode, got)
	}
	if n := u.dataCalls.Load(); n != 0 {
		t.Errorf("upstream data calls = %d, want 0: records must not be fetched unnamed", n)
	}
}

func TestPagingByDataID(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{})
	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		extra := `,"limit":4`
		if cursor != "" {
			extra += `,"data_id":"` + cursor + `"`
		}
		resp, got := post(r, "data/list", "alice", "cs_agent", body(extra))
		if resp.StatusCode != 200 {
			t.Fatalf("page %d = %d %s", page, resp.StatusCode, got)
		}
		var list struct {
			Data []struct {
				ID string `json:"_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(got, &list); err != nil {
			t.Fatal(err)
		}
		for _, d := range list.Data {
			seen = append(seen, d.ID)
		}
		if len(list.Data) < 4 {
			break
		}
		cursor = list.Data[len(list.Data)-1].ID
	}
	if diff := cmp.Diff(u.ids, seen); diff != "" {
		t.Fatalf("records paged through Veil (-want +got):\n%s", diff)
	}
	var counts []int
	for _, a := range audit(t, r, 2) {
		counts = append(counts, a.Records)
	}
	slices.Sort(counts) // audit lines of back-to-back requests may land in either order
	if diff := cmp.Diff([]int{2, 4}, counts); diff != "" {
		t.Errorf("records charged per page (-want +got):\n%s", diff)
	}
}

func TestDataGetIsOneRecord(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{})
	resp, got := post(r, "data/get", "alice", "cs_agent", body(`,"data_id":"6720a1f3c2b8e40007a1b002"`))
	if resp.StatusCode != 200 {
		t.Fatalf("data/get = %d %s", resp.StatusCode, got)
	}
	if l := veiltest.Leaks(got, secrets); len(l) > 0 {
		t.Fatalf("data/get leaks %q", l)
	}
	a := audit(t, r, 1)[0]
	if a.Records != 1 || a.Action != "read" || len(a.IDs) != 1 || a.IDs[0] != "6720a1f3c2b8e40007a1b002" {
		t.Errorf("audit = records %d action %s ids %v, want 1 read of 6720a1f3c2b8e40007a1b002", a.Records, a.Action, a.IDs)
	}
}

func TestErrorEnvelopeIsNotCounted(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{})
	resp, got := post(r, "data/get", "alice", "cs_agent", body(`,"data_id":"nope"`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("data/get of a missing record = %d %s, want the upstream's 400", resp.StatusCode, got)
	}
	if a := audit(t, r, 1)[0]; a.Records != 0 {
		t.Errorf("audit records = %d for an error body, want 0", a.Records)
	}
}

func TestWrites(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{})
	tests := []struct {
		name, op, roles, extra string
		want                   int
	}{
		{"cs_agent updates a public widget", "data/update", "cs_agent", `,"data_id":"6720a1f3c2b8e40007a1b001","data":{"_widget_1700000000006":{"value":"VIP"}}`, 200},
		{"cs_agent may not update 手机号", "data/update", "cs_agent", `,"data_id":"6720a1f3c2b8e40007a1b001","data":{"_widget_1700000000002":{"value":{"phone":"13900000000"}}}`, 403},
		{"cs_agent may not update a subform phone", "data/update", "cs_agent", `,"data_id":"6720a1f3c2b8e40007a1b001","data":{"_widget_1700000000010":{"value":[{"_widget_1700000000012":{"value":"13900000000"}}]}}`, 403},
		{"cs_agent may not create", "data/create", "cs_agent", `,"data":{"_widget_1700000000006":{"value":"VIP"}}`, 403},
		{"cs_agent may not delete", "data/delete", "cs_agent", `,"data_id":"6720a1f3c2b8e40007a1b001"`, 403},
		{"ops_manager may not write", "data/update", "ops_manager", `,"data_id":"6720a1f3c2b8e40007a1b001","data":{"_widget_1700000000006":{"value":"VIP"}}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := u.dataCalls.Load()
			resp, got := post(r, tt.op, "alice", tt.roles, body(tt.extra))
			if resp.StatusCode != tt.want {
				t.Fatalf("%s as %s = %d %s, want %d", tt.op, tt.roles, resp.StatusCode, got, tt.want)
			}
			if called := u.dataCalls.Load() > before; called != (tt.want == 200) {
				t.Errorf("upstream called = %v, want %v", called, tt.want == 200)
			}
			if l := veiltest.Leaks(got, secrets); len(l) > 0 {
				t.Errorf("write response leaks %q", l)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{Forms: []jiandaoyun.Form{{EntryID: entryID, Type: "customers"}}})
	ad, err := jiandaoyun.New(jiandaoyun.Options{Forms: []jiandaoyun.Form{{EntryID: entryID, Type: "customers"}}}, r.Upstream.URL, r.Upstream.Client())
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"Authorization": {apiKey}}
	tests := []struct {
		name, path string
		body       []byte
		want       adapters.Description
	}{
		{"list", "/api/v5/app/entry/data/list", body(`,"limit":50,"fields":["_widget_1700000000002","customer_code"]`),
			adapters.Description{Type: "customers", Action: "list", PageSize: 50, Fields: []string{"手机号", "客户编号"}}},
		{"list default limit", "/api/v5/app/entry/data/list", body(""),
			adapters.Description{Type: "customers", Action: "list", PageSize: 10}},
		{"get", "/api/v5/app/entry/data/get", body(`,"data_id":"x1"`),
			adapters.Description{Type: "customers", Action: "read", ID: "x1", PageSize: 1}},
		{"create", "/api/v5/app/entry/data/batch_create", body(`,"data_list":[{"_widget_1700000000004":{"value":"a@b.c"}},{"_widget_1700000000001":{"value":"x"}}]`),
			adapters.Description{Type: "customers", Action: "create", Fields: []string{"客户姓名", "邮箱"}}},
		{"update subform", "/api/v5/app/entry/data/update", body(`,"data_id":"x1","data":{"_widget_1700000000010":{"value":[{"_id":"r1","_widget_1700000000011":{"value":"x"}}]}}`),
			adapters.Description{Type: "customers", Action: "update", ID: "x1", Fields: []string{"联系人明细", "联系人明细._id", "联系人明细.联系人"}}},
		{"batch delete", "/api/v5/app/entry/data/batch_delete", body(`,"data_ids":["x1","x2"]`),
			adapters.Description{Type: "customers", Action: "delete"}},
		{"widget list", "/api/v5/app/entry/widget/list", body(""),
			adapters.Description{Type: "metadata", Action: "read"}},
		{"unknown form", "/api/v5/app/entry/data/list", []byte(`{"app_id":"a","entry_id":"` + entryID + `","limit":5}`),
			adapters.Description{Type: "customers", Action: "list", PageSize: 5}},
		{"unknown call", "/api/v5/app/entry/data/export", body(""),
			adapters.Description{Action: "other"}},
		{"v1 path", "/api/v1/app/x/entry/y/data", body(""),
			adapters.Description{Action: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ad.Describe(&adapters.Request{Method: "POST", Path: tt.path, Header: hdr, Body: tt.body})
			if err != nil {
				t.Fatalf("Describe(%s) error: %v", tt.path, err)
			}
			tt.want.System = "jiandaoyun"
			d.State = nil
			if diff := cmp.Diff(tt.want, d); diff != "" {
				t.Errorf("Describe(%s %s) (-want +got):\n%s", tt.path, tt.body, diff)
			}
		})
	}
}

func TestDescribeRefuses(t *testing.T) {
	ad, err := jiandaoyun.New(jiandaoyun.Options{Widgets: map[string]string{"_widget_1": "x"}, FetchWidgets: new(bool)}, "http://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"not an object":         `[1]`,
		"no entry_id":           `{"app_id":"a"}`,
		"entry_id twice":        `{"app_id":"a","entry_id":"b","entry_id":"c"}`,
		"limit in two cases":    `{"app_id":"a","entry_id":"b","limit":10,"Limit":1000}`,
		"negative limit":        `{"app_id":"a","entry_id":"b","limit":-1}`,
		"fractional limit":      `{"app_id":"a","entry_id":"b","limit":1.5}`,
		"trailing data":         `{"app_id":"a","entry_id":"b"} {}`,
		"entry_id not string":   `{"app_id":"a","entry_id":7}`,
		"fields not strings":    `{"app_id":"a","entry_id":"b","fields":[1]}`,
		"data_id missing (get)": `{"app_id":"a","entry_id":"b"}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := "/api/v5/app/entry/data/list"
			if strings.Contains(name, "(get)") {
				path = "/api/v5/app/entry/data/get"
			}
			_, err := ad.Describe(&adapters.Request{Method: "POST", Path: path, Body: []byte(b)})
			if _, ok := err.(*adapters.Error); !ok {
				t.Errorf("Describe(%s) error = %v, want an *adapters.Error", b, err)
			}
		})
	}
}

func TestLabelsRefreshAfterTTL(t *testing.T) {
	u := newUpstream(t)
	r := rig(t, u, jiandaoyun.Options{WidgetTTL: 50 * time.Millisecond})
	post(r, "data/list", "alice", "cs_agent", body(""))
	time.Sleep(80 * time.Millisecond)
	u.failList.Store(true) // a failed refresh keeps serving the labels it had
	resp, got := post(r, "data/list", "alice", "cs_agent", body(`,"limit":100`))
	if resp.StatusCode != 200 {
		t.Fatalf("data/list after a failed refresh = %d %s, want 200 with the stale labels", resp.StatusCode, got)
	}
	if l := veiltest.Leaks(got, secrets); len(l) > 0 {
		t.Fatalf("leaks %q", l)
	}
	if n := u.calls(); n != 2 {
		t.Errorf("widget/list calls = %d, want 2 (first use, refresh after the TTL)", n)
	}
}
