// Package sheetstest is a fake Google Sheets API v4 (and the spreadsheet CSV export) for
// tests: one spreadsheet whose sheets hold the rows of testdata/values.json ("客户 名单",
// gid 0) and testdata/batchget.json ("Customers", gid 1; "Contacts", empty, gid 2) — shapes
// as Google documents them, values invented — served by values.get and values:batchGet with
// A1 ranges, ragged rows and omitted empty values the way the API answers, with write
// acknowledgements shaped like the API's.
package sheetstest

import (
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

var (
	//go:embed testdata/values.json
	valuesFixture []byte
	//go:embed testdata/batchget.json
	batchFixture []byte
)

// SpreadsheetID is the id of the fake's spreadsheet (any id is answered alike).
const SpreadsheetID = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEF"

// Sheet names of the fake's spreadsheet, in gid order.
var Sheets = []string{"客户 名单", "Customers", "Contacts"}

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
	sheets map[string][]json.RawMessage // sheet name -> rows (each a JSON array)

	mu   sync.Mutex
	seen []Request
}

// New returns a fake serving the fixtures.
func New() *Server {
	var v struct {
		Values []json.RawMessage `json:"values"`
	}
	var b struct {
		ValueRanges []struct {
			Values []json.RawMessage `json:"values"`
		} `json:"valueRanges"`
	}
	if json.Unmarshal(valuesFixture, &v) != nil || json.Unmarshal(batchFixture, &b) != nil || len(b.ValueRanges) < 1 {
		panic("sheetstest: bad fixtures")
	}
	return &Server{sheets: map[string][]json.RawMessage{
		Sheets[0]: v.Values, Sheets[1]: b.ValueRanges[0].Values, Sheets[2]: nil,
	}}
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
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func fail(w http.ResponseWriter, status int, st, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}})
}

// ServeHTTP answers like sheets.googleapis.com (and docs.google.com and the Drive API for
// exports).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	if r.URL.Query().Get("key") == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		fail(w, http.StatusForbidden, "PERMISSION_DENIED", "The request is missing a valid API key.")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) == 4 && segs[0] == "spreadsheets" && segs[1] == "d" && segs[3] == "export":
		if r.URL.Query().Get("format") != "csv" {
			fail(w, http.StatusBadRequest, "INVALID_ARGUMENT", "unsupported format")
			return
		}
		gid, _ := strconv.Atoi(r.URL.Query().Get("gid"))
		s.csv(w, gid)
	case len(segs) == 5 && segs[0] == "drive" && segs[4] == "export":
		s.csv(w, 0)
	case len(segs) >= 3 && segs[0] == "v4" && segs[1] == "spreadsheets":
		s.v4(w, r, segs[2:], body)
	default:
		fail(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
	}
}

func (s *Server) v4(w http.ResponseWriter, r *http.Request, segs []string, body []byte) {
	id, method, _ := strings.Cut(segs[0], ":")
	switch {
	case len(segs) == 1 && method == "" && r.Method == http.MethodGet:
		var sheets []any
		for i, name := range Sheets {
			sheets = append(sheets, map[string]any{"properties": map[string]any{"sheetId": i, "title": name, "index": i}})
		}
		writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "properties": map[string]any{"title": "客户台账"}, "sheets": sheets})
	case len(segs) == 2 && segs[1] == "values:batchGet" && r.Method == http.MethodGet:
		var out []any
		for _, rng := range r.URL.Query()["ranges"] {
			vr, ok := s.valueRange(rng)
			if !ok {
				fail(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Unable to parse range: "+rng)
				return
			}
			out = append(out, vr)
		}
		writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "valueRanges": out})
	case len(segs) == 2 && segs[1] == "values:batchUpdate" && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "totalUpdatedRows": 1, "responses": []any{}})
	case len(segs) == 2 && segs[1] == "values:batchClear" && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "clearedRanges": []string{}})
	case len(segs) == 3 && segs[1] == "values":
		rng, op := segs[2], ""
		if i := strings.LastIndexByte(rng, ':'); i >= 0 && (rng[i+1:] == "append" || rng[i+1:] == "clear") {
			rng, op = rng[:i], rng[i+1:]
		}
		switch {
		case op == "" && r.Method == http.MethodGet:
			if q := r.URL.Query().Get("majorDimension"); q != "" && q != "ROWS" {
				fail(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the fake answers rows only")
				return
			}
			vr, ok := s.valueRange(rng)
			if !ok {
				fail(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Unable to parse range: "+rng)
				return
			}
			writeJSON(w, http.StatusOK, vr)
		case op == "" && r.Method == http.MethodPut:
			var in struct {
				Values [][]any `json:"values"`
			}
			json.Unmarshal(body, &in)
			writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "updatedRange": rng, "updatedRows": len(in.Values)})
		case op == "append" && r.Method == http.MethodPost:
			writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "tableRange": rng, "updates": map[string]any{"spreadsheetId": id, "updatedRange": rng}})
		case op == "clear" && r.Method == http.MethodPost:
			writeJSON(w, http.StatusOK, map[string]any{"spreadsheetId": id, "clearedRange": rng})
		default:
			fail(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
		}
	default:
		fail(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
	}
}

