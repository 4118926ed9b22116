// Package sheets adapts the Google Sheets API v4 values endpoints and a spreadsheet's CSV
// export: rows whose columns are named by the sheet's header row or by configured letters.
package sheets

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in policy input (input.resource.system).
const System = "sheets"

// DefaultType is the resource type of a spreadsheet the options do not type.
const DefaultType = "spreadsheet"

// What Options.Unnamed may say.
const (
	UnnamedRefuse = "refuse" // refuse the request (400) with a reason
	UnnamedDetect = "detect" // pass it; only the detectors mask its rows
)

// Options are a route's Google Sheets settings (its `options:` key). Settings apply to every
// spreadsheet, unless Spreadsheets overrides them for one, and its Sheets for one sheet.
type Options struct {
	Settings `yaml:",inline"`
	// Unnamed is what Veil does with a read whose columns it cannot name — a range that starts
	// below the header row with no Columns for it, a name that may be a named range, a
	// values:batchGet whose ranges are not all named the same way, batchGetByDataFilter:
	// "refuse" (400, the default) or "detect" (allowed; no field rule can reach its cells,
	// only the detectors mask them, and batchGet counts each range and each row, header rows
	// included).
	Unnamed string `yaml:"unnamed"`
	// Spreadsheets holds settings per spreadsheet id.
	Spreadsheets map[string]Spreadsheet `yaml:"spreadsheets"`
}

// Settings say how a sheet's columns are named.
type Settings struct {
	// Type is the resource type policy sees; "" = the enclosing setting's, and
	// DefaultType at the top.
	Type string `yaml:"type"`
	// HeaderRow is the 1-based row holding the column names; 0 = the enclosing setting's,
	// 1 at the top. A read whose range starts at this row is named by the row it returns first.
	HeaderRow int `yaml:"header_row"`
	// Columns names columns by letter ({A: 客户ID, C: 手机}), for reads that start below the
	// header row and for writes (whose bodies carry no header). nil = the enclosing setting's.
	Columns map[string]string `yaml:"columns"`
}

// Spreadsheet is one spreadsheet's settings; Sheets overrides them for sheets by name.
type Spreadsheet struct {
	Settings `yaml:",inline"`
	// Sheets holds settings per sheet name. A sheet listed here may also be read by its bare
	// name ("Customers"), which is otherwise refused as possibly a named range.
	Sheets map[string]Settings `yaml:"sheets"`
}

// Adapter is the Google Sheets adapter.
type Adapter struct {
	top    resolved
	refuse bool
	books  map[string]book
}

type book struct {
	resolved
	sheets map[string]resolved
}

// resolved is a sheet's settings with every default applied.
type resolved struct {
	typ     string
	header  int
	columns []string // by 0-based column index; "" = unnamed
}

// New validates o and returns the adapter.
func New(o Options) (*Adapter, error) {
	a := &Adapter{books: map[string]book{}}
	switch o.Unnamed {
	case "", UnnamedRefuse:
		a.refuse = true
	case UnnamedDetect:
	default:
		return nil, fmt.Errorf("sheets: unnamed: %q is not refuse or detect", o.Unnamed)
	}
	var err error
	if a.top, err = resolve(resolved{typ: DefaultType, header: 1}, o.Settings, "sheets"); err != nil {
		return nil, err
	}
	for id, s := range o.Spreadsheets {
		b := book{sheets: map[string]resolved{}}
		if b.resolved, err = resolve(a.top, s.Settings, "sheets: spreadsheets."+id); err != nil {
			return nil, err
		}
		for name, st := range s.Sheets {
			if b.sheets[name], err = resolve(b.resolved, st, "sheets: spreadsheets."+id+".sheets."+name); err != nil {
				return nil, err
			}
		}
		a.books[id] = b
	}
	return a, nil
}

func resolve(parent resolved, s Settings, where string) (resolved, error) {
	r := parent
	if s.Type != "" {
		r.typ = s.Type
	}
	if s.HeaderRow < 0 {
		return r, fmt.Errorf("%s: header_row: %d is not a row", where, s.HeaderRow)
	}
	if s.HeaderRow > 0 {
		r.header = s.HeaderRow
	}
	if s.Columns != nil {
		r.columns = nil
		for letter, name := range s.Columns {
			i := columnIndex(letter)
			if i < 0 {
				return r, fmt.Errorf("%s: columns: %q is not a column letter", where, letter)
			}
			if strings.TrimSpace(name) == "" {
				return r, fmt.Errorf("%s: columns: %s: empty name", where, letter)
			}
			for len(r.columns) <= i {
				r.columns = append(r.columns, "")
			}
			r.columns[i] = name
		}
	}
	return r, nil
}

