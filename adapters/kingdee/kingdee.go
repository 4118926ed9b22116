// Package kingdee adapts Kingdee's two ERP APIs: 金蝶云星空 (K/3 Cloud WebAPI, whose
// ExecuteBillQuery answers positional rows named by the request's FieldKeys) and 金蝶云星辰
// (the JDY v2 open API, snake_case records under data.rows).
package kingdee

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in the registry and in input.resource.system.
const System = "kingdee"

// Resource types the adapter reports besides form ids (云星空) and resource names (云星辰).
const (
	// TypeSession is a login or logout: no business data.
	TypeSession = "session"
	// TypeMetadata is form metadata (QueryBusinessInfo).
	TypeMetadata = "metadata"
)

// DefaultExportAbove is Options.ExportAbove's default: ExecuteBillQuery's documented
// maximum Limit.
const DefaultExportAbove = 2000

// defaultPageSize is what a 云星辰 list returns without page_size.
const defaultPageSize = 10

// Options is the adapter's configuration (the route's `options:` key).
type Options struct {
	// ExportAbove flags a 云星空 ExecuteBillQuery or BillQuery as a bulk export when its
	// Limit (or, without a Limit, its TopRowCount) is above this many rows, or when it sets
	// neither (no bound: the server's maximum, up to 10 000 rows from the 23.11 patch).
	// Zero: 2000.
	ExportAbove int `yaml:"export_above"`
}

// Adapter is the Kingdee adapter. It is stateless and safe for concurrent use.
type Adapter struct {
	exportAbove int
}

// New validates o and returns the adapter.
func New(o Options) (*Adapter, error) {
	if o.ExportAbove < 0 {
		return nil, fmt.Errorf("kingdee: export_above: must not be negative")
	}
	if o.ExportAbove == 0 {
		o.ExportAbove = DefaultExportAbove
	}
	return &Adapter{exportAbove: o.ExportAbove}, nil
}

// shape is where a response's records sit.
type shape uint8

const (
	shapeNone    shape = iota
	shapeRows          // 云星空 ExecuteBillQuery: a bare array of positional rows
	shapeObjects       // 云星空 BillQuery: a bare array of objects keyed by field key
	shapeView          // 云星空 View: {"Result": {"ResponseStatus", "Result": {model}}}
	shapeList          // 云星辰 list: {"errcode", "data": {"rows": [...]}}
	shapeDetail        // 云星辰 detail: {"errcode", "data": {record}}
)

type state struct {
	shape   shape
	columns []string
	id      string
}

// Describe implements adapters.Adapter.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: methodAction(req.Method)}
	if rest, ok := strings.CutPrefix(req.Path, "/jdy/"); ok {
		return describeXingchen(d, req, rest)
	}
	last := req.Path[strings.LastIndexByte(req.Path, '/')+1:]
	// IIS serves these paths case-insensitively, so they are matched that way.
	name, ok := strings.CutSuffix(strings.ToLower(last), ".common.kdsvc")
	if !ok {
		return d, nil
	}
	rest, ok := strings.CutPrefix(name, "kingdee.bos.webapi.servicesstub.")
	if !ok {
		return d, nil
	}
	service, method, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(method, ".") {
		return d, nil
	}
	if req.Method != http.MethodPost {
		return d, nil
	}
	return a.describeK3(d, req, service, method)
}

func methodAction(method string) string {
	switch method {
	case http.MethodGet:
		return adapters.ActionRead
	case http.MethodPost:
		return adapters.ActionCreate
	case http.MethodPut, http.MethodPatch:
		return adapters.ActionUpdate
	case http.MethodDelete:
		return adapters.ActionDelete
	}
	return adapters.ActionOther
}

