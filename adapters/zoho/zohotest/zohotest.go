// Package zohotest is a fake Zoho CRM (API v8, with v2 paths accepted) for tests and the
// real-client suite: it lists, searches, reads and writes Contacts from a recorded fixture,
// pages with page_token, answers COQL, 204 for searches that match nothing, Bulk Read jobs
// with a ZIP result, and the settings and user calls client SDKs make.
package zohotest

import (
	"archive/zip"
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:embed testdata/zoho-contacts.json
var fixtures embed.FS

// User is a CRM user as users?type=CurrentUser describes one.
type User struct{ ID, Name, Email, Role, Profile string }

// Tokens returns the OAuth access tokens the fake accepts for the current user and their
// users: the fixture's contact owners, each with a Zoho role and profile.
func Tokens() map[string]User {
	return map[string]User{
		"1000.agent.zhangwei": {ID: "5725767000000411002", Name: "Zhang Wei", Email: "zhang.wei@zylker-example.com", Role: "Support", Profile: "Customer Service"},
		"1000.ops.ravikumar":  {ID: "5725767000000411003", Name: "Ravi Kumar", Email: "ravi.kumar@zylker-example.com", Role: "Manager", Profile: "Sales Manager"},
		"1000.admin.patricia": {ID: "5725767000000411001", Name: "Patricia Boyle", Email: "patricia.boyle@zylker-example.com", Role: "CEO", Profile: "Administrator"},
	}
}

// Write is a write request the fake received.
type Write struct {
	Method, Path string
	Body         []byte
}

// Server is the fake. Call New.
type Server struct {
	contacts []json.RawMessage // in fixture order, keys as written
	ids      []string
	fields   []map[string]any

	mu     sync.Mutex
	writes []Write
	tokens map[string]int // page_token ⇒ offset
	auth   []string
}

// New returns a fake loaded with the fixture.
func New() *Server {
	var page struct{ Data []json.RawMessage }
	if err := json.Unmarshal(Fixture(), &page); err != nil {
		panic(err)
	}
	s := &Server{contacts: page.Data, tokens: map[string]int{}}
	for _, c := range page.Data {
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(c, &rec); err != nil {
			panic(err)
		}
		s.ids = append(s.ids, rec.ID)
	}
	s.fields = fieldsOf(page.Data[0])
	return s
}

// Fixture returns the recorded Contacts page.
func Fixture() []byte {
	b, err := fixtures.ReadFile("testdata/zoho-contacts.json")
	if err != nil {
		panic(err)
	}
	return b
}

// ContactIDs returns the fixture's contact ids in order.
func (s *Server) ContactIDs() []string { return slices.Clone(s.ids) }

// Writes returns the write requests received so far.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// Authorizations returns the Authorization headers the fake received, in order.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auth)
}

