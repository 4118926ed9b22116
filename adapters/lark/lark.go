// Package lark adapts the Feishu/Lark Open Platform's Bitable (多维表格) record API —
// records listed, searched, read and written, fields named by display name — and its Drive
// export tasks.
package lark

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in policy input (input.resource.system).
const System = "lark"

// DefaultPageSize is the page size Bitable uses when a list names none.
const DefaultPageSize = 20

// Resource types of requests that are not about one table's records.
const (
	TypeExport = "export" // Drive export task polls and downloads: the table is not in the path
	TypeAuth   = "auth"   // app and tenant access tokens (the SDKs fetch them on their own)
)

// Options are a route's Lark settings (its `options:` key).
type Options struct {
	// Tables maps a table id ("tbl…", or "<app_token>/<table_id>" for one base) to the
	// resource type policy sees. A table not listed is its own type: its id.
	Tables map[string]string `yaml:"tables"`
}

// Adapter is the Lark Bitable adapter.
type Adapter struct {
	tables map[string]string
}

// New validates o and returns the adapter.
func New(o Options) (*Adapter, error) {
	for k, v := range o.Tables {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("lark: tables: %q: %q: table and type must not be empty", k, v)
		}
	}
	return &Adapter{tables: o.Tables}, nil
}

// call is what Describe recognised, for Layout.
type call int

const (
	callList  call = iota + 1 // {code, msg, data: {items: [...], page_token, has_more, total}}
	callBatch                 // {code, msg, data: {records: [...]}}
	callRead                  // {code, msg, data: {record: {...}}}
	callFile                  // an export file: CSV masked by header, anything else refused
	callOther                 // acknowledgements, task status, tokens: masked, not counted
)

const (
	bitable = "/open-apis/bitable/v1/apps/"
	tasks   = "/open-apis/drive/v1/export_tasks"
)

// Describe implements adapters.Adapter. Recognised, under
// /open-apis/bitable/v1/apps/{app_token}/tables/{table_id}/records:
//
//	GET    …/records                   list (page_size, page_token, field_names)
//	POST   …/records/search            list (page_size in the query; field_names in the body)
//	GET    …/records/{record_id}       read
//	POST   …/records/batch_get         list of the record_ids in the body
//	POST   …/records, …/batch_create   create
//	PUT    …/records/{record_id}, POST …/batch_update   update
//	DELETE …/records/{record_id}, POST …/batch_delete   delete
//
// and POST /open-apis/drive/v1/export_tasks (export; CSV only), GET …/export_tasks/{ticket}
// and GET …/export_tasks/file/{file_token}/download (export), POST
// /open-apis/auth/v3/{app,tenant}_access_token[/internal] (read of type "auth"). Anything
// else has resource type "" and is left to policy, which the shipped one denies.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: adapters.ActionOther}
	p := req.Path
	switch {
	case strings.HasPrefix(p, bitable):
		return a.records(req, d, strings.Split(strings.TrimPrefix(p, bitable), "/"))
	case p == tasks || strings.HasPrefix(p, tasks+"/"):
		return a.export(req, d, strings.Split(strings.Trim(strings.TrimPrefix(p, tasks), "/"), "/"))
	case req.Method == http.MethodPost && isTokenPath(p):
		d.Type, d.Action, d.State = TypeAuth, adapters.ActionRead, callOther
	}
	return d, nil
}

func isTokenPath(p string) bool {
	switch p {
	case "/open-apis/auth/v3/tenant_access_token/internal", "/open-apis/auth/v3/app_access_token/internal",
		"/open-apis/auth/v3/tenant_access_token", "/open-apis/auth/v3/app_access_token":
		return true
	}
	return false
}

// records describes a request under …/apps/{app_token}/…; segs follow "apps/".
func (a *Adapter) records(req *adapters.Request, d adapters.Description, segs []string) (adapters.Description, error) {
	// {app_token} tables {table_id} records [op]
	if len(segs) < 4 || len(segs) > 5 || segs[1] != "tables" || segs[3] != "records" || segs[0] == "" || segs[2] == "" {
		return d, nil
	}
	typ := a.typeOf(segs[0], segs[2])
	op := ""
	if len(segs) == 5 {
		if op = segs[4]; op == "" {
			return d, nil
		}
	}
	m := req.Method
	switch {
	case op == "" && m == http.MethodGet:
		d.Type, d.Action, d.State = typ, adapters.ActionList, callList
		if err := pageSize(req, &d); err != nil {
			return d, err
		}
		names, err := req.Param("field_names")
		if err != nil {
			return d, err
		}
		if names != "" {
			// a JSON array of display names
			if err := json.Unmarshal([]byte(names), &d.Fields); err != nil {
				return d, &adapters.Error{Reason: "query parameter field_names must be a JSON array of field names"}
			}
		}
	case op == "search" && m == http.MethodPost:
		d.Type, d.Action, d.State = typ, adapters.ActionList, callList
		if err := pageSize(req, &d); err != nil {
			return d, err
		}
		var body struct {
			FieldNames []string `json:"field_names"`
		}
		if err := decodeBody(req.Body, &body); err != nil {
			return d, err
		}
		d.Fields = body.FieldNames
	case op == "batch_get" && m == http.MethodPost:
		d.Type, d.Action, d.State = typ, adapters.ActionList, callBatch
		var body struct {
			RecordIDs []string `json:"record_ids"`
		}
		if err := decodeBody(req.Body, &body); err != nil {
			return d, err
		}
		d.PageSize = len(body.RecordIDs)
	case op == "" && m == http.MethodPost, op == "batch_create" && m == http.MethodPost:
		d.Type, d.Action, d.State, d.Fields = typ, adapters.ActionCreate, callOther, writeFields(req.Body)
	case op == "batch_update" && m == http.MethodPost:
		d.Type, d.Action, d.State, d.Fields = typ, adapters.ActionUpdate, callOther, writeFields(req.Body)
	case op == "batch_delete" && m == http.MethodPost:
		d.Type, d.Action, d.State = typ, adapters.ActionDelete, callOther
		var body struct {
			Records []string `json:"records"`
		}
		if decodeBody(req.Body, &body) == nil && len(body.Records) == 1 {
			d.ID = body.Records[0]
		}
	case op == "search" || op == "batch_get" || strings.HasPrefix(op, "batch_"):
		// another method on an operation: not an endpoint
	case m == http.MethodGet:
		d.Type, d.Action, d.State, d.ID, d.PageSize = typ, adapters.ActionRead, callRead, op, 1
	case m == http.MethodPut || m == http.MethodPatch:
		d.Type, d.Action, d.State, d.ID, d.Fields = typ, adapters.ActionUpdate, callOther, op, writeFields(req.Body)
	case m == http.MethodDelete:
		d.Type, d.Action, d.State, d.ID = typ, adapters.ActionDelete, callOther, op
	}
	return d, nil
}

