// Package salesforcetest is a fake Salesforce REST API for tests and the real-client suite:
// it answers SOQL queries and their nextRecordsUrl pages, sObject reads and writes, sObject
// Collections, composite requests, Bulk API 2.0 query jobs and report runs from a recorded
// fixture of six contacts, shaped the way Salesforce documents them.
package salesforcetest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:embed testdata/salesforce-query.json testdata/salesforce-bulk-results.csv
var fixtures embed.FS

// Version is the API version the fake's URLs name.
const Version = "v60.0"

// OrgID is the organization every session of the fake belongs to.
const OrgID = "00DRO0000000001EAA"

// User is a Salesforce user as /services/oauth2/userinfo describes one.
type User struct{ ID, Email, Name string }

// Sessions returns the session ids (access tokens) the fake's userinfo accepts and their
// users: the fixture's contact owners.
func Sessions() map[string]User {
	return map[string]User{
		"00DRO0000000001!agent": {ID: "005RO000001QwEsYAK", Email: "wang.lei@northwind-example.com", Name: "Wang Lei"},
		"00DRO0000000001!ops":   {ID: "005RO000001QwEtYAK", Email: "aisha.bello@northwind-example.com", Name: "Aisha Bello"},
		"00DRO0000000001!host":  {ID: "005RO000001QwErYAK", Email: "daniel.reyes@northwind-example.com", Name: "Daniel Reyes"},
	}
}

// Write is a write request the fake received.
type Write struct {
	Method, Path string
	Body         []byte
}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	// PageSize is the number of records one query page holds. New sets 4, so the six
	// contacts take two pages.
	PageSize int

	contacts []map[string]any
	order    [][]string // each contact's keys in fixture order
	bulkCSV  []byte

	mu      sync.Mutex
	cursors map[string][]map[string]any // query locator ⇒ the records still to page
	next    int
	writes  []Write
	reads   int
}

// New returns a fake loaded with the fixture.
func New() *Server {
	raw, err := fixtures.ReadFile("testdata/salesforce-query.json")
	if err != nil {
		panic(err)
	}
	var page struct{ Records []json.RawMessage }
	if err := json.Unmarshal(raw, &page); err != nil {
		panic(err)
	}
	s := &Server{PageSize: 4, cursors: map[string][]map[string]any{}}
	for _, r := range page.Records {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			panic(err)
		}
		s.contacts = append(s.contacts, m)
		s.order = append(s.order, keysInOrder(r))
	}
	if s.bulkCSV, err = fixtures.ReadFile("testdata/salesforce-bulk-results.csv"); err != nil {
		panic(err)
	}
	return s
}

// Fixture returns the recorded query page the fake serves its contacts from.
func Fixture() []byte {
	b, err := fixtures.ReadFile("testdata/salesforce-query.json")
	if err != nil {
		panic(err)
	}
	return b
}

// BulkCSV returns the recorded Bulk API 2.0 result set.
func BulkCSV() []byte {
	b, err := fixtures.ReadFile("testdata/salesforce-bulk-results.csv")
	if err != nil {
		panic(err)
	}
	return b
}