// settings returns the settings of a sheet of a spreadsheet, and whether options list the
// sheet by name.
func (a *Adapter) settings(id, sheet string) (resolved, bool) {
	b, ok := a.books[id]
	if !ok {
		return a.top, false
	}
	if s, ok := b.sheets[sheet]; ok {
		return s, true
	}
	return b.resolved, false
}

// call is what Describe recognised, for Layout.
type call struct {
	kind    kind
	columns []string // positional names of the rows, nil when the header row names them
	header  int      // CSV header row
}

type kind int

const (
	kindValues       kind = iota + 1 // a ValueRange: records at "values"
	kindValuesFirst                  // a ValueRange whose first row is the header row
	kindBatch                        // valueRanges[]: detectors only (see Options.Unnamed)
	kindBatchFirst                   // valueRanges[].values, each named by its first row
	kindBatchColumns                 // valueRanges[].values, all named by the same columns
	kindCSV                          // a CSV export
	kindOther                        // metadata, write acknowledgements: masked, not counted
)

// Describe implements adapters.Adapter. Recognised:
//
//	GET  /v4/spreadsheets/{id}/values/{range}                 list (values.get)
//	GET  /v4/spreadsheets/{id}/values:batchGet?ranges=…       list (values.batchGet)
//	POST /v4/spreadsheets/{id}/values:batchGetByDataFilter    list
//	PUT  /v4/spreadsheets/{id}/values/{range}                 update
//	POST /v4/spreadsheets/{id}/values/{range}:append          create
//	POST /v4/spreadsheets/{id}/values/{range}:clear           delete
//	POST /v4/spreadsheets/{id}/values:batchUpdate[ByDataFilter]  update
//	POST /v4/spreadsheets/{id}/values:batchClear[ByDataFilter]   delete
//	GET  /v4/spreadsheets/{id}                                read (metadata; grid data refused)
//	POST /v4/spreadsheets/{id}:batchUpdate                    update
//	POST /v4/spreadsheets                                     create
//	GET  /spreadsheets/d/{id}/export?format=csv               export
//	GET  /drive/v3/files/{id}/export?mimeType=text/csv        export
//
// Anything else has resource type "" and is left to policy, which the shipped one denies.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: adapters.ActionOther}
	segs := strings.Split(strings.Trim(req.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "v4" && segs[1] == "spreadsheets":
		return a.v4(req, d, segs[2:])
	case len(segs) == 4 && segs[0] == "spreadsheets" && segs[1] == "d" && segs[3] == "export" && req.Method == http.MethodGet:
		format, err := req.Param("format")
		if err != nil {
			return d, err
		}
		if format != "csv" {
			return d, &adapters.Error{Reason: "only CSV exports can be masked; ask for format=csv"}
		}
		return a.export(d, segs[2])
	case len(segs) == 5 && segs[0] == "drive" && segs[1] == "v3" && segs[2] == "files" && segs[4] == "export" && req.Method == http.MethodGet:
		mt, err := req.Param("mimeType")
		if err != nil {
			return d, err
		}
		if mt != "text/csv" {
			return d, &adapters.Error{Reason: "only CSV exports can be masked; ask for mimeType=text/csv"}
		}
		return a.export(d, segs[3])
	}
	return d, nil
}

func (a *Adapter) export(d adapters.Description, id string) (adapters.Description, error) {
	if id == "" {
		return d, nil
	}
	s, _ := a.settings(id, "")
	d.Type, d.Action, d.Export, d.ID = s.typ, adapters.ActionExport, true, id
	d.State = call{kind: kindCSV, header: s.header}
	return d, nil
}

