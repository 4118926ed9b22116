// Package zoho adapts the Zoho CRM REST API (v2 to v8): module records listed, searched,
// read and written under data[], related lists, COQL queries, and Bulk Read jobs as exports,
// with fields named by their API names.
package zoho

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in the registry and in input.resource.system.
const System = "zoho"

// Resource types the adapter reports besides module API names.
const (
	// TypeMetadata is settings (fields, layouts, modules), the organization and record counts.
	TypeMetadata = "metadata"
	// TypeUsers is the CRM's users: staff names, e-mail addresses and phones.
	TypeUsers = "users"
	// TypeBulk is a Bulk Read job whose module the request does not name (its status and
	// its result download).
	TypeBulk = "bulk"
)

// defaultPerPage is the records a list returns without per_page.
const defaultPerPage = 200

// Options is the adapter's configuration (the route's `options:` key). Zoho needs no tenant
// settings: fields are named by their API names, and tenant-specific fields (National_ID)
// are classified in policy data.
type Options struct{}

// Adapter is the Zoho CRM adapter. It is stateless and safe for concurrent use.
type Adapter struct{}

// New returns the adapter.
func New(Options) (*Adapter, error) { return &Adapter{}, nil }

// shape is where a response's records sit.
type shape uint8

const (
	shapeNone  shape = iota
	shapeData        // {"data": [...], "info": {...}}
	shapeUsers       // {"users": [...], "info": {...}}
)

type state struct {
	shape   shape
	aliases map[string]string
}

var versionSeg = regexp.MustCompile(`^v[0-9]+(\.[0-9]+)?$`)

// reserved are first segments after the version that are not modules.
var reserved = map[string]string{
	"settings": TypeMetadata, "org": TypeMetadata, "__features": TypeMetadata, "coql": "", "users": TypeUsers,
}

// Describe implements adapters.Adapter.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: methodAction(req.Method)}
	rest, ok := strings.CutPrefix(req.Path, "/crm/")
	if !ok {
		return d, nil
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if slices.Contains(segs, "") {
		return d, nil
	}
	if len(segs) >= 2 && segs[0] == "bulk" && versionSeg.MatchString(segs[1]) {
		return describeBulk(d, req, segs[2:])
	}
	if len(segs) < 2 || !versionSeg.MatchString(segs[0]) {
		return d, nil
	}
	segs = segs[1:]
	st := &state{}
	d.State = st
	get := req.Method == http.MethodGet
	if kind, ok := reserved[segs[0]]; ok {
		switch {
		case segs[0] == "coql" && len(segs) == 1 && req.Method == http.MethodPost:
			return describeCOQL(d, req, st)
		case kind == TypeMetadata && get:
			d.Type = TypeMetadata
		case kind == TypeUsers && get && len(segs) <= 2:
			d.Type, st.shape = TypeUsers, shapeUsers
			if len(segs) == 1 {
				d.Action = adapters.ActionList
				return withPaging(d, req)
			}
			d.ID, d.PageSize = segs[1], 1
		default:
			return notKnown(d), nil
		}
		return d, nil
	}
	d.Type = moduleType(segs[0])
	switch n := len(segs); {
	case n == 1 && get:
		d.Action, st.shape = adapters.ActionList, shapeData
		if ids, err := req.Param("ids"); err != nil {
			return d, err
		} else if ids != "" {
			d.PageSize = len(strings.Split(ids, ","))
			return withFields(d, req)
		}
		return withPaging(d, req)
	case n == 1 && (req.Method == http.MethodPost || req.Method == http.MethodPut):
		return withBodyFields(d, req.Body)
	case n == 1 && req.Method == http.MethodDelete:
		return d, nil
	case n == 2 && segs[1] == "search" && get:
		d.Action, st.shape = adapters.ActionList, shapeData
		return withPaging(d, req)
	case n == 2 && segs[1] == "deleted" && get:
		d.Action, st.shape = adapters.ActionList, shapeData
		return withPaging(d, req)
	case n == 2 && segs[1] == "upsert" && req.Method == http.MethodPost:
		d.Action = adapters.ActionCreate // an upsert creates records that do not match
		return withBodyFields(d, req.Body)
	case n == 3 && segs[1] == "actions" && segs[2] == "count" && get:
		d.Type = TypeMetadata
	case n == 2 && segs[1] != "actions":
		d.ID = segs[1]
		switch req.Method {
		case http.MethodGet:
			d.PageSize, st.shape = 1, shapeData
			return withFields(d, req)
		case http.MethodPut, http.MethodPatch:
			return withBodyFields(d, req.Body)
		case http.MethodDelete:
		default:
			return notKnown(d), nil
		}
	case n == 3 && segs[2] != "photo" && segs[2] != "actions" && segs[1] != "actions":
		// A related list: /Contacts/{id}/Notes lists the contact's notes.
		d.Type = moduleType(segs[2])
		switch req.Method {
		case http.MethodGet:
			d.Action, st.shape = adapters.ActionList, shapeData
			return withPaging(d, req)
		case http.MethodPut, http.MethodPost:
			d.Action = adapters.ActionUpdate // relating records to the parent
			return withBodyFields(d, req.Body)
		case http.MethodDelete:
			d.Action = adapters.ActionUpdate // delinking records from the parent
			d.Fields = []string{segs[2]}
		default:
			return notKnown(d), nil
		}
	case n == 4 && segs[2] != "actions" && segs[1] != "actions":
		d.Type, d.ID = moduleType(segs[2]), segs[3]
		switch req.Method {
		case http.MethodGet:
			d.PageSize, st.shape = 1, shapeData
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			d.Action, d.Fields = adapters.ActionUpdate, []string{segs[2]}
			if req.Method != http.MethodDelete && len(req.Body) > 0 {
				return withBodyFields(d, req.Body)
			}
		default:
			return notKnown(d), nil
		}
	default:
		return notKnown(d), nil
	}
	return d, nil
}