// keysInOrder lists the top-level keys of a JSON object in the order written.
func keysInOrder(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token()
	var keys []string
	for dec.More() {
		t, _ := dec.Token()
		keys = append(keys, t.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	return keys
}

// Writes returns the write requests received so far.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// Reads returns the number of read requests that reached the fake.
func (s *Server) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// ContactIDs returns the fixture's contact ids in order.
func (s *Server) ContactIDs() []string {
	var ids []string
	for _, c := range s.contacts {
		ids = append(ids, c["Id"].(string))
	}
	return ids
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/services/oauth2/userinfo" {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		u, ok := Sessions()[tok]
		if !ok {
			sfError(w, 401, "INVALID_SESSION_ID", "Session expired or invalid")
			return
		}
		writeJSON(w, 200, map[string]any{"user_id": u.ID, "organization_id": OrgID, "email": u.Email, "name": u.Name,
			"preferred_username": u.Email})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/services/data/")
	if !ok {
		notFound(w)
		return
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || !regexp.MustCompile(`^v\d+\.\d$`).MatchString(segs[0]) {
		notFound(w)
		return
	}
	segs = segs[1:]
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	if r.Method == http.MethodGet {
		s.reads++
	} else if !(len(segs) == 1 && segs[0] == "composite") && !(r.Method == http.MethodPost && len(segs) == 2 && segs[0] == "jobs") {
		s.writes = append(s.writes, Write{Method: r.Method, Path: r.URL.Path, Body: body})
	}
	s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && len(segs) == 1 && (segs[0] == "query" || segs[0] == "queryAll"):
		s.query(w, r.URL.Query().Get("q"))
	case r.Method == http.MethodGet && len(segs) == 2 && (segs[0] == "query" || segs[0] == "queryAll"):
		s.mu.Lock()
		rest, ok := s.cursors[segs[1]]
		delete(s.cursors, segs[1])
		s.mu.Unlock()
		if !ok {
			sfError(w, 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
			return
		}
		s.page(w, rest, len(s.contacts))
	case len(segs) == 1 && segs[0] == "sobjects":
		writeJSON(w, 200, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": []any{map[string]any{"name": "Contact", "label": "Contact"}}})
	case len(segs) == 3 && segs[0] == "sobjects" && segs[2] == "describe":
		writeJSON(w, 200, describeContact())
	case len(segs) == 2 && segs[0] == "sobjects" && r.Method == http.MethodPost:
		writeJSON(w, 201, map[string]any{"id": "003RO00000NewRecAAA", "success": true, "errors": []any{}})
	case len(segs) == 3 && segs[0] == "sobjects":
		s.sobject(w, r, segs[2])
	case len(segs) >= 2 && segs[0] == "composite" && segs[1] == "sobjects":
		s.collection(w, r, segs[2:], body)
	case len(segs) == 1 && segs[0] == "composite" && r.Method == http.MethodPost:
		s.composite(w, r, body)
	case len(segs) >= 2 && segs[0] == "jobs" && segs[1] == "query":
		s.bulk(w, r, segs[2:])
	case len(segs) == 3 && segs[0] == "analytics" && segs[1] == "reports":
		writeJSON(w, 200, s.report(segs[2], r.URL.Query().Get("includeDetails") == "true"))
	default:
		notFound(w)
	}
}

var (
	fromAccount = regexp.MustCompile(`(?i)\bFROM\s+Account\b`)
	maxQuery    = regexp.MustCompile(`(?i)^SELECT\s+MAX\((\w+)\)(\s+(\w+))?\s+FROM\s+Contact`)
	limitClause = regexp.MustCompile(`(?i)\bLIMIT\s+(\d+)\s*$`)
)

func (s *Server) query(w http.ResponseWriter, q string) {
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(q)), "SELECT ") {
		sfError(w, 400, "MALFORMED_QUERY", "unexpected token")
		return
	}
	if m := maxQuery.FindStringSubmatch(q); m != nil {
		key := m[3]
		if key == "" {
			key = "expr0"
		}
		best := ""
		for _, c := range s.contacts {
			if v, _ := c[m[1]].(string); v > best {
				best = v
			}
		}
		writeJSON(w, 200, map[string]any{"totalSize": 1, "done": true,
			"records": []any{map[string]any{"attributes": map[string]any{"type": "AggregateResult"}, key: best}}})
		return
	}
	recs := s.contacts
	if fromAccount.MatchString(q) {
		recs = s.accounts()
	}
	if m := limitClause.FindStringSubmatch(q); m != nil {
		n, _ := strconv.Atoi(m[1])
		recs = recs[:min(n, len(recs))]
	}
	s.page(w, recs, len(recs))
}

// page answers one query page of recs and keeps the rest under a new locator.
func (s *Server) page(w http.ResponseWriter, recs []map[string]any, total int) {
	n := min(s.PageSize, len(recs))
	out := map[string]any{"totalSize": total, "done": n == len(recs), "records": s.ordered(recs[:n])}
	if n < len(recs) {
		s.mu.Lock()
		s.next++
		loc := fmt.Sprintf("01gRO00000fXqP%04d-%d", s.next, total-len(recs)+n)
		s.cursors[loc] = recs[n:]
		s.mu.Unlock()
		out["nextRecordsUrl"] = "/services/data/" + Version + "/query/" + loc
	}
	writeOrdered(w, 200, out, []string{"totalSize", "done", "nextRecordsUrl", "records"})
}

// ordered renders records with their keys in fixture order (Salesforce keeps the select
// list's order).
func (s *Server) ordered(recs []map[string]any) []json.RawMessage {
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		var keys []string
		for j, c := range s.contacts {
			if c["Id"] == r["Id"] {
				keys = s.order[j]
			}
		}
		out[i] = orderedJSON(r, keys)
	}
	return out
}

// accounts are the contacts' accounts, each with its contacts as a subquery result, the way
// "SELECT Id, Name, (SELECT … FROM Contacts) FROM Account" answers.
func (s *Server) accounts() []map[string]any {
	var out []map[string]any
	byID := map[string]map[string]any{}
	for _, c := range s.contacts {
		acc, _ := c["Account"].(map[string]any)
		id, _ := c["AccountId"].(string)
		if acc == nil || id == "" {
			continue
		}
		a := byID[id]
		if a == nil {
			a = map[string]any{"attributes": acc["attributes"], "Id": id, "Name": acc["Name"], "OwnerId": "005RO000001QwErYAK",
				"Contacts": map[string]any{"totalSize": 0, "done": true, "records": []any{}}}
			byID[id] = a
			out = append(out, a)
		}
		child := map[string]any{}
		for k, v := range c {
			if k != "Account" && k != "Owner" {
				child[k] = v
			}
		}
		cs := a["Contacts"].(map[string]any)
		cs["records"] = append(cs["records"].([]any), child)
		cs["totalSize"] = len(cs["records"].([]any))
	}
	return out
}

func (s *Server) find(id string) map[string]any {
	for _, c := range s.contacts {
		if c["Id"] == id {
			return c
		}
	}
	return nil
}

func (s *Server) sobject(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodGet:
		c := s.find(id)
		if c == nil {
			notFound(w)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(200)
		w.Write(s.ordered([]map[string]any{c})[0])
	case http.MethodPatch, http.MethodDelete:
		if s.find(id) == nil {
			notFound(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		sfError(w, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed")
	}
}

func (s *Server) collection(w http.ResponseWriter, r *http.Request, segs []string, body []byte) {
	retrieve := func(ids []string) {
		out := make([]json.RawMessage, len(ids))
		for i, id := range ids {
			out[i] = json.RawMessage("null")
			if c := s.find(id); c != nil {
				out[i] = s.ordered([]map[string]any{c})[0]
			}
		}
		writeJSON(w, 200, out)
	}
	switch {
	case len(segs) == 1 && r.Method == http.MethodGet:
		retrieve(strings.Split(r.URL.Query().Get("ids"), ","))
	case len(segs) == 1 && r.Method == http.MethodPost:
		var b struct{ IDs []string }
		json.Unmarshal(body, &b)
		retrieve(b.IDs)
	case len(segs) == 0 && r.Method != http.MethodGet:
		var b struct{ Records []map[string]any }
		json.Unmarshal(body, &b)
		n := len(b.Records)
		if r.Method == http.MethodDelete {
			n = len(strings.Split(r.URL.Query().Get("ids"), ","))
		}
		results := make([]any, n)
		for i := range results {
			results[i] = map[string]any{"id": fmt.Sprintf("003RO00000New%03dAA", i), "success": true, "errors": []any{}}
		}
		writeJSON(w, 200, results)
	default:
		notFound(w)
	}
}

func (s *Server) composite(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		CompositeRequest []struct {
			Method      string          `json:"method"`
			URL         string          `json:"url"`
			ReferenceID string          `json:"referenceId"`
			Body        json.RawMessage `json:"body"`
		} `json:"compositeRequest"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.CompositeRequest) == 0 {
		sfError(w, 400, "JSON_PARSER_ERROR", "cannot read the composite request")
		return
	}
	var out []any
	for _, sub := range req.CompositeRequest {
		sr := httptest.NewRequest(sub.Method, sub.URL, bytes.NewReader(sub.Body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, sr)
		var b any = nil
		if rec.Body.Len() > 0 {
			b = json.RawMessage(rec.Body.Bytes())
		}
		out = append(out, map[string]any{"body": b, "httpHeaders": map[string]any{}, "httpStatusCode": rec.Code, "referenceId": sub.ReferenceID})
	}
	writeJSON(w, 200, map[string]any{"compositeResponse": out})
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, segs []string) {
	const jobID = "750RO00000BulkQAAQ"
	job := map[string]any{"id": jobID, "operation": "query", "object": "Contact", "createdById": "005RO000001QwErYAK",
		"state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": 60.0,
		"lineEnding": "LF", "columnDelimiter": "COMMA"}
	switch {
	case len(segs) == 0 && r.Method == http.MethodPost:
		writeJSON(w, 200, job)
	case len(segs) == 1 && segs[0] == jobID && r.Method == http.MethodGet:
		job["state"], job["numberRecordsProcessed"] = "JobComplete", len(s.contacts)
		writeJSON(w, 200, job)
	case len(segs) == 2 && segs[0] == jobID && segs[1] == "results":
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Sforce-Locator", "null")
		w.Header().Set("Sforce-NumberOfRecords", strconv.Itoa(len(s.contacts)))
		w.Write(s.bulkCSV)
	default:
		notFound(w)
	}
}

// report is a tabular report run over the contacts: name, e-mail and phone per detail row.
func (s *Server) report(id string, details bool) map[string]any {
	var rows []any
	for _, c := range s.contacts {
		cell := func(k string) map[string]any {
			v, _ := c[k].(string)
			return map[string]any{"label": v, "value": v}
		}
		rows = append(rows, map[string]any{"dataCells": []any{cell("Name"), cell("Email"), cell("Phone")}})
	}
	if !details {
		rows = []any{}
	}
	cols := []string{"FULL_NAME", "EMAIL", "PHONE1"}
	return map[string]any{
		"attributes": map[string]any{"type": "Report", "reportId": id, "reportName": "Contacts with phones",
			"describeUrl": "/services/data/" + Version + "/analytics/reports/" + id + "/describe"},
		"allData": true,
		"factMap": map[string]any{"T!T": map[string]any{
			"aggregates": []any{map[string]any{"label": strconv.Itoa(len(s.contacts)), "value": len(s.contacts)}},
			"rows":       rows,
		}},
		"groupingsAcross": map[string]any{"groupings": []any{}},
		"groupingsDown":   map[string]any{"groupings": []any{}},
		"hasDetailRows":   details,
		"reportExtendedMetadata": map[string]any{"detailColumnInfo": map[string]any{
			"FULL_NAME": map[string]any{"label": "Full Name", "dataType": "string"},
			"EMAIL":     map[string]any{"label": "Email", "dataType": "email"},
			"PHONE1":    map[string]any{"label": "Phone", "dataType": "phone"},
		}},
		"reportMetadata": map[string]any{"id": id, "name": "Contacts with phones", "reportFormat": "TABULAR", "detailColumns": cols},
	}
}

func describeContact() map[string]any {
	var fields []any
	for _, f := range []string{"Id", "FirstName", "LastName", "Name", "Email", "Phone", "MobilePhone", "Birthdate", "National_ID__c", "MailingAddress", "OwnerId"} {
		fields = append(fields, map[string]any{"name": f, "label": f, "type": "string"})
	}
	return map[string]any{"name": "Contact", "label": "Contact", "keyPrefix": "003", "fields": fields}
}

// orderedJSON renders m with keys in the given order first, then any others sorted.
func orderedJSON(m map[string]any, keys []string) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	seen := map[string]bool{}
	first := true
	emit := func(k string) {
		v, ok := m[k]
		if !ok || seen[k] {
			return
		}
		seen[k] = true
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	for _, k := range keys {
		emit(k)
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		rest = append(rest, k)
	}
	slices.Sort(rest)
	for _, k := range rest {
		emit(k)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeOrdered(w http.ResponseWriter, status int, m map[string]any, keys []string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(orderedJSON(m, keys))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

func sfError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, []any{map[string]any{"message": msg, "errorCode": code}})
}

func notFound(w http.ResponseWriter) {
	sfError(w, 404, "NOT_FOUND", "The requested resource does not exist")
}

// QueryURL is the path of a query for soql, as a client would send it.
func QueryURL(soql string) string {
	return "/services/data/" + Version + "/query?q=" + url.QueryEscape(soql)
}