// describeK3 describes one 云星空 WebAPI call.
func (a *Adapter) describeK3(d adapters.Description, req *adapters.Request, service, method string) (adapters.Description, error) {
	if service == "authservice" {
		d.Type, d.Action = TypeSession, adapters.ActionRead
		return d, nil
	}
	if service != "dynamicformservice" {
		return d, nil
	}
	formID, packet, err := readPayload(req.Body, req.Header.Get("Content-Type"))
	if err != nil {
		return d, err
	}
	if f, err := str(packet, "FormId"); err != nil {
		return d, err
	} else if f != "" {
		if formID != "" && !strings.EqualFold(formID, f) {
			return d, &adapters.Error{Reason: "the form id is given twice, differently"}
		}
		formID = f
	}
	st := &state{}
	d.Type, d.State = formType(formID), st
	switch method {
	case "executebillquery", "billquery":
		if formID == "" {
			return d, &adapters.Error{Reason: "FormId is required"}
		}
		keys, err := str(packet, "FieldKeys")
		if err != nil {
			return d, err
		}
		for _, k := range strings.Split(keys, ",") {
			st.columns = append(st.columns, strings.TrimSpace(k))
		}
		if strings.TrimSpace(keys) == "" || slices.Contains(st.columns, "") {
			return d, &adapters.Error{Reason: "FieldKeys must name the columns of the query"}
		}
		st.shape, st.id = shapeRows, idColumn(d.Type, st.columns)
		if method == "billquery" {
			st.shape = shapeObjects
		}
		d.Action, d.Fields = adapters.ActionList, slices.Clone(st.columns)
		limit, err := number(packet, "Limit")
		if err != nil {
			return d, err
		}
		top, err := number(packet, "TopRowCount")
		if err != nil {
			return d, err
		}
		switch {
		case limit > 0:
			d.PageSize = limit
		case top > 0:
			d.PageSize = top
		}
		if d.PageSize == 0 || d.PageSize > a.exportAbove {
			d.Action, d.Export = adapters.ActionExport, true
		}
	case "view":
		d.Action, d.PageSize, st.shape, st.id = adapters.ActionRead, 1, shapeView, "Result.Result.Id"
		for _, k := range []string{"Id", "Number"} {
			if d.ID, err = scalar(packet, k); err != nil || (d.ID != "" && d.ID != "0") {
				break
			}
			d.ID = ""
		}
	case "save", "batchsave", "draft":
		d.Fields, err = savedFields(packet)
		d.Action = adapters.ActionCreate
		if upd, _, _ := get(packet, "NeedUpDateFields"); !isNull(upd) && string(bytes.TrimSpace(upd)) != "[]" {
			d.Action = adapters.ActionUpdate
		}
	case "delete":
		d.Action = adapters.ActionDelete
		if d.ID, err = scalar(packet, "Ids"); err == nil && strings.Contains(d.ID, ",") {
			d.ID = ""
		}
	case "querybusinessinfo", "getbusinessinfo":
		d.Type, d.Action = TypeMetadata, adapters.ActionRead
	default:
		// Workflow operations (Submit, Audit, UnAudit, Push, ExcuteOperation, …) and report
		// queries: not a read or a write policy can describe.
		d.Action, d.State = adapters.ActionOther, nil
	}
	if d.Type == "" {
		d.State = nil
	}
	return d, err
}

// readPayload finds the form id and the data packet of a 云星空 call, whichever way the
// client sent them: {"data": packet}, {"formid": id, "data": packet}, {"parameters":
// [packet]} or {"parameters": [id, packet]}, a packet given as an object or as JSON text,
// or the form-encoded data=…&formid=…. The Content-Type decides which, as it does for the
// server: a form-encoded body is read as a form even when it looks like JSON.
func readPayload(body []byte, contentType string) (string, []member, error) {
	bad := &adapters.Error{Reason: "the request's data packet could not be read"}
	trimmed := bytes.TrimSpace(body)
	mt, _, _ := mime.ParseMediaType(contentType)
	form := mt == "application/x-www-form-urlencoded" || (contentType == "" && !bytes.HasPrefix(trimmed, []byte("{")))
	var formID string
	var packet json.RawMessage
	if !form {
		ms, err := members(trimmed)
		if err != nil {
			return "", nil, bad
		}
		if formID, err = str(ms, "formid"); err != nil {
			return "", nil, err
		}
		data, hasData, err := get(ms, "data")
		if err != nil {
			return "", nil, &adapters.Error{Reason: err.Error()}
		}
		params, hasParams, err := get(ms, "parameters")
		if err != nil {
			return "", nil, &adapters.Error{Reason: err.Error()}
		}
		switch {
		case hasData && hasParams:
			return "", nil, &adapters.Error{Reason: "data and parameters are both given"}
		case hasData:
			packet = data
		case hasParams:
			var list []json.RawMessage
			if json.Unmarshal(unquote(params), &list) != nil || len(list) == 0 || len(list) > 2 {
				return "", nil, bad
			}
			packet = list[len(list)-1]
			if len(list) == 2 {
				if json.Unmarshal(list[0], &formID) != nil {
					return "", nil, bad
				}
			}
		default:
			return "", nil, bad
		}
	} else {
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return "", nil, bad
		}
		one := func(name string) (string, error) {
			var v []string
			for k, vs := range vals {
				if strings.EqualFold(k, name) {
					v = append(v, vs...)
				}
			}
			if len(v) > 1 {
				return "", &adapters.Error{Reason: name + " given more than once"}
			}
			if len(v) == 0 {
				return "", nil
			}
			return v[0], nil
		}
		data, err := one("data")
		if err != nil {
			return "", nil, err
		}
		if formID, err = one("formid"); err != nil {
			return "", nil, err
		}
		if data == "" {
			return "", nil, bad
		}
		packet = json.RawMessage(data)
	}
	ms, err := members(unquote(packet))
	if err != nil {
		return "", nil, bad
	}
	return formID, ms, nil
}