var cellsRe = regexp.MustCompile(`^([A-Z]*)([0-9]*)(?::([A-Z]*)([0-9]*))?$`)

func col(letters string, def int) int {
	if letters == "" {
		return def
	}
	n := 0
	for _, c := range letters {
		n = n*26 + int(c-'A') + 1
	}
	return n - 1
}

func row(digits string, def int) int {
	if digits == "" {
		return def
	}
	n, _ := strconv.Atoi(digits)
	return n
}

// valueRange answers one A1 range: the rows and columns it covers, trailing empty rows and
// cells dropped, "values" omitted when nothing is left.
func (s *Server) valueRange(rng string) (map[string]any, bool) {
	sheet, cells := rng, ""
	if strings.HasPrefix(rng, "'") {
		end := strings.LastIndex(rng, "'")
		if end <= 0 {
			return nil, false
		}
		sheet, cells = strings.ReplaceAll(rng[1:end], "''", "'"), strings.TrimPrefix(rng[end+1:], "!")
	} else if i := strings.LastIndexByte(rng, '!'); i >= 0 {
		sheet, cells = rng[:i], rng[i+1:]
	}
	rows, ok := s.sheets[sheet]
	if !ok {
		if m := cellsRe.FindStringSubmatch(rng); m != nil && rng != "" {
			sheet, cells, rows = Sheets[0], rng, s.sheets[Sheets[0]]
		} else {
			return nil, false
		}
	}
	r0, r1, c0, c1 := 1, 1<<30, 0, 1<<30
	if cells != "" {
		m := cellsRe.FindStringSubmatch(cells)
		if m == nil {
			return nil, false
		}
		c0, r0 = col(m[1], 0), row(m[2], 1)
		c1, r1 = col(m[3], c0), row(m[4], r0)
		if !strings.Contains(cells, ":") {
			c1, r1 = c0, r0
		} else {
			c1, r1 = col(m[3], 1<<30), row(m[4], 1<<30)
			if m[1] == "" {
				c0 = 0
			}
		}
	}
	var out []json.RawMessage
	for i := r0 - 1; i < min(r1, len(rows)); i++ {
		var cellsOf []json.RawMessage
		json.Unmarshal(rows[i], &cellsOf)
		cellsOf = cellsOf[min(c0, len(cellsOf)):min(c1+1, len(cellsOf))]
		b, _ := json.Marshal(cellsOf)
		out = append(out, b)
	}
	for len(out) > 0 && string(out[len(out)-1]) == "[]" {
		out = out[:len(out)-1]
	}
	vr := map[string]any{"range": quote(sheet) + "!" + cells, "majorDimension": "ROWS"}
	if cells == "" {
		vr["range"] = quote(sheet) + fmt.Sprintf("!A1:Z%d", len(rows))
	}
	if len(out) > 0 {
		vr["values"] = out
	}
	return vr, true
}

func quote(sheet string) string {
	if strings.ContainsAny(sheet, " '!") || strings.IndexFunc(sheet, func(r rune) bool { return r > 127 }) >= 0 {
		return "'" + strings.ReplaceAll(sheet, "'", "''") + "'"
	}
	return sheet
}

// csv answers a sheet's CSV export: every row, cells as displayed.
func (s *Server) csv(w http.ResponseWriter, gid int) {
	if gid < 0 || gid >= len(Sheets) {
		fail(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.")
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	cw := csv.NewWriter(w)
	for _, r := range s.sheets[Sheets[gid]] {
		var cells []any
		json.Unmarshal(r, &cells)
		out := make([]string, len(cells))
		for i, c := range cells {
			switch v := c.(type) {
			case string:
				out[i] = v
			case nil:
			default:
				out[i] = fmt.Sprint(v)
			}
		}
		cw.Write(out)
	}
	cw.Flush()
}