// v4 describes a Sheets API v4 request; segs follow "v4/spreadsheets".
func (a *Adapter) v4(req *adapters.Request, d adapters.Description, segs []string) (adapters.Description, error) {
	m := req.Method
	if len(segs) == 0 || segs[0] == "" {
		if m == http.MethodPost && len(segs) == 0 {
			d.Type, d.Action, d.State = a.top.typ, adapters.ActionCreate, call{kind: kindOther}
		}
		return d, nil
	}
	id, method, _ := strings.Cut(segs[0], ":")
	if id == "" {
		return d, nil
	}
	book, _ := a.settings(id, "")
	switch {
	case len(segs) == 1 && method == "" && m == http.MethodGet:
		// spreadsheets.get: metadata, unless it asks for grid data (cells by position, which
		// no column rule can reach).
		grid, err := req.Param("includeGridData")
		if err != nil {
			return d, err
		}
		fields, err := req.Param("fields")
		if err != nil {
			return d, err
		}
		if grid == "true" || gridFields(fields) {
			return d, &adapters.Error{Reason: "spreadsheet grid data cannot be masked by column; read cells with values.get"}
		}
		d.Type, d.Action, d.ID, d.State = book.typ, adapters.ActionRead, id, call{kind: kindOther}
		return d, nil
	case len(segs) == 1 && method == "batchUpdate" && m == http.MethodPost:
		d.Type, d.Action, d.ID, d.State = book.typ, adapters.ActionUpdate, id, call{kind: kindOther}
		return d, nil
	case len(segs) == 3 && method == "" && segs[1] == "values" && segs[2] != "":
		return a.values(req, d, id, segs[2])
	case len(segs) != 2 || method != "":
		return d, nil
	}
	vals, op, _ := strings.Cut(segs[1], ":")
	switch {
	case vals != "values":
	case op == "batchGet" && m == http.MethodGet, op == "batchGetByDataFilter" && m == http.MethodPost:
		return a.batchGet(req, d, id, book)
	case (op == "batchUpdate" || op == "batchUpdateByDataFilter") && m == http.MethodPost:
		d.Type, d.Action, d.State = book.typ, adapters.ActionUpdate, call{kind: kindOther}
		if op == "batchUpdate" {
			d.Fields = a.batchWriteFields(id, req.Body)
		}
	case (op == "batchClear" || op == "batchClearByDataFilter") && m == http.MethodPost:
		d.Type, d.Action, d.State = book.typ, adapters.ActionDelete, call{kind: kindOther}
	}
	return d, nil
}

// values describes a request on values/{range}[:append|:clear].
func (a *Adapter) values(req *adapters.Request, d adapters.Description, id, seg string) (adapters.Description, error) {
	rng, op := seg, ""
	if i := strings.LastIndexByte(seg, ':'); i >= 0 {
		switch seg[i+1:] {
		case "append", "clear":
			rng, op = seg[:i], seg[i+1:]
		}
	}
	c, ok := parseRange(rng)
	if !ok {
		return d, &adapters.Error{Reason: "range " + strconv.Quote(rng) + " is not A1 notation"}
	}
	s, listed := a.settings(id, c.Sheet)
	if c.Named && listed {
		// A sheet the options list by name: the whole sheet.
		c.Named = false
	}
	d.Type = s.typ
	m := req.Method
	switch {
	case op == "" && m == http.MethodGet:
		return a.read(req, d, c, s)
	case op == "" && m == http.MethodPut:
		d.Action, d.State = adapters.ActionUpdate, call{kind: kindOther}
		d.Fields = a.writeFields(id, rng, req.Body)
	case op == "append" && m == http.MethodPost:
		d.Action, d.State = adapters.ActionCreate, call{kind: kindOther}
		d.Fields = a.writeFields(id, rng, req.Body)
	case op == "clear" && m == http.MethodPost:
		d.Action, d.State = adapters.ActionDelete, call{kind: kindOther}
	default:
		d.Type = ""
	}
	return d, nil
}

// read describes values.get of the range c of a sheet with settings s.
func (a *Adapter) read(req *adapters.Request, d adapters.Description, c cells, s resolved) (adapters.Description, error) {
	d.Action = adapters.ActionList
	if _, err := majorDimension(req); err != nil {
		return d, err
	}
	rows := c.Rows()
	first, cols := naming(c, s)
	switch {
	case first:
		d.State = call{kind: kindValuesFirst}
		if rows > 0 {
			rows-- // the header row
		}
	case cols != nil:
		d.State = call{kind: kindValues, columns: cols}
		d.Fields = nonEmpty(cols, c)
	case a.refuse && c.Named:
		return d, &adapters.Error{Reason: "range " + strconv.Quote(c.Sheet) + " names no cells (it may be a named range): give its cells, e.g. 'Sheet1'!A1:Z, or list the sheet in options"}
	case a.refuse:
		return d, &adapters.Error{Reason: fmt.Sprintf("the range starts at row %d, not at the header row %d, and options name no columns for it: include the header row or configure columns", c.StartRow, s.header)}
	default:
		d.State = call{kind: kindValues}
	}
	if rows > 0 {
		d.PageSize = rows
	}
	return d, nil
}