// unquote returns the JSON text inside a JSON string, or v itself when it is not a string.
func unquote(v json.RawMessage) json.RawMessage {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '"' {
		return v
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return v
	}
	return json.RawMessage(s)
}

// str reads an optional string member.
func str(ms []member, name string) (string, error) {
	v, ok, err := get(ms, name)
	if err != nil {
		return "", &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", &adapters.Error{Reason: name + " must be a string"}
	}
	return s, nil
}

// number reads an optional non-negative integer member, written as a number or a string.
func number(ms []member, name string) (int, error) {
	v, err := scalar(ms, name)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &adapters.Error{Reason: name + " must be a non-negative integer"}
	}
	return n, nil
}

// scalar reads an optional string or number member as text.
func scalar(ms []member, name string) (string, error) {
	v, ok, err := get(ms, name)
	if err != nil {
		return "", &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return n.String(), nil
	}
	return "", &adapters.Error{Reason: name + " must be a string or a number"}
}

// savedFields lists the fields a Save writes: NeedUpDateFields, and the keys of the Model
// (or of every model of a BatchSave), entry rows' keys as "Entity.Field".
func savedFields(packet []member) ([]string, error) {
	set := map[string]bool{}
	if v, ok, err := get(packet, "NeedUpDateFields"); err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	} else if ok && !isNull(v) {
		var names []string
		if json.Unmarshal(v, &names) != nil {
			return nil, &adapters.Error{Reason: "NeedUpDateFields must be an array of field keys"}
		}
		for _, n := range names {
			set[n] = true
		}
	}
	model, ok, err := get(packet, "Model")
	if err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	}
	if !ok {
		return nil, &adapters.Error{Reason: "a save needs a Model"}
	}
	var models []json.RawMessage
	if json.Unmarshal(model, &models) != nil {
		models = []json.RawMessage{model}
	}
	for _, m := range models {
		ms, err := members(m)
		if err != nil {
			return nil, &adapters.Error{Reason: "a Model must be a JSON object"}
		}
		for _, f := range ms {
			set[f.Name] = true
			var rows []json.RawMessage
			if json.Unmarshal(f.Value, &rows) != nil {
				continue
			}
			for _, r := range rows {
				if sub, err := members(r); err == nil {
					for _, s := range sub {
						set[f.Name+"."+s.Name] = true
					}
				}
			}
		}
	}
	fields := make([]string, 0, len(set))
	for f := range set {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields, nil
}

// knownForms spells common 云星空 form ids the way policy data does (form ids are not case
// sensitive).
var knownForms = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{
		"BD_Customer", "BD_Supplier", "BD_Material", "BD_CommonContact", "BD_Empinfo", "BD_Department",
		"BD_Stock", "BD_Currency", "SAL_SaleOrder", "SAL_OUTSTOCK", "SAL_RETURNSTOCK", "PUR_PurchaseOrder",
		"AR_receivable", "AP_Payable", "STK_Inventory", "ORG_Organizations", "SEC_User",
	} {
		m[strings.ToLower(f)] = f
	}
	return m
}()

func formType(formID string) string {
	if f, ok := knownForms[strings.ToLower(formID)]; ok {
		return f
	}
	return formID
}

// primaryKeys are the id field keys of common forms.
var primaryKeys = map[string]string{
	"BD_Customer": "FCUSTID", "BD_Supplier": "FSUPPLIERID", "BD_Material": "FMATERIALID",
	"BD_CommonContact": "FCONTACTID", "BD_Empinfo": "FID", "BD_Department": "FDEPTID",
}

// idColumn picks the column holding a row's id: the form's primary key, FID, or FNumber.
func idColumn(form string, columns []string) string {
	for _, want := range []string{primaryKeys[form], "FID", "FNumber"} {
		for _, c := range columns {
			if want != "" && strings.EqualFold(c, want) {
				return c
			}
		}
	}
	return ""
}

var jdyVersion = regexp.MustCompile(`^v[0-9]+$`)

