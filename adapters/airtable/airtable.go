// Package airtable adapts the Airtable Web API (v0): records of a base's tables, listed,
// read and written, with fields named by field name or, with returnFieldsByFieldId, by id.
package airtable

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in policy input (input.resource.system).
const System = "airtable"

// MaxPageSize is the largest pageSize Airtable accepts, and the page size of a list that
// names none.
const MaxPageSize = 100

// Options are a route's Airtable settings (its `options:` key).
type Options struct {
	// Tables maps a table, as the request path names it (id "tbl…" or name; or
	// "app…/tbl…" for one base), to the resource type policy sees. A table not listed is
	// its own type, spelled as in the path.
	Tables map[string]string `yaml:"tables"`
	// FieldNames maps field ids ("fld…") to field names, so records fetched with
	// returnFieldsByFieldId=true are masked by the names classification uses. Empty: ids are
	// matched as they are.
	FieldNames map[string]string `yaml:"field_names"`
}

// Adapter is the Airtable adapter.
type Adapter struct {
	tables  map[string]string
	aliases map[string]string
}

// New validates o and returns the adapter.
func New(o Options) (*Adapter, error) {
	for k, v := range o.Tables {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("airtable: tables: %q: %q: table and type must not be empty", k, v)
		}
	}
	for id, name := range o.FieldNames {
		if !strings.HasPrefix(id, "fld") {
			return nil, fmt.Errorf("airtable: field_names: %q is not a field id (fld…)", id)
		}
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("airtable: field_names: %q: empty name", id)
		}
	}
	a := &Adapter{tables: o.Tables}
	if len(o.FieldNames) > 0 {
		a.aliases = make(map[string]string, len(o.FieldNames))
		for id, name := range o.FieldNames {
			a.aliases[id] = name
		}
	}
	return a, nil
}

// call is what Describe recognised, for Layout.
type call int

const (
	callList  call = iota + 1 // records of a table: records[]
	callRead                  // one record: the document
	callWrite                 // create, update, delete: acknowledgements, not counted
)

// Describe implements adapters.Adapter. Recognised, under /v0/{baseId}/{table}:
//
//	GET    /v0/{base}/{table}               list (pageSize, maxRecords, fields[])
//	POST   /v0/{base}/{table}/listRecords   list, parameters in the body
//	GET    /v0/{base}/{table}/{recordId}    read
//	POST   /v0/{base}/{table}               create
//	PATCH  /v0/{base}/{table}[/{recordId}]  update (create with performUpsert)
//	PUT    /v0/{base}/{table}[/{recordId}]  update (create with performUpsert)
//	DELETE /v0/{base}/{table}[/{recordId}]  delete (records[] in the query)
//
// Anything else (metadata, comments, webhooks, sync) has resource type "" and is left to
// policy, which the shipped one denies.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: adapters.ActionOther}
	segs := strings.Split(strings.Trim(req.Path, "/"), "/")
	if len(segs) < 3 || len(segs) > 4 || segs[0] != "v0" || !strings.HasPrefix(segs[1], "app") || segs[2] == "" {
		return d, nil
	}
	base, table := segs[1], segs[2]
	typ := a.typeOf(base, table)
	var rec string
	if len(segs) == 4 {
		rec = segs[3]
	}
	switch {
	case rec == "listRecords" && req.Method == http.MethodPost:
		d.Type, d.Action, d.State = typ, adapters.ActionList, callList
		var body listBody
		if err := decodeBody(req.Body, &body); err != nil {
			return d, err
		}
		d.PageSize = pageSize(body.PageSize, body.MaxRecords)
		d.Fields = a.names(body.Fields)
		return d, nil
	case rec != "" && !strings.HasPrefix(rec, "rec"):
		return d, nil
	}
	d.Type, d.ID = typ, rec
	switch req.Method {
	case http.MethodGet:
		if rec != "" {
			d.Action, d.State, d.PageSize = adapters.ActionRead, callRead, 1
			return d, nil
		}
		return a.list(req, d)
	case http.MethodPost:
		if rec != "" {
			d.Type, d.ID = "", "" // no such endpoint
			return d, nil
		}
		d.Action, d.State = adapters.ActionCreate, callWrite
		d.Fields = a.writeFields(req.Body)
	case http.MethodPatch, http.MethodPut:
		d.Action, d.State = adapters.ActionUpdate, callWrite
		if upsert(req.Body) {
			// An upsert creates the records it does not find: authorise it as a create.
			d.Action = adapters.ActionCreate
		}
		d.Fields = a.writeFields(req.Body)
	case http.MethodDelete:
		d.Action, d.State = adapters.ActionDelete, callWrite
		if rec == "" {
			ids := req.Query["records[]"]
			if len(ids) == 1 {
				d.ID = ids[0]
			}
		}
	}
	return d, nil
}

