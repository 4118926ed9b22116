// Package larktest is a fake Feishu/Lark Open Platform for tests: every Bitable table holds
// the records of testdata/records.json (the records/search shape, values invented), searched
// and listed with page_size and page_token, read, written, exported through Drive export tasks
// as CSV, with the {code, msg, data} envelope Lark answers with — including HTTP 200 with a
// non-zero code for a business error (table "tblMissing" does not exist).
package larktest

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:embed testdata/records.json
var fixture []byte

// Fixture returns the search response the records come from, as stored.
func Fixture() []byte { return slices.Clone(fixture) }

// MissingTable is a table id the fake answers with HTTP 200 and code 1254004 (WrongTableId).
const MissingTable = "tblMissing"

// Request is what the fake saw of one request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

type field struct {
	name  string
	value json.RawMessage
}

// object is a JSON object that keeps its members' order.
type object []field

// UnmarshalJSON reads a JSON object, keeping its members in order.
func (o *object) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("larktest: fields: not an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*o = append(*o, field{t.(string), v})
	}
	return nil
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.name)
		b = append(append(append(b, k...), ':'), f.value...)
	}
	return append(b, '}'), nil
}

type record struct {
	RecordID string `json:"record_id"`
	Fields   object `json:"fields"`
}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	records []record

	mu   sync.Mutex
	seen []Request
}

// New returns a fake serving the fixture's records.
func New() *Server {
	var doc struct {
		Data struct {
			Items []record `json:"items"`
		} `json:"data"`
	}
	if err := json.Unmarshal(fixture, &doc); err != nil {
		panic("larktest: bad fixture: " + err.Error())
	}
	return &Server{records: doc.Data.Items}
}

// Requests returns what the fake has seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Last returns the last request the fake saw.
func (s *Server) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		return Request{}
	}
	return s.seen[len(s.seen)-1]
}

func reply(w http.ResponseWriter, status, code int, msg string, data any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	body := map[string]any{"code": code, "msg": msg}
	if data != nil {
		body["data"] = data
	}
	json.NewEncoder(w).Encode(body)
}

const (
	apps  = "/open-apis/bitable/v1/apps/"
	tasks = "/open-apis/drive/v1/export_tasks"
)