// describeXingchen describes a 云星辰 call: /jdy/v2/{module}/{resource}[_detail|_delete|…].
func describeXingchen(d adapters.Description, req *adapters.Request, rest string) (adapters.Description, error) {
	segs := strings.Split(rest, "/")
	if len(segs) != 3 || !jdyVersion.MatchString(segs[0]) || segs[1] == "" || segs[2] == "" {
		return d, nil
	}
	resource, op, _ := strings.Cut(segs[2], "_")
	if resource == "" {
		return d, nil
	}
	st := &state{}
	d.Type, d.State = strings.ToLower(resource), st
	switch {
	case op == "" && req.Method == http.MethodGet:
		d.Action, d.PageSizeParam, d.PageSize, st.shape, st.id = adapters.ActionList, "page_size", defaultPageSize, shapeList, "id"
		v, err := req.Param("page_size")
		if err != nil {
			return d, err
		}
		if v != "" {
			if d.PageSize, err = strconv.Atoi(v); err != nil || d.PageSize < 0 {
				return d, &adapters.Error{Reason: "page_size must be a non-negative integer"}
			}
		}
		if _, err := req.Param("page"); err != nil {
			return d, err
		}
	case op == "detail" && req.Method == http.MethodGet:
		d.Action, d.PageSize, st.shape, st.id = adapters.ActionRead, 1, shapeDetail, "data.id"
		for _, p := range []string{"id", "number"} {
			v, err := req.Param(p)
			if err != nil {
				return d, err
			}
			if d.ID == "" {
				d.ID = v
			}
		}
	case op == "" && req.Method == http.MethodPost:
		ms, err := members(req.Body)
		if err != nil {
			return d, &adapters.Error{Reason: "the body must be one JSON object"}
		}
		d.Action = adapters.ActionCreate
		if d.ID, err = scalar(ms, "id"); err != nil {
			return d, err
		}
		if d.ID != "" && d.ID != "0" {
			d.Action = adapters.ActionUpdate
		}
		set := map[string]bool{}
		for _, m := range ms {
			set[m.Name] = true
			var rows []json.RawMessage
			if json.Unmarshal(m.Value, &rows) != nil {
				continue
			}
			for _, r := range rows {
				if sub, err := members(r); err == nil {
					for _, s := range sub {
						set[m.Name+"."+s.Name] = true
					}
				}
			}
		}
		for f := range set {
			d.Fields = append(d.Fields, f)
		}
		slices.Sort(d.Fields)
	case op == "delete" && req.Method == http.MethodPost:
		d.Action = adapters.ActionDelete
	default:
		// Audits, enabling, disabling and other operations.
		d.Action, d.State = adapters.ActionOther, nil
	}
	return d, nil
}

// xingchenIDs are the keys of 云星辰 ids: 19-digit numbers as strings ("1795216634413516801"),
// some of which pass the Luhn check, kept from the bank_card detector.
var xingchenIDs = []string{"id"}

// Layout implements adapters.Adapter. 云星空 ExecuteBillQuery rows are positional: column i is
// named by FieldKeys[i] of the request. Failures come back with HTTP 200 and are told by
// their status marker, so they count nothing: 云星空 Result.ResponseStatus.IsSuccess = false
// (for ExecuteBillQuery wrapped as [[{"Result": …}]], for BillQuery as [{"Result": …}]),
// 云星辰 errcode ≠ 0 (which also carries no data.rows).
func (a *Adapter) Layout(d adapters.Description, status int, _ http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON}
	st, _ := d.State.(*state)
	if st == nil || status < 200 || status > 299 {
		return l
	}
	l.ID = st.id
	const isSuccess = "Result.ResponseStatus.IsSuccess"
	switch st.shape {
	case shapeRows:
		l.HasRecords, l.Columns = true, st.columns
		l.Status = mask.Status{Path: "*.*." + isSuccess, OK: "true"}
	case shapeObjects:
		l.HasRecords = true
		l.Status = mask.Status{Path: "*." + isSuccess, OK: "true"}
	case shapeView:
		l.Records, l.HasRecords = "@this", true
		l.Status = mask.Status{Path: isSuccess, OK: "true"}
	case shapeDetail:
		l.Records, l.HasRecords = "@this", true
		l.Status = mask.Status{Path: "errcode", OK: "0"}
		l.Opaque = xingchenIDs
	case shapeList:
		l.Records, l.HasRecords = "data.rows", true
		l.Status = mask.Status{Path: "errcode", OK: "0"}
		l.Opaque = xingchenIDs
	default:
		l.ID = ""
	}
	return l
}