// list describes GET /v0/{base}/{table}.
func (a *Adapter) list(req *adapters.Request, d adapters.Description) (adapters.Description, error) {
	d.Action, d.State = adapters.ActionList, callList
	// airtable.js's legacy listRecords sends "limit" for the page size: take whichever the
	// request uses, never both.
	size, err := req.Param("pageSize")
	if err != nil {
		return d, err
	}
	legacy, err := req.Param("limit")
	if err != nil {
		return d, err
	}
	d.PageSizeParam = "pageSize"
	if legacy != "" {
		if size != "" {
			return d, &adapters.Error{Reason: "query parameters pageSize and limit both set the page size"}
		}
		size, d.PageSizeParam = legacy, "limit"
	}
	if _, err := req.Param("returnFieldsByFieldId"); err != nil {
		return d, err
	}
	ps, err := number(d.PageSizeParam, size)
	if err != nil {
		return d, err
	}
	maxv, err := req.Param("maxRecords")
	if err != nil {
		return d, err
	}
	mr, err := number("maxRecords", maxv)
	if err != nil {
		return d, err
	}
	d.PageSize = pageSize(ps, mr)
	d.Fields = a.names(req.Query["fields[]"])
	return d, nil
}

func number(name, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &adapters.Error{Reason: "query parameter " + name + " must be a non-negative integer"}
	}
	return n, nil
}

// pageSize is the number of records one list call can return: the page size (Airtable's
// default when none is asked), no more than maxRecords.
func pageSize(size, maxRecords int) int {
	if size == 0 {
		size = MaxPageSize
	}
	if maxRecords > 0 && maxRecords < size {
		return maxRecords
	}
	return size
}

func (a *Adapter) typeOf(base, table string) string {
	if t, ok := a.tables[base+"/"+table]; ok {
		return t
	}
	if t, ok := a.tables[table]; ok {
		return t
	}
	return table
}

// names maps field ids to names, so policy sees the names classification uses.
func (a *Adapter) names(fields []string) []string {
	if len(fields) == 0 {
		return nil
	}
	out := make([]string, len(fields))
	for i, f := range fields {
		if n, ok := a.aliases[f]; ok {
			f = n
		}
		out[i] = f
	}
	return out
}

type listBody struct {
	PageSize   int      `json:"pageSize"`
	MaxRecords int      `json:"maxRecords"`
	Fields     []string `json:"fields"`
}

func decodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &adapters.Error{Reason: "the request body is not the JSON object Airtable expects"}
	}
	return nil
}

// writeFields lists the fields a create or update body sets: {"fields": {...}} or
// {"records": [{"fields": {...}}]}. nil when the body names none or cannot be read, so the
// shipped policy refuses roles that may only write named public fields.
func (a *Adapter) writeFields(body []byte) []string {
	type record struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	var w struct {
		Fields  map[string]json.RawMessage `json:"fields"`
		Records []record                   `json:"records"`
	}
	if json.Unmarshal(body, &w) != nil {
		return nil
	}
	seen := map[string]bool{}
	add := func(m map[string]json.RawMessage) {
		for k := range m {
			if n, ok := a.aliases[k]; ok {
				k = n
			}
			seen[k] = true
		}
	}
	add(w.Fields)
	for _, r := range w.Records {
		add(r.Fields)
	}
	if len(seen) == 0 {
		return nil
	}
	fields := make([]string, 0, len(seen))
	for k := range seen {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	return fields
}

func upsert(body []byte) bool {
	var w struct {
		PerformUpsert json.RawMessage `json:"performUpsert"`
	}
	return json.Unmarshal(body, &w) == nil && len(w.PerformUpsert) > 0 && string(w.PerformUpsert) != "null"
}

// Layout implements adapters.Adapter: a list's records are at "records", a read is the
// record itself; fields sit under "fields", matched by bare name at any depth, field ids
// renamed through Options.FieldNames. Error bodies ({"error": …}) and write
// acknowledgements are masked but not counted.
func (a *Adapter) Layout(d adapters.Description, status int, _ http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON, ID: "id", Aliases: a.aliases}
	if status < 200 || status > 299 {
		return l
	}
	switch d.State {
	case callList:
		l.Records, l.HasRecords = "records", true
	case callRead:
		l.Records, l.HasRecords = "@this", true
	}
	return l
}