// naming says how the rows of range c of a sheet with settings s are named: by the first row
// the range returns (it starts at the header row), or by the configured columns from its
// first column on; neither (false, nil) when they cannot be named.
func naming(c cells, s resolved) (first bool, cols []string) {
	switch {
	case c.Named:
		return false, nil
	case c.StartRow == s.header:
		return true, nil
	case covers(s.columns, c):
		return false, slices.Clone(s.columns[c.StartCol:])
	}
	return false, nil
}

// covers reports whether columns name every column of c (up to the last named one when c
// is unbounded to the right).
func covers(columns []string, c cells) bool {
	if c.StartCol >= len(columns) {
		return false
	}
	end := c.EndCol
	if end < 0 || end >= len(columns) {
		if end >= len(columns) {
			return false
		}
		end = len(columns) - 1
	}
	for i := c.StartCol; i <= end; i++ {
		if columns[i] == "" {
			return false
		}
	}
	return true
}

// nonEmpty lists the names of the columns of c, the fields a read asks for.
func nonEmpty(cols []string, c cells) []string {
	n := len(cols)
	if c.EndCol >= 0 {
		n = min(n, c.EndCol-c.StartCol+1)
	}
	return append([]string(nil), cols[:n]...)
}

// writeFields names the columns a values.update or values.append body writes.
func (a *Adapter) writeFields(id, rng string, body []byte) []string {
	var w struct {
		MajorDimension string            `json:"majorDimension"`
		Values         []json.RawMessage `json:"values"`
	}
	if json.Unmarshal(body, &w) != nil {
		return nil
	}
	return a.columnsWritten(id, rng, w.MajorDimension, w.Values)
}

// gridFields reports whether a fields mask of spreadsheets.get can select grid data: "*",
// a "data" (or deeper) selection, or "sheets" without a sub-selection.
func gridFields(mask string) bool {
	if mask == "" {
		return false
	}
	if strings.Contains(mask, "*") {
		return true
	}
	tokens := strings.FieldsFunc(mask, func(r rune) bool { return r == ',' || r == '/' || r == '.' || r == '(' || r == ')' || r == ' ' })
	for _, t := range tokens {
		switch t {
		case "data", "rowData", "values", "formattedValue", "effectiveValue", "userEnteredValue":
			return true
		}
	}
	// "sheets" selected whole (not "sheets.properties", "sheets(properties)")
	for i := 0; i < len(mask); {
		j := strings.Index(mask[i:], "sheets")
		if j < 0 {
			break
		}
		end := i + j + len("sheets")
		before := i + j
		if (before == 0 || !isWord(mask[before-1])) && (end == len(mask) || (mask[end] != '.' && mask[end] != '(' && mask[end] != '/' && !isWord(mask[end]))) {
			return true
		}
		i = end
	}
	return false
}

func isWord(c byte) bool { return isLetter(c) || c == '_' || c >= '0' && c <= '9' }

// batchGet describes values:batchGet (or ByDataFilter). Its ranges are named like values.get
// ranges when they all can be named the same way — all start at their header rows, or all
// are named by the same configured columns — and then every range's rows are records at
// "valueRanges.*.values". Otherwise (ByDataFilter, whose ranges are in data filters, or
// ranges named differently) the request is refused or passed to the detectors, as
// Options.Unnamed says.
func (a *Adapter) batchGet(req *adapters.Request, d adapters.Description, id string, book resolved) (adapters.Description, error) {
	if _, err := majorDimension(req); err != nil {
		return d, err
	}
	var ranges []string
	for k, vs := range req.Query {
		if k == "ranges" {
			ranges = vs
		} else if strings.EqualFold(k, "ranges") {
			return d, &adapters.Error{Reason: "query parameter " + k + " is not accepted; use ranges"}
		}
	}
	types := map[string]bool{}
	rows := 0
	named := len(ranges) > 0
	firsts := 0 // ranges named by their first row
	var cols []string
	var fields []string
	for _, r := range ranges {
		c, ok := parseRange(r)
		if !ok {
			return d, &adapters.Error{Reason: "range " + strconv.Quote(r) + " is not A1 notation"}
		}
		s, listed := a.settings(id, c.Sheet)
		if c.Named && listed {
			c.Named = false
		}
		types[s.typ] = true
		n := c.Rows()
		first, cc := naming(c, s)
		switch {
		case first:
			firsts++
			if n > 0 {
				n--
			}
		case cc != nil && (cols == nil || slices.Equal(cols, cc)):
			cols = cc
			fields = append(fields, nonEmpty(cc, c)...)
		default:
			named = false
		}
		if n > 0 && rows >= 0 {
			rows += n
		} else {
			rows = -1
		}
	}
	if named && firsts > 0 && cols != nil {
		named = false // some ranges by their first row, some by columns
	}
	if !named && a.refuse {
		return d, &adapters.Error{Reason: "values:batchGet ranges must all start at their header rows, or all be named by the same configured columns; read the others with values.get"}
	}
	d.Type, d.Action = book.typ, adapters.ActionList
	switch {
	case !named:
		d.State = call{kind: kindBatch}
	case firsts > 0:
		d.State = call{kind: kindBatchFirst}
	default:
		d.State = call{kind: kindBatchColumns, columns: cols}
		slices.Sort(fields)
		d.Fields = slices.Compact(fields)
	}
	if len(types) == 1 {
		for t := range types {
			d.Type = t
		}
	} else if len(types) > 1 {
		return d, &adapters.Error{Reason: "values:batchGet ranges span resource types; read them separately"}
	}
	if rows > 0 {
		d.PageSize = rows
	}
	return d, nil
}