// ServeHTTP answers like open.feishu.cn.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	p := r.URL.Path
	if strings.HasPrefix(p, "/open-apis/auth/v3/") && r.Method == http.MethodPost {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"code":0,"msg":"ok","tenant_access_token":"t-veiltest-tenant-token","app_access_token":"a-veiltest-app-token","expire":7200}`)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		reply(w, http.StatusBadRequest, 99991661, "Missing access token for authorization. Please make a request with token attached.", nil)
		return
	}
	switch {
	case strings.HasPrefix(p, apps):
		s.bitable(w, r, strings.Split(strings.TrimPrefix(p, apps), "/"), body)
	case strings.HasPrefix(p, tasks):
		s.export(w, r, strings.Split(strings.Trim(strings.TrimPrefix(p, tasks), "/"), "/"))
	default:
		reply(w, http.StatusNotFound, 404, "404 page not found", nil)
	}
}

func (s *Server) bitable(w http.ResponseWriter, r *http.Request, segs []string, body []byte) {
	if len(segs) < 4 || segs[1] != "tables" || segs[3] != "records" {
		reply(w, http.StatusNotFound, 404, "404 page not found", nil)
		return
	}
	if segs[2] == MissingTable {
		reply(w, http.StatusOK, 1254004, "WrongTableId", map[string]any{})
		return
	}
	op := ""
	if len(segs) == 5 {
		op = segs[4]
	}
	switch {
	case (op == "" && r.Method == http.MethodGet) || (op == "search" && r.Method == http.MethodPost):
		s.page(w, r.URL.Query())
	case op == "batch_get" && r.Method == http.MethodPost:
		var in struct {
			RecordIDs []string `json:"record_ids"`
		}
		json.Unmarshal(body, &in)
		out := []record{}
		for _, rc := range s.records {
			if slices.Contains(in.RecordIDs, rc.RecordID) {
				out = append(out, rc)
			}
		}
		reply(w, http.StatusOK, 0, "success", map[string]any{"records": out})
	case (op == "" || op == "batch_create" || op == "batch_update") && r.Method == http.MethodPost:
		var in struct {
			Fields  object   `json:"fields"`
			Records []record `json:"records"`
		}
		if json.Unmarshal(body, &in) != nil {
			reply(w, http.StatusBadRequest, 99992402, "field validation failed", nil)
			return
		}
		if op == "" {
			reply(w, http.StatusOK, 0, "success", map[string]any{"record": record{RecordID: "recNew1", Fields: in.Fields}})
			return
		}
		reply(w, http.StatusOK, 0, "success", map[string]any{"records": in.Records})
	case op == "batch_delete" && r.Method == http.MethodPost:
		var in struct {
			Records []string `json:"records"`
		}
		json.Unmarshal(body, &in)
		out := []map[string]any{}
		for _, id := range in.Records {
			out = append(out, map[string]any{"deleted": true, "record_id": id})
		}
		reply(w, http.StatusOK, 0, "success", map[string]any{"records": out})
	case op != "" && r.Method == http.MethodGet:
		for _, rc := range s.records {
			if rc.RecordID == op {
				reply(w, http.StatusOK, 0, "success", map[string]any{"record": rc})
				return
			}
		}
		reply(w, http.StatusOK, 1254043, "RecordIdNotFound", map[string]any{})
	case op != "" && r.Method == http.MethodPut:
		var in struct {
			Fields object `json:"fields"`
		}
		json.Unmarshal(body, &in)
		reply(w, http.StatusOK, 0, "success", map[string]any{"record": record{RecordID: op, Fields: in.Fields}})
	case op != "" && r.Method == http.MethodDelete:
		reply(w, http.StatusOK, 0, "success", map[string]any{"deleted": true, "record_id": op})
	default:
		reply(w, http.StatusNotFound, 404, "404 page not found", nil)
	}
}

// page answers list and search: page_token is "pt" and the index of the page's first record.
func (s *Server) page(w http.ResponseWriter, q url.Values) {
	size := 20
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			reply(w, http.StatusBadRequest, 99992402, "field validation failed", nil)
			return
		}
		size = n
	}
	start := 0
	if t := q.Get("page_token"); t != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(t, "pt"))
		if err != nil || !strings.HasPrefix(t, "pt") || n > len(s.records) {
			reply(w, http.StatusOK, 1254002, "page_token is invalid", map[string]any{})
			return
		}
		start = n
	}
	end := min(start+size, len(s.records))
	data := map[string]any{"has_more": end < len(s.records), "total": len(s.records), "items": s.records[start:end]}
	if end < len(s.records) {
		data["page_token"] = "pt" + strconv.Itoa(end)
	}
	reply(w, http.StatusOK, 0, "success", data)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, segs []string) {
	switch {
	case len(segs) == 1 && segs[0] == "" && r.Method == http.MethodPost:
		reply(w, http.StatusOK, 0, "success", map[string]any{"ticket": "6933093124755423251"})
	case len(segs) == 1 && r.Method == http.MethodGet:
		reply(w, http.StatusOK, 0, "success", map[string]any{"result": map[string]any{
			"file_extension": "csv", "type": "bitable", "file_name": "客户", "file_token": "boxcnExportVeilTest",
			"file_size": 2048, "job_error_msg": "success", "job_status": 0,
		}})
	case len(segs) == 3 && segs[0] == "file" && segs[2] == "download" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="customers.csv"`)
		s.csv(w)
	default:
		reply(w, http.StatusNotFound, 404, "404 page not found", nil)
	}
}

// csv writes the records as Bitable's CSV export does: one column per field, text segments
// joined, people by name, locations by full address.
func (s *Server) csv(w io.Writer) {
	var header []string
	for _, rc := range s.records {
		for _, f := range rc.Fields {
			if !slices.Contains(header, f.name) {
				header = append(header, f.name)
			}
		}
	}
	cw := csv.NewWriter(w)
	cw.Write(header)
	for _, rc := range s.records {
		row := make([]string, len(header))
		for _, f := range rc.Fields {
			row[slices.Index(header, f.name)] = flatten(f.value)
		}
		cw.Write(row)
	}
	cw.Flush()
}

func flatten(v json.RawMessage) string {
	var x any
	json.Unmarshal(v, &x)
	switch t := x.(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, e := range t {
			switch m := e.(type) {
			case map[string]any:
				if s, ok := m["text"].(string); ok {
					parts = append(parts, s)
				} else if s, ok := m["name"].(string); ok {
					parts = append(parts, s)
				}
			case string:
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, "")
	case map[string]any:
		if s, ok := t["full_address"].(string); ok {
			return s
		}
		if s, ok := t["link"].(string); ok {
			return s
		}
		if vals, ok := t["value"]; ok {
			b, _ := json.Marshal(vals)
			return flatten(b)
		}
	case nil:
		return ""
	}
	return string(v)
}
