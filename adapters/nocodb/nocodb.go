// Package nocodb adapts the NocoDB REST API: table records through the v2 data API
// ({list, pageInfo}, limit/offset) and the v3 data API ({records: [{id, fields}], next}),
// fields named by column title, and view CSV exports.
package nocodb

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
const System = "nocodb"

// DefaultPageSize is the page size NocoDB uses when a list names none
// (DB_QUERY_LIMIT_DEFAULT).
const DefaultPageSize = 25

// Options are a route's NocoDB settings (its `options:` key).
type Options struct {
	// Tables maps a table id (v2 and v3 paths) or a table name (v1 export paths) to the
	// resource type policy sees. A table not listed is its own type, spelled as in the path.
	Tables map[string]string `yaml:"tables"`
}

// Adapter is the NocoDB adapter.
type Adapter struct {
	tables map[string]string
}

// New validates o and returns the adapter.
func New(o Options) (*Adapter, error) {
	for k, v := range o.Tables {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("nocodb: tables: %q: %q: table and type must not be empty", k, v)
		}
	}
	return &Adapter{tables: o.Tables}, nil
}

// call is what Describe recognised, for Layout.
type call int

const (
	v2List  call = iota + 1 // {list: [...], pageInfo}
	v2Read                  // one flat record
	v3List                  // {records: [{id, fields}], next, prev}
	v3Read                  // {id, fields}
	export                  // a view export: CSV is masked by header, anything else cannot be
	v2Write                 // v2 acknowledgements and counts: masked, not counted
	v3Write                 // v3 acknowledgements
)

// Describe implements adapters.Adapter. Recognised:
//
//	GET    /api/v2/tables/{tableId}/records              list (limit, offset, fields)
//	GET    /api/v2/tables/{tableId}/records/count        list, a count and no records
//	GET    /api/v2/tables/{tableId}/records/{recordId}   read
//	POST   /api/v2/tables/{tableId}/records              create
//	PATCH  /api/v2/tables/{tableId}/records              update
//	DELETE /api/v2/tables/{tableId}/records              delete
//	GET    /api/v3/data/{baseId}/{tableId}/records       list (pageSize, page, fields)
//	GET    /api/v3/data/{baseId}/{tableId}/records/{id}  read
//	POST, PATCH, DELETE on /api/v3/data/{baseId}/{tableId}/records: create, update, delete
//	GET    /api/v1/db/data/{org}/{base}/{table}/views/{view}/export/csv   export
//
// Any other path with an "export" segment is an export (its body is masked as CSV when it is
// CSV and refused otherwise); anything else has resource type "" and is left to policy,
// which the shipped one denies.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: adapters.ActionOther}
	segs := strings.Split(strings.Trim(req.Path, "/"), "/")
	switch {
	case len(segs) >= 5 && segs[0] == "api" && segs[1] == "v2" && segs[2] == "tables" && segs[4] == "records":
		return a.records(req, d, segs[3], segs[5:], v2List, v2Read, v2Write)
	case len(segs) >= 6 && segs[0] == "api" && segs[1] == "v3" && segs[2] == "data" && segs[5] == "records":
		return a.records(req, d, segs[4], segs[6:], v3List, v3Read, v3Write)
	}
	for i, s := range segs {
		if s != "export" || i < 2 || segs[0] != "api" {
			continue
		}
		d.Action, d.Export, d.State, d.Type = adapters.ActionExport, true, export, "export"
		if req.Method != http.MethodGet && req.Method != http.MethodPost {
			d.Action, d.Export, d.State = adapters.ActionOther, false, nil
		}
		// v1: /api/v1/db/data/{org}/{base}/{table}/views/{view}/export/{csv|excel}
		if len(segs) == 11 && segs[1] == "v1" && segs[2] == "db" && segs[3] == "data" && segs[7] == "views" && i == 9 {
			d.Type = a.typeOf(segs[6])
			if segs[10] != "csv" {
				return d, &adapters.Error{Reason: "only CSV exports can be masked; " + segs[10] + " exports are refused"}
			}
		}
		return d, nil
	}
	return d, nil
}

