// Package nocodbtest is a fake NocoDB for tests: every table holds the rows of
// testdata/list.json (the v2 list shape, values invented), served by the v2 data API
// ({list, pageInfo}, limit/offset), the v3 data API ({records: [{id, fields}], next}, page
// and pageSize) and the v1 view CSV export, with write acknowledgements shaped like NocoDB's.
package nocodbtest

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

//go:embed testdata/list.json
var fixture []byte

// Fixture returns the v2 list document the rows come from, as stored.
func Fixture() []byte { return slices.Clone(fixture) }

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

// row is a record that keeps its columns' order.
type row []field

// UnmarshalJSON reads a JSON object, keeping its members in order.
func (o *row) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("nocodbtest: row: not an object")
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
func (o row) MarshalJSON() ([]byte, error) {
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

func (o row) id() string {
	for _, f := range o {
		if f.name == "Id" {
			return string(f.value)
		}
	}
	return ""
}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	rows []row

	mu   sync.Mutex
	seen []Request
}

// New returns a fake serving the fixture's rows.
func New() *Server {
	var doc struct {
		List []row `json:"list"`
	}
	if err := json.Unmarshal(fixture, &doc); err != nil {
		panic("nocodbtest: bad fixture: " + err.Error())
	}
	return &Server{rows: doc.List}
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"msg": msg})
}

// ServeHTTP answers like a NocoDB server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	if r.Header.Get("xc-token") == "" && r.Header.Get("xc-auth") == "" {
		fail(w, http.StatusUnauthorized, "Authentication required - Invalid token")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 5 && segs[0] == "api" && segs[1] == "v2" && segs[2] == "tables" && segs[4] == "records":
		s.v2(w, r, segs[5:], body)
	case len(segs) >= 6 && segs[0] == "api" && segs[1] == "v3" && segs[2] == "data" && segs[5] == "records":
		s.v3(w, r, segs[6:], body)
	case len(segs) == 11 && segs[1] == "v1" && segs[9] == "export" && segs[10] == "csv" && r.Method == http.MethodGet:
		s.exportCSV(w)
	default:
		fail(w, http.StatusNotFound, "Not found")
	}
}

func limitOf(v string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return min(max(n, 1), 1000), true // NC_DB_QUERY_LIMIT_MAX
}

func nonNegative(v string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

func (s *Server) find(id string) (row, bool) {
	for _, r := range s.rows {
		if r.id() == id {
			return r, true
		}
	}
	return nil, false
}

func (s *Server) v2(w http.ResponseWriter, r *http.Request, rest []string, body []byte) {
	q := r.URL.Query()
	switch {
	case len(rest) == 1 && rest[0] == "count" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]int{"count": len(s.rows)})
	case len(rest) == 1 && r.Method == http.MethodGet:
		if rw, ok := s.find(rest[0]); ok {
			writeJSON(w, http.StatusOK, rw)
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "RECORD_NOT_FOUND", "message": "Record '" + rest[0] + "' not found"})
	case len(rest) > 0:
		fail(w, http.StatusNotFound, "Not found")
	case r.Method == http.MethodGet:
		limit, ok1 := limitOf(cmpOr(q.Get("limit"), q.Get("l")), 25)
		offset, ok2 := nonNegative(q.Get("offset"), 0)
		if !ok1 || !ok2 {
			fail(w, http.StatusBadRequest, "Invalid limit or offset")
			return
		}
		start := min(offset, len(s.rows))
		end := min(start+limit, len(s.rows))
		list := s.project(s.rows[start:end], q.Get("fields"))
		writeJSON(w, http.StatusOK, map[string]any{
			"list": list,
			"pageInfo": map[string]any{
				"totalRows": len(s.rows), "page": start/limit + 1, "pageSize": limit,
				"isFirstPage": start == 0, "isLastPage": end >= len(s.rows),
			},
		})
	default:
		s.ack(w, body, func(id string) any { return map[string]json.RawMessage{"Id": json.RawMessage(id)} })
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// project keeps the named columns of rows (all when fields is empty).
func (s *Server) project(rows []row, fields string) []row {
	out := make([]row, 0, len(rows))
	want := strings.Split(fields, ",")
	for _, rw := range rows {
		if fields == "" {
			out = append(out, rw)
			continue
		}
		var p row
		for _, f := range rw {
			if slices.Contains(want, f.name) {
				p = append(p, f)
			}
		}
		out = append(out, p)
	}
	return out
}