func notKnown(d adapters.Description) adapters.Description {
	d.Type, d.State = "", nil
	return d
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

// withPaging reads per_page (the page size Veil may cap; 200 when absent), page and
// page_token, and the fields parameter.
func withPaging(d adapters.Description, req *adapters.Request) (adapters.Description, error) {
	d.PageSizeParam, d.PageSize = "per_page", defaultPerPage
	v, err := req.Param("per_page")
	if err != nil {
		return d, err
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return d, &adapters.Error{Reason: "per_page must be a non-negative integer"}
		}
		d.PageSize = n
	}
	for _, p := range []string{"page", "page_token"} {
		if _, err := req.Param(p); err != nil {
			return d, err
		}
	}
	return withFields(d, req)
}

// withFields reads the fields parameter.
func withFields(d adapters.Description, req *adapters.Request) (adapters.Description, error) {
	v, err := req.Param("fields")
	if err != nil {
		return d, err
	}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			d.Fields = append(d.Fields, f)
		}
	}
	return d, nil
}

// withBodyFields sets d.Fields to the fields a write names: the keys of every record of
// data[], subform rows' keys as "Subform.Field".
func withBodyFields(d adapters.Description, body []byte) (adapters.Description, error) {
	bad := &adapters.Error{Reason: `the body must be {"data": [records]}`}
	ms, err := members(body)
	if err != nil {
		return d, bad
	}
	v, ok, err := get(ms, "data")
	if err != nil {
		return d, &adapters.Error{Reason: err.Error()}
	}
	var recs []json.RawMessage
	if !ok || json.Unmarshal(v, &recs) != nil {
		return d, bad
	}
	set := map[string]bool{}
	for _, r := range recs {
		rm, err := members(r)
		if err != nil {
			return d, bad
		}
		for _, m := range rm {
			set[m.Name] = true
			var rows []json.RawMessage
			if json.Unmarshal(m.Value, &rows) != nil {
				continue
			}
			for _, row := range rows {
				sub, err := members(row)
				if err != nil {
					continue // a multi-select value
				}
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
	return d, nil
}

// describeCOQL describes POST /coql {"select_query": "select … from Module … limit …"}.
func describeCOQL(d adapters.Description, req *adapters.Request, st *state) (adapters.Description, error) {
	ms, err := members(req.Body)
	if err != nil {
		return d, &adapters.Error{Reason: `the body must be {"select_query": "…"}`}
	}
	v, ok, err := get(ms, "select_query")
	if err != nil {
		return d, &adapters.Error{Reason: err.Error()}
	}
	var sq string
	if !ok || json.Unmarshal(v, &sq) != nil || sq == "" {
		return d, &adapters.Error{Reason: `the body must be {"select_query": "…"}`}
	}
	q, err := parseCOQL(sq)
	if err != nil {
		return d, &adapters.Error{Reason: err.Error()}
	}
	d.Type, d.Action, d.Fields, d.PageSize = moduleType(q.Module), adapters.ActionList, q.Fields, q.Limit
	st.shape, st.aliases = shapeData, q.Aliases
	return d, nil
}

// describeBulk describes Bulk Read: creating a job is an export, so is downloading its
// result (a ZIP Veil cannot mask: see the adapter's documentation); a job's status is
// metadata.
func describeBulk(d adapters.Description, req *adapters.Request, segs []string) (adapters.Description, error) {
	if len(segs) == 0 || segs[0] != "read" {
		return d, nil
	}
	switch n := len(segs); {
	case n == 1 && req.Method == http.MethodPost:
		d.Type, d.Action, d.Export = TypeBulk, adapters.ActionExport, true
		var job struct {
			Query struct {
				Module struct {
					APIName string `json:"api_name"`
				} `json:"module"`
				Fields []string `json:"fields"`
			} `json:"query"`
		}
		if _, err := members(req.Body); err != nil || json.Unmarshal(req.Body, &job) != nil {
			return d, &adapters.Error{Reason: "the bulk read job must be one JSON object"}
		}
		if m := job.Query.Module.APIName; m != "" {
			d.Type = moduleType(m)
		}
		d.Fields = job.Query.Fields
	case n == 2 && req.Method == http.MethodGet:
		d.Type, d.ID = TypeMetadata, segs[1]
	case n == 3 && segs[2] == "result" && req.Method == http.MethodGet:
		d.Type, d.Action, d.Export, d.ID = TypeBulk, adapters.ActionExport, true, segs[1]
	}
	return d, nil
}

// standardModules spells the standard modules the way policy data does.
var standardModules = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls", "Products", "Quotes",
		"Sales_Orders", "Purchase_Orders", "Invoices", "Campaigns", "Vendors", "Price_Books", "Cases",
		"Solutions", "Notes", "Attachments", "Appointments__s", "Services__s",
	} {
		m[strings.ToLower(s)] = s
	}
	return m
}()

// moduleType is the resource type of a module API name: standard modules in their usual
// spelling, custom modules as written.
func moduleType(name string) string {
	if s, ok := standardModules[strings.ToLower(name)]; ok {
		return s
	}
	return name
}

// Layout implements adapters.Adapter: records sit at "data" (users at "users"), each with its
// "id"; write acknowledgements, error bodies and bulk job answers carry no records. A 204
// (nothing matched) has no body and counts nothing. Every "id" (record, lookup, user, tag,
// layout) is a 19-digit Zoho id, one in ten of which passes the Luhn check: they are opaque,
// so the bank_card detector leaves them alone.
func (a *Adapter) Layout(d adapters.Description, status int, _ http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON, Opaque: []string{"id"}}
	st, _ := d.State.(*state)
	if st == nil {
		return l
	}
	l.Aliases = st.aliases
	if status < 200 || status > 299 {
		return l
	}
	switch st.shape {
	case shapeData:
		l.Records, l.ID, l.HasRecords = "data", "id", true
	case shapeUsers:
		l.Records, l.ID, l.HasRecords = "users", "id", true
	}
	return l
}