func majorDimension(req *adapters.Request) (string, error) {
	v, err := req.Param("majorDimension")
	if err != nil {
		return "", err
	}
	switch v {
	case "", "ROWS", "DIMENSION_UNSPECIFIED":
		return "ROWS", nil
	case "COLUMNS":
		return "", &adapters.Error{Reason: "majorDimension=COLUMNS cannot be masked by column; read rows"}
	}
	return "", &adapters.Error{Reason: "query parameter majorDimension must be ROWS or COLUMNS"}
}

// batchWriteFields names the columns a values:batchUpdate body writes: every range's.
func (a *Adapter) batchWriteFields(id string, body []byte) []string {
	var w struct {
		Data []struct {
			Range          string            `json:"range"`
			MajorDimension string            `json:"majorDimension"`
			Values         []json.RawMessage `json:"values"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &w) != nil || len(w.Data) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, v := range w.Data {
		names := a.columnsWritten(id, v.Range, v.MajorDimension, v.Values)
		if names == nil {
			return nil
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	return sorted(seen)
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// columnsWritten names the columns a write of values to rng touches, nil when one of them
// has no name in the options (the write then names no fields, and the shipped policy
// refuses roles that may only write named public fields).
func (a *Adapter) columnsWritten(id, rng, major string, values []json.RawMessage) []string {
	c, ok := parseRange(rng)
	if !ok || c.Named {
		return nil
	}
	s, _ := a.settings(id, c.Sheet)
	width := 0
	if major == "COLUMNS" {
		width = len(values)
	} else {
		for _, row := range values {
			var cells []json.RawMessage
			if json.Unmarshal(row, &cells) != nil {
				return nil
			}
			width = max(width, len(cells))
		}
	}
	if c.EndCol >= 0 {
		// A single-cell range anchors data of any width; a wider range covers its own.
		width = max(width, c.EndCol-c.StartCol+1)
	}
	if width == 0 {
		return nil
	}
	seen := map[string]bool{}
	for i := c.StartCol; i < c.StartCol+width; i++ {
		if i >= len(s.columns) || s.columns[i] == "" {
			return nil
		}
		seen[s.columns[i]] = true
	}
	return sorted(seen)
}

// Layout implements adapters.Adapter. A values.get whose range starts at the header row
// names its columns by the first row it returns (kept as it is, not counted); one that starts
// below has them named by Options columns (every row counted). A CSV export is named by its
// header row. Error bodies and write acknowledgements are masked, not counted.
func (a *Adapter) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	c, _ := d.State.(call)
	l := mask.Layout{Format: mask.FormatJSON}
	if c.kind == kindCSV {
		mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if mt == "text/csv" || mt == "application/csv" {
			l.Format, l.HeaderRow = mask.FormatCSV, c.header
		}
	}
	if status < 200 || status > 299 {
		return l
	}
	switch c.kind {
	case kindValues:
		l.Records, l.HasRecords, l.Columns = "values", true, c.columns
	case kindValuesFirst:
		l.Records, l.HasRecords, l.ColumnsFromFirstRecord = "values", true, true
	case kindBatch:
		l.Records, l.HasRecords, l.Nested = "valueRanges", true, []string{"values"}
	case kindBatchFirst:
		l.Records, l.HasRecords, l.ColumnsFromFirstRecord = "valueRanges.*.values", true, true
	case kindBatchColumns:
		l.Records, l.HasRecords, l.Columns = "valueRanges.*.values", true, c.columns
	case kindCSV:
		l.HasRecords = l.Format == mask.FormatCSV
	}
	return l
}