type v3Record struct {
	ID     json.RawMessage `json:"id"`
	Fields row             `json:"fields"`
}

func toV3(rw row) v3Record {
	rec := v3Record{Fields: row{}}
	for _, f := range rw {
		if f.name == "Id" {
			rec.ID = f.value
			continue
		}
		rec.Fields = append(rec.Fields, f)
	}
	return rec
}

func (s *Server) v3(w http.ResponseWriter, r *http.Request, rest []string, body []byte) {
	q := r.URL.Query()
	switch {
	case len(rest) == 1 && r.Method == http.MethodGet:
		if rw, ok := s.find(rest[0]); ok {
			writeJSON(w, http.StatusOK, toV3(rw))
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "RECORD_NOT_FOUND", "message": "Record '" + rest[0] + "' not found"})
	case len(rest) > 0:
		fail(w, http.StatusNotFound, "Not found")
	case r.Method == http.MethodGet:
		size, ok1 := limitOf(q.Get("pageSize"), 25)
		page, ok2 := nonNegative(q.Get("page"), 1)
		if !ok1 || !ok2 || page < 1 {
			fail(w, http.StatusBadRequest, "Invalid pageSize or page")
			return
		}
		start := min((page-1)*size, len(s.rows))
		end := min(start+size, len(s.rows))
		recs := make([]v3Record, 0, end-start)
		for _, rw := range s.project(s.rows[start:end], q.Get("fields")) {
			recs = append(recs, toV3(rw))
		}
		link := func(p int) any {
			u := url.URL{Scheme: "http", Host: cmpOr(r.Header.Get("X-Forwarded-Host"), r.Host), Path: r.URL.Path}
			v := url.Values{"page": {strconv.Itoa(p)}, "pageSize": {strconv.Itoa(size)}}
			u.RawQuery = v.Encode()
			return u.String()
		}
		out := map[string]any{"records": recs, "next": nil, "prev": nil}
		if end < len(s.rows) {
			out["next"] = link(page + 1)
		}
		if page > 1 {
			out["prev"] = link(page - 1)
		}
		writeJSON(w, http.StatusOK, out)
	default:
		s.ack(w, body, func(id string) any { return map[string]json.RawMessage{"id": json.RawMessage(id)} })
	}
}

// ack acknowledges a write with the ids it touched (new ones numbered after the fixture).
func (s *Server) ack(w http.ResponseWriter, body []byte, one func(id string) any) {
	var many []map[string]json.RawMessage
	single := false
	if json.Unmarshal(body, &many) != nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			fail(w, http.StatusBadRequest, "Invalid request body")
			return
		}
		many, single = []map[string]json.RawMessage{m}, true
	}
	out := make([]any, len(many))
	for i, m := range many {
		id := string(m["Id"])
		if id == "" {
			id = string(m["id"])
		}
		if id == "" {
			id = strconv.Itoa(len(s.rows) + i + 1)
		}
		out[i] = one(id)
	}
	if single {
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// exportCSV answers a view export: a header of column titles, one line per row.
func (s *Server) exportCSV(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	var header []string
	for _, f := range s.rows[0] {
		header = append(header, f.name)
	}
	cw.Write(header)
	for _, rw := range s.rows {
		cells := make([]string, len(rw))
		for i, f := range rw {
			var v any
			json.Unmarshal(f.value, &v)
			switch x := v.(type) {
			case nil:
			case string:
				cells[i] = x
			default:
				cells[i] = string(f.value)
			}
		}
		cw.Write(cells)
	}
	cw.Flush()
}
