// Package airtabletest is a fake Airtable Web API for tests: every table of every base holds
// the records of testdata/records.json (the shape Airtable documents, values invented), listed
// with pageSize, offset, maxRecords, fields[] and returnFieldsByFieldId the way Airtable
// answers them, read by id and written with acknowledgements shaped like Airtable's.
package airtabletest

import (
	"bytes"
	_ "embed"
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

// Fixture returns the records document the fake serves, as stored.
func Fixture() []byte { return slices.Clone(fixture) }

// FieldIDs maps every field name of the fixture to the field id the fake uses for it with
// returnFieldsByFieldId=true.
var FieldIDs = map[string]string{
	"Name": "fldName0000000001", "Email": "fldEmail000000001", "Phone": "fldPhone000000001",
	"National ID": "fldNatId000000001", "Address": "fldAddr0000000001", "Date of Birth": "fldDob00000000001",
	"Tier": "fldTier0000000001", "Tags": "fldTags0000000001", "Lifetime Value": "fldLtv00000000001",
	"Opted In": "fldOptIn000000001", "Account Manager": "fldMgr00000000001", "Company": "fldCompany0000001",
	"ID Scan": "fldIdScan00000001",
}

// Request is what the fake saw of one request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	records []record

	mu   sync.Mutex
	seen []Request
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
		return fmt.Errorf("airtabletest: fields: not an object")
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
	ID          string `json:"id"`
	CreatedTime string `json:"createdTime"`
	Fields      object `json:"fields"`
}

// New returns a fake serving the fixture.
func New() *Server {
	var doc struct {
		Records []record `json:"records"`
	}
	if err := json.Unmarshal(fixture, &doc); err != nil {
		panic("airtabletest: bad fixture: " + err.Error())
	}
	return &Server{records: doc.Records}
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

func fail(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"type": typ, "message": msg}})
}

// ServeHTTP answers like api.airtable.com under /v0/{baseId}/{table}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		fail(w, http.StatusUnauthorized, "AUTHENTICATION_REQUIRED", "Authentication required")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 3 || segs[0] != "v0" || !strings.HasPrefix(segs[1], "app") {
		fail(w, http.StatusNotFound, "NOT_FOUND", "Could not find what you are looking for")
		return
	}
	rec := ""
	if len(segs) == 4 {
		rec = segs[3]
	}
	switch {
	case len(segs) > 4:
		fail(w, http.StatusNotFound, "NOT_FOUND", "Could not find what you are looking for")
	case rec == "listRecords" && r.Method == http.MethodPost:
		var p struct {
			PageSize              int      `json:"pageSize"`
			MaxRecords            int      `json:"maxRecords"`
			Offset                string   `json:"offset"`
			Fields                []string `json:"fields"`
			ReturnFieldsByFieldID bool     `json:"returnFieldsByFieldId"`
		}
		if len(body) > 0 && json.Unmarshal(body, &p) != nil {
			fail(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_BODY", "Could not parse request body")
			return
		}
		s.list(w, p.PageSize, p.MaxRecords, p.Offset, p.Fields, p.ReturnFieldsByFieldID)
	case r.Method == http.MethodGet && rec == "":
		q := r.URL.Query()
		size, err1 := atoi(q.Get("pageSize"))
		maxRecords, err2 := atoi(q.Get("maxRecords"))
		if err1 != nil || err2 != nil {
			fail(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed")
			return
		}
		byID := q.Get("returnFieldsByFieldId") == "true" || q.Get("returnFieldsByFieldId") == "1"
		s.list(w, size, maxRecords, q.Get("offset"), q["fields[]"], byID)
	case r.Method == http.MethodGet:
		for _, rc := range s.records {
			if rc.ID == rec {
				writeJSON(w, http.StatusOK, rc)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "NOT_FOUND"})
	case r.Method == http.MethodPost && rec == "":
		s.write(w, body, "recNew0000000000")
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && rec == "":
		s.write(w, body, "")
	case r.Method == http.MethodPatch || r.Method == http.MethodPut:
		var one struct {
			Fields object `json:"fields"`
		}
		if json.Unmarshal(body, &one) != nil {
			fail(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_BODY", "Could not parse request body")
			return
		}
		writeJSON(w, http.StatusOK, record{ID: rec, CreatedTime: "2024-10-02T08:15:30.000Z", Fields: one.Fields})
	case r.Method == http.MethodDelete && rec != "":
		writeJSON(w, http.StatusOK, map[string]any{"id": rec, "deleted": true})
	case r.Method == http.MethodDelete:
		var out []map[string]any
		for _, id := range r.URL.Query()["records[]"] {
			out = append(out, map[string]any{"id": id, "deleted": true})
		}
		writeJSON(w, http.StatusOK, map[string]any{"records": out})
	default:
		fail(w, http.StatusNotFound, "NOT_FOUND", "Could not find what you are looking for")
	}
}

func atoi(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

// list answers one page: offset is "itr" plus the index of the first record of the page.
func (s *Server) list(w http.ResponseWriter, size, maxRecords int, offset string, fields []string, byID bool) {
	if size == 0 {
		size = 100
	}
	if size < 0 || size > 100 {
		fail(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed. Check your request data.")
		return
	}
	start := 0
	if offset != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(offset, "itrVeilTest/"))
		if err != nil || !strings.HasPrefix(offset, "itrVeilTest/") || n > len(s.records) {
			fail(w, http.StatusUnprocessableEntity, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "Iterator not available")
			return
		}
		start = n
	}
	end := min(start+size, len(s.records))
	if maxRecords > 0 {
		end = min(end, maxRecords)
	}
	page := make([]record, 0, max(end-start, 0))
	for _, rc := range s.records[start:max(end, start)] {
		var f object
		for _, fl := range rc.Fields {
			if len(fields) > 0 && !slices.Contains(fields, fl.name) && !slices.Contains(fields, FieldIDs[fl.name]) {
				continue
			}
			if byID {
				fl.name = FieldIDs[fl.name]
			}
			f = append(f, fl)
		}
		if f == nil {
			f = object{}
		}
		rc.Fields = f
		page = append(page, rc)
	}
	out := struct {
		Records []record `json:"records"`
		Offset  string   `json:"offset,omitempty"`
	}{Records: page}
	if end < len(s.records) && (maxRecords == 0 || end < maxRecords) {
		out.Offset = "itrVeilTest/" + strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, out)
}

// write acknowledges a create or update: {"fields": …} comes back as one record,
// {"records": [{"fields": …}]} as records.
func (s *Server) write(w http.ResponseWriter, body []byte, newID string) {
	var in struct {
		Fields  object `json:"fields"`
		Records []struct {
			ID     string `json:"id"`
			Fields object `json:"fields"`
		} `json:"records"`
	}
	if json.Unmarshal(body, &in) != nil {
		fail(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_BODY", "Could not parse request body")
		return
	}
	if in.Records == nil {
		writeJSON(w, http.StatusOK, record{ID: newID, CreatedTime: "2024-11-01T00:00:00.000Z", Fields: in.Fields})
		return
	}
	out := make([]record, len(in.Records))
	for i, rc := range in.Records {
		id := rc.ID
		if id == "" {
			id = fmt.Sprintf("recNew%010d", i)
		}
		out[i] = record{ID: id, CreatedTime: "2024-11-01T00:00:00.000Z", Fields: rc.Fields}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": out})
}