// records describes a request under a table's records collection; rest is the path after
// "records".
func (a *Adapter) records(req *adapters.Request, d adapters.Description, table string, rest []string, list, read, write call) (adapters.Description, error) {
	if table == "" || len(rest) > 1 || (len(rest) == 1 && rest[0] == "") {
		return d, nil
	}
	d.Type = a.typeOf(table)
	if len(rest) == 1 {
		id := rest[0]
		switch {
		case req.Method != http.MethodGet:
			d.Type = "" // writes go to the collection, ids in the body
		case id == "count" && list == v2List:
			d.Action, d.State = adapters.ActionList, write
		default:
			d.Action, d.State, d.ID, d.PageSize = adapters.ActionRead, read, id, 1
		}
		return d, nil
	}
	switch req.Method {
	case http.MethodGet:
		d.Action, d.State = adapters.ActionList, list
		param, alias := "limit", "l"
		if list == v3List {
			param, alias = "pageSize", "limit"
		}
		for k := range req.Query {
			if strings.EqualFold(k, alias) {
				// NocoDB reads it as the page size too: one page size, the one the cap sees.
				return d, &adapters.Error{Reason: "query parameter " + k + " is not accepted; use " + param}
			}
		}
		v, err := req.Param(param)
		if err != nil {
			return d, err
		}
		d.PageSizeParam, d.PageSize = param, DefaultPageSize
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return d, &adapters.Error{Reason: "query parameter " + param + " must be a non-negative integer"}
			}
			d.PageSize = n
		}
		fields, err := req.Param("fields")
		if err != nil {
			return d, err
		}
		if fields != "" {
			for _, f := range strings.Split(fields, ",") {
				if f = strings.TrimSpace(f); f != "" {
					d.Fields = append(d.Fields, f)
				}
			}
		}
	case http.MethodPost:
		d.Action, d.State, d.Fields = adapters.ActionCreate, write, bodyFields(req.Body)
	case http.MethodPatch, http.MethodPut:
		d.Action, d.State, d.Fields = adapters.ActionUpdate, write, bodyFields(req.Body)
	case http.MethodDelete:
		d.Action, d.State = adapters.ActionDelete, write
		if ids := bodyIDs(req.Body); len(ids) == 1 {
			d.ID = ids[0]
		}
	default:
		d.Type = ""
	}
	return d, nil
}

func (a *Adapter) typeOf(table string) string {
	if t, ok := a.tables[table]; ok {
		return t
	}
	return table
}

// rows reads a write body: one record or an array of them, each flat (v2) or {id, fields}
// (v3), or v3's {"records": [...]}.
func rows(body []byte) []map[string]json.RawMessage {
	var many []map[string]json.RawMessage
	if json.Unmarshal(body, &many) == nil {
		return many
	}
	var one map[string]json.RawMessage
	if json.Unmarshal(body, &one) != nil {
		return nil
	}
	if recs, ok := one["records"]; ok && json.Unmarshal(recs, &many) == nil {
		return many
	}
	return []map[string]json.RawMessage{one}
}

func isID(k string) bool { return strings.EqualFold(k, "id") }

// bodyFields lists the columns a create or update body sets, the record ids aside. nil when
// it names none or cannot be read, so the shipped policy refuses roles that may only write
// named public fields.
func bodyFields(body []byte) []string {
	seen := map[string]bool{}
	for _, r := range rows(body) {
		var inner map[string]json.RawMessage
		if f, ok := r["fields"]; ok && json.Unmarshal(f, &inner) == nil {
			for k := range inner {
				seen[k] = true
			}
		}
		for k := range r {
			if !isID(k) && k != "fields" {
				seen[k] = true
			}
		}
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

// bodyIDs lists the record ids a delete body names.
func bodyIDs(body []byte) []string {
	var ids []string
	for _, r := range rows(body) {
		for k, v := range r {
			if !isID(k) {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			ids = append(ids, s)
		}
	}
	return ids
}

// Layout implements adapters.Adapter: v2 lists hold records at "list" (pageInfo is
// metadata, never counted), v3 lists at "records"; reads are the record itself; exports are
// CSV named by their header row (any other body is parsed as JSON, which an xlsx file is
// not: refused). Error bodies and write acknowledgements are masked, not counted.
func (a *Adapter) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON, ID: "Id"}
	c, _ := d.State.(call)
	if c == v3List || c == v3Read || c == v3Write {
		l.ID = "id"
	}
	if c == export && isCSV(h) {
		l.Format = mask.FormatCSV
	}
	if status < 200 || status > 299 {
		return l
	}
	switch c {
	case v2List:
		l.Records, l.HasRecords = "list", true
	case v3List:
		l.Records, l.HasRecords = "records", true
	case v2Read, v3Read:
		l.Records, l.HasRecords = "@this", true
	case export:
		l.HasRecords = l.Format == mask.FormatCSV
	}
	return l
}

func isCSV(h http.Header) bool {
	ct := strings.ToLower(h.Get("Content-Type"))
	return strings.HasPrefix(ct, "text/csv") || strings.HasPrefix(ct, "application/csv")
}