var version = regexp.MustCompile(`^v\d+(\.\d+)?$`)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/coql") && !strings.Contains(r.URL.Path, "/bulk/") {
		s.writes = append(s.writes, Write{Method: r.Method, Path: r.URL.Path, Body: body})
	}
	s.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ") {
		zohoError(w, 401, "INVALID_TOKEN", "invalid oauth token")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) >= 3 && segs[0] == "crm" && segs[1] == "bulk" {
		s.bulk(w, r, segs[3:])
		return
	}
	if len(segs) < 3 || segs[0] != "crm" || !version.MatchString(segs[1]) {
		zohoError(w, 404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
		return
	}
	segs = segs[2:]
	q := r.URL.Query()
	switch {
	case segs[0] == "users" && q.Get("type") == "CurrentUser":
		u, ok := Tokens()[strings.TrimPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ")]
		if !ok {
			zohoError(w, 401, "INVALID_TOKEN", "invalid oauth token")
			return
		}
		writeJSON(w, 200, map[string]any{"users": []any{map[string]any{
			"id": u.ID, "full_name": u.Name, "email": u.Email,
			"role":    map[string]any{"name": u.Role, "id": "5725767000000026005"},
			"profile": map[string]any{"name": u.Profile, "id": "5725767000000026011"},
		}}, "info": map[string]any{"per_page": 200, "count": 1, "page": 1, "more_records": false}})
	case segs[0] == "org":
		writeJSON(w, 200, map[string]any{"org": []any{map[string]any{"id": "5725767000000000001", "company_name": "Zylker",
			"primary_email": "admin@zylker-example.com", "time_zone": "Asia/Kolkata", "currency_symbol": "$", "iso_code": "USD"}}})
	case segs[0] == "settings" && len(segs) == 2 && segs[1] == "modules":
		writeJSON(w, 200, map[string]any{"modules": []any{map[string]any{"api_name": "Contacts", "module_name": "Contacts",
			"plural_label": "Contacts", "singular_label": "Contact", "id": "5725767000000002179", "api_supported": true,
			"generated_type": "default", "modified_time": nil}}})
	case segs[0] == "settings" && len(segs) == 2 && segs[1] == "fields":
		writeJSON(w, 200, map[string]any{"fields": s.fields})
	case segs[0] == "settings" && len(segs) == 2 && segs[1] == "related_lists":
		writeJSON(w, 200, map[string]any{"related_lists": []any{}})
	case segs[0] == "settings" && len(segs) == 2 && segs[1] == "layouts":
		writeJSON(w, 200, map[string]any{"layouts": []any{}})
	case segs[0] == "coql" && r.Method == http.MethodPost:
		s.coql(w, body)
	case segs[0] == "Contacts":
		s.contactsAPI(w, r, segs[1:], body)
	default:
		zohoError(w, 400, "INVALID_MODULE", "the module name given seems to be invalid")
	}
}

func (s *Server) contactsAPI(w http.ResponseWriter, r *http.Request, segs []string, body []byte) {
	q := r.URL.Query()
	switch {
	case len(segs) == 0 && r.Method == http.MethodGet:
		if ids := q.Get("ids"); ids != "" {
			var out []json.RawMessage
			for _, id := range strings.Split(ids, ",") {
				if i := slices.Index(s.ids, id); i >= 0 {
					out = append(out, s.contacts[i])
				}
			}
			s.page(w, out, 0, len(out), false)
			return
		}
		perPage := 200
		if v := q.Get("per_page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 200 {
				zohoError(w, 400, "INVALID_DATA", "invalid data for per_page")
				return
			}
			perPage = n
		}
		offset := 0
		if tok := q.Get("page_token"); tok != "" {
			s.mu.Lock()
			o, ok := s.tokens[tok]
			s.mu.Unlock()
			if !ok {
				zohoError(w, 400, "EXPIRED_VALUE", "the page token is invalid or expired")
				return
			}
			offset = o
		} else if p := q.Get("page"); p != "" {
			n, _ := strconv.Atoi(p)
			offset = (max(n, 1) - 1) * perPage
		}
		s.page(w, s.contacts, offset, perPage, true)
	case len(segs) == 1 && segs[0] == "search" && r.Method == http.MethodGet:
		var out []json.RawMessage
		for _, c := range s.contacts {
			for _, p := range []string{q.Get("email"), q.Get("phone"), q.Get("word")} {
				if p != "" && bytes.Contains(c, []byte(p)) {
					out = append(out, c)
					break
				}
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.page(w, out, 0, len(out), false)
	case len(segs) == 1 && r.Method == http.MethodGet:
		i := slices.Index(s.ids, segs[0])
		if i < 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		fmt.Fprintf(w, `{"data":[%s]}`, s.contacts[i])
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		var b struct{ Data []json.RawMessage }
		if json.Unmarshal(body, &b) != nil || len(b.Data) == 0 {
			zohoError(w, 400, "INVALID_DATA", "invalid data")
			return
		}
		s.ack(w, len(b.Data), r.Method == http.MethodPost)
	case r.Method == http.MethodDelete:
		s.ack(w, 1, false)
	default:
		zohoError(w, 400, "INVALID_URL_PATTERN", "invalid url")
	}
}

// page answers data[offset:offset+n] with v8's info block, next_page_token included.
func (s *Server) page(w http.ResponseWriter, recs []json.RawMessage, offset, n int, tokens bool) {
	offset = min(offset, len(recs))
	end := min(offset+n, len(recs))
	more := end < len(recs)
	var next any
	if more && tokens {
		tok := fmt.Sprintf("c8582e7b45f1d2e9a1b6d3c4f5e6a7b8%08d", end)
		s.mu.Lock()
		s.tokens[tok] = end
		s.mu.Unlock()
		next = tok
	}
	info, _ := json.Marshal(map[string]any{"call": false, "per_page": n, "next_page_token": next, "count": end - offset,
		"sort_by": "id", "page": 1, "sort_order": "desc", "email": false, "more_records": more, "previous_page_token": nil})
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i, r := range recs[offset:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r)
	}
	b.WriteString(`],"info":`)
	b.Write(info)
	b.WriteString("}")
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Write(b.Bytes())
}

func (s *Server) ack(w http.ResponseWriter, n int, created bool) {
	msg := "record updated"
	if created {
		msg = "record added"
	}
	var data []any
	for i := range n {
		data = append(data, map[string]any{"code": "SUCCESS", "status": "success", "message": msg,
			"details": map[string]any{"id": fmt.Sprintf("57257670000019%05d", i), "Modified_Time": "2024-11-05T10:00:00+05:30"}})
	}
	writeJSON(w, 200, map[string]any{"data": data})
}

var coqlFrom = regexp.MustCompile(`(?i)^select\s+(.+?)\s+from\s+Contacts\b(.*?)(\s+limit\s+(\d+)(\s*,\s*(\d+))?)?\s*$`)

// coql answers a select on Contacts with the selected fields of every contact.
func (s *Server) coql(w http.ResponseWriter, body []byte) {
	var b struct {
		SelectQuery string `json:"select_query"`
	}
	json.Unmarshal(body, &b)
	m := coqlFrom.FindStringSubmatch(strings.TrimSpace(b.SelectQuery))
	if m == nil {
		zohoError(w, 400, "SYNTAX_ERROR", "error occured while parsing the query")
		return
	}
	n := len(s.contacts)
	if m[4] != "" {
		n, _ = strconv.Atoi(m[4])
		if m[6] != "" {
			n, _ = strconv.Atoi(m[6])
		}
	}
	var out []json.RawMessage
	for _, c := range s.contacts[:min(n, len(s.contacts))] {
		var rec map[string]json.RawMessage
		json.Unmarshal(c, &rec)
		sel := map[string]json.RawMessage{"id": rec["id"]}
		for _, f := range strings.Split(m[1], ",") {
			f = strings.TrimSpace(f)
			if v, ok := rec[f]; ok {
				sel[f] = v
			}
		}
		b, _ := json.Marshal(sel)
		out = append(out, b)
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.page(w, out, 0, len(out), false)
}

// bulk answers Bulk Read: a created job, a completed job, a ZIP of CSV as the result.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, segs []string) {
	const job = "5725767000002001001"
	switch {
	case len(segs) == 1 && segs[0] == "read" && r.Method == http.MethodPost:
		writeJSON(w, 201, map[string]any{"data": []any{map[string]any{"status": "success", "code": "ADDED_SUCCESSFULLY",
			"message": "Added successfully.", "details": map[string]any{"id": job, "operation": "read", "state": "ADDED",
				"created_by": map[string]any{"id": "5725767000000411001", "name": "Patricia Boyle"}, "created_time": "2024-11-05T10:00:00+05:30"}}}, "info": map[string]any{}})
	case len(segs) == 2 && segs[0] == "read" && segs[1] == job:
		writeJSON(w, 200, map[string]any{"data": []any{map[string]any{"id": job, "operation": "read", "state": "COMPLETED",
			"result": map[string]any{"page": 1, "per_page": 200000, "count": len(s.contacts), "download_url": "/crm/bulk/v8/read/" + job + "/result",
				"more_records": false}}}})
	case len(segs) == 3 && segs[0] == "read" && segs[1] == job && segs[2] == "result":
		var zb bytes.Buffer
		zw := zip.NewWriter(&zb)
		f, _ := zw.Create(job + ".csv")
		f.Write([]byte("id,Last_Name,Email,Mobile\n"))
		for _, c := range s.contacts {
			var rec struct {
				ID, Last_Name, Email, Mobile string
			}
			json.Unmarshal(c, &rec)
			fmt.Fprintf(f, "%s,%s,%s,%s\n", rec.ID, rec.Last_Name, rec.Email, rec.Mobile)
		}
		zw.Close()
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="`+job+`.zip"`)
		w.Write(zb.Bytes())
	default:
		zohoError(w, 404, "INVALID_URL_PATTERN", "invalid url")
	}
}

// fieldsOf describes the fixture's fields the way settings/fields does, so SDKs can type
// the values they read.
func fieldsOf(rec json.RawMessage) []map[string]any {
	var m map[string]json.RawMessage
	json.Unmarshal(rec, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "$") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []map[string]any
	for i, k := range keys {
		dataType, jsonType := "text", "string"
		switch {
		case k == "id":
			dataType, jsonType = "bigint", "string"
		case k == "Owner" || k == "Created_By" || k == "Modified_By":
			dataType, jsonType = "ownerlookup", "jsonobject"
		case k == "Account_Name":
			dataType, jsonType = "lookup", "jsonobject"
		case k == "Tag":
			dataType, jsonType = "text", "jsonarray"
		case k == "Interests":
			dataType, jsonType = "multiselectpicklist", "jsonarray"
		case strings.Contains(k, "Email") && k != "Email_Opt_Out":
			dataType = "email"
		case strings.Contains(k, "Phone") || k == "Mobile":
			dataType = "phone"
		case k == "Date_of_Birth":
			dataType = "date"
		case strings.HasSuffix(k, "_Time"):
			dataType = "datetime"
		case k == "Email_Opt_Out":
			dataType, jsonType = "boolean", "boolean"
		case k == "Annual_Revenue_Share":
			dataType, jsonType = "double", "double"
		}
		out = append(out, map[string]any{"api_name": k, "field_label": strings.ReplaceAll(k, "_", " "), "data_type": dataType,
			"json_type": jsonType, "id": fmt.Sprintf("5725767000000%06d", 2575+i*2), "system_mandatory": k == "Last_Name",
			"read_only": k == "id", "custom_field": k == "National_ID", "visible": true, "length": 255})
	}
	return out
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

func zohoError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "details": map[string]any{}, "message": msg, "status": "error"})
}