// pageSize reads page_size, Bitable's page size on list and search (in the query for both).
func pageSize(req *adapters.Request, d *adapters.Description) error {
	v, err := req.Param("page_size")
	if err != nil {
		return err
	}
	d.PageSizeParam, d.PageSize = "page_size", DefaultPageSize
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &adapters.Error{Reason: "query parameter page_size must be a non-negative integer"}
		}
		d.PageSize = n
	}
	return nil
}

// export describes a Drive export task request; segs follow "export_tasks".
func (a *Adapter) export(req *adapters.Request, d adapters.Description, segs []string) (adapters.Description, error) {
	switch {
	case len(segs) == 1 && segs[0] == "" && req.Method == http.MethodPost:
		var body struct {
			FileExtension string `json:"file_extension"`
			Token         string `json:"token"`
			Type          string `json:"type"`
			SubID         string `json:"sub_id"`
		}
		if err := decodeBody(req.Body, &body); err != nil {
			return d, err
		}
		if body.FileExtension != "csv" {
			return d, &adapters.Error{Reason: "only CSV exports can be masked; ask for file_extension csv"}
		}
		d.Type, d.Action, d.Export, d.State = TypeExport, adapters.ActionExport, true, callOther
		if body.Type == "bitable" && body.SubID != "" {
			d.Type = a.typeOf(body.Token, body.SubID)
		}
	case len(segs) == 1 && segs[0] != "" && req.Method == http.MethodGet:
		d.Type, d.Action, d.Export, d.State, d.ID = TypeExport, adapters.ActionExport, true, callOther, segs[0]
	case len(segs) == 3 && segs[0] == "file" && segs[1] != "" && segs[2] == "download" && req.Method == http.MethodGet:
		d.Type, d.Action, d.Export, d.State, d.ID = TypeExport, adapters.ActionExport, true, callFile, segs[1]
	}
	return d, nil
}

func (a *Adapter) typeOf(app, table string) string {
	if t, ok := a.tables[app+"/"+table]; ok {
		return t
	}
	if t, ok := a.tables[table]; ok {
		return t
	}
	return table
}

func decodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &adapters.Error{Reason: "the request body is not the JSON object Lark expects"}
	}
	return nil
}

// writeFields lists the display names a write body sets: {"fields": {...}} or
// {"records": [{"fields": {...}}]}. nil when it names none or cannot be read, so the
// shipped policy refuses roles that may only write named public fields.
func writeFields(body []byte) []string {
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
	for k := range w.Fields {
		seen[k] = true
	}
	for _, r := range w.Records {
		for k := range r.Fields {
			seen[k] = true
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

// Layout implements adapters.Adapter: lists hold records at "data.items", batch_get at
// "data.records", a read is counted as one record (the document; its id at
// "data.record.record_id"). Fields sit under "fields" by display name and are matched by bare
// name at any depth. A business error comes as HTTP 200 with "code" != 0: the status marker
// makes it count nothing, on reads as on lists. An export file is masked as CSV when it is CSV (by Content-Type, or a .csv
// attachment name) and refused otherwise.
func (a *Adapter) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON, ID: "record_id"}
	c, _ := d.State.(call)
	if c == callFile && isCSV(h) {
		l.Format = mask.FormatCSV
	}
	if status < 200 || status > 299 {
		return l
	}
	if l.Format == mask.FormatJSON {
		l.Structural = []string{"type"} // text segments {"text", "type": "text"}, formula wrappers {"type": 1, …}
		l.Status = mask.Status{Path: "code", OK: "0"}
	}
	switch c {
	case callList:
		l.Records, l.HasRecords = "data.items", true
	case callBatch:
		l.Records, l.HasRecords = "data.records", true
	case callRead:
		l.Records, l.HasRecords, l.ID = "@this", true, "data.record.record_id"
	case callFile:
		l.HasRecords = l.Format == mask.FormatCSV
	}
	return l
}

func isCSV(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == "text/csv" || mt == "application/csv" {
		return true
	}
	if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		return strings.EqualFold(path.Ext(params["filename"]), ".csv")
	}
	return false
}
