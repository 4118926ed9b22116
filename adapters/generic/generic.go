// Package generic adapts any JSON or CSV API whose resources are described in configuration:
// a path pattern, where the records are, their id and page-size parameter.
package generic

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// Options is the generic adapter's configuration (the route's `generic:` key).
type Options struct {
	Resources []Resource `yaml:"resources"`
}

// Resource describes one kind of resource of the upstream API.
type Resource struct {
	// Match is a path pattern; {name} matches one segment, as http.ServeMux patterns do. A
	// pattern whose last wildcard is {id} addresses one record.
	Match string `yaml:"match"`
	// Type is the resource type policy sees, e.g. "customers".
	Type string `yaml:"type"`
	// Records is the dotted path of the records array in a JSON response, "@this" when the
	// response is one record, "" when the response itself is the array. Defaults: "@this" for
	// a pattern ending in {id}, "" otherwise.
	Records *string `yaml:"records"`
	// ID is the record-relative path of a record's id; "" = "id".
	ID string `yaml:"id"`
	// PageSizeParam is the query parameter carrying the page size ("" = none).
	PageSizeParam string `yaml:"page_size_param"`
	// Export marks GET requests on this resource as bulk exports.
	Export bool `yaml:"export"`
	// Format forces the body format: json | csv; "" = by Content-Type (text/csv is CSV).
	Format string `yaml:"format"`
	// Nested names keys whose arrays inside a record are records too.
	Nested []string `yaml:"nested"`
	// Preset applies the record, id and page-size conventions of a standard API style:
	// "odata-v4", "odata-v2", "jsonapi" or "hal" (see Presets); keys set explicitly win.
	// "" applies none.
	Preset string `yaml:"preset"`
}

// Adapter is the configured generic adapter.
type Adapter struct {
	resources []compiled
}

type compiled struct {
	Resource
	segs     []string // pattern segments; "{x}" for wildcards
	literals int
	idSeg    int // index of the {id} segment, -1 if none

	oneID   string    // record id path when the response is one record
	entity  *compiled // the one-record form of an OData collection, addressed as Name(key)
	refused []string  // query parameters the preset's server would also read as the page size
	jsonAPI bool      // write bodies are JSON:API documents
	one     bool      // the pattern addresses one record without an {id} segment (OData Name(key))
}

// New validates options and returns the adapter.
func New(o Options) (*Adapter, error) {
	a := &Adapter{}
	for i, r := range o.Resources {
		if !strings.HasPrefix(r.Match, "/") {
			return nil, fmt.Errorf("generic: resources[%d].match: must start with /", i)
		}
		if r.Type == "" {
			return nil, fmt.Errorf("generic: resources[%d].type: required", i)
		}
		if r.Format != "" && r.Format != "json" && r.Format != "csv" {
			return nil, fmt.Errorf("generic: resources[%d].format: %q is not json or csv", i, r.Format)
		}
		c := compiled{Resource: r, idSeg: -1}
		c.segs = splitPath(r.Match)
		for j, s := range c.segs {
			if strings.HasPrefix(s, "{") {
				if !strings.HasSuffix(s, "}") || len(s) < 3 {
					return nil, fmt.Errorf("generic: resources[%d].match: bad wildcard %q", i, s)
				}
				if s == "{id}" {
					c.idSeg = j
				}
			} else {
				c.literals++
			}
		}
		if r.Records != nil && !validRecordsPath(*r.Records) {
			return nil, fmt.Errorf("generic: resources[%d].records: %q is not a dotted key path, @this or empty", i, *r.Records)
		}
		if c.ID == "" {
			c.ID = "id"
		}
		c.oneID = c.ID
		if err := c.applyPreset(); err != nil {
			return nil, fmt.Errorf("generic: resources[%d].preset: %w", i, err)
		}
		a.resources = append(a.resources, c)
	}
	// Most literal segments first, as ServeMux prefers the most specific pattern; config
	// order breaks ties.
	sort.SliceStable(a.resources, func(i, j int) bool { return a.resources[i].literals > a.resources[j].literals })
	return a, nil
}

func validRecordsPath(p string) bool {
	if p == "" || p == "@this" {
		return true
	}
	for _, s := range strings.Split(p, ".") {
		if s == "" || strings.ContainsAny(s, "*?#|@\\") {
			return false
		}
	}
	return true
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func (c *compiled) match(segs []string) (id string, ok bool) {
	if len(segs) != len(c.segs) {
		return "", false
	}
	if c.one {
		// An OData entity: the collection's last segment followed by a key in parentheses.
		last := len(segs) - 1
		key, ok := odataKey(segs[last], c.segs[last])
		if !ok {
			return "", false
		}
		segs, id = segs[:last], key
	}
	for i, s := range c.segs[:len(segs)] {
		if strings.HasPrefix(s, "{") {
			if segs[i] == "" {
				return "", false
			}
			if i == c.idSeg {
				id = segs[i]
			}
			continue
		}
		if s != segs[i] {
			return "", false
		}
	}
	return id, true
}

// Describe implements adapters.Adapter.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: "generic", Action: actionOf(req.Method, false, false)}
	segs := splitPath(req.Path)
	for i := range a.resources {
		r := &a.resources[i]
		id, ok := r.match(segs)
		if !ok && r.entity != nil {
			r = r.entity
			id, ok = r.match(segs)
		}
		if !ok {
			continue
		}
		d.Type, d.ID, d.State = r.Type, id, r
		d.Action = actionOf(req.Method, r.single(), r.Export)
		for _, p := range r.refused {
			for k := range req.Query {
				if strings.EqualFold(k, p) {
					return d, &adapters.Error{Reason: "query parameter " + k + " is not accepted; use " + r.PageSizeParam}
				}
			}
		}
		if r.PageSizeParam != "" && (d.Action == adapters.ActionList || d.Action == adapters.ActionExport) {
			d.PageSizeParam = r.PageSizeParam
			v, err := req.Param(r.PageSizeParam)
			if err != nil {
				return d, err
			}
			if v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return d, &adapters.Error{Reason: "query parameter " + r.PageSizeParam + " must be a non-negative integer"}
				}
				d.PageSize = n
			}
		}
		if d.Action == adapters.ActionRead {
			d.PageSize = 1
		}
		d.Export = d.Action == adapters.ActionExport
		if d.Action == adapters.ActionCreate || d.Action == adapters.ActionUpdate {
			if r.jsonAPI {
				d.Fields = jsonAPIFields(req.Body)
			} else {
				d.Fields = bodyFields(req.Body)
			}
		}
		return d, nil
	}
	return d, nil
}

// bodyFields lists the top-level keys of a JSON object body, so policy can see which fields a
// write touches.
func bodyFields(body []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	fields := make([]string, 0, len(m))
	for k := range m {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	return fields
}

func actionOf(method string, single, export bool) string {
	switch method {
	case http.MethodGet:
		switch {
		case export:
			return adapters.ActionExport
		case single:
			return adapters.ActionRead
		default:
			return adapters.ActionList
		}
	case http.MethodPost:
		return adapters.ActionCreate
	case http.MethodPut, http.MethodPatch:
		return adapters.ActionUpdate
	case http.MethodDelete:
		return adapters.ActionDelete
	default:
		return adapters.ActionOther
	}
}

// Layout implements adapters.Adapter.
func (a *Adapter) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	r, _ := d.State.(*compiled)
	l := mask.Layout{Format: formatOf(r, h)}
	if r == nil {
		return l
	}
	l.ID, l.Nested = r.ID, r.Nested
	reading := d.Action == adapters.ActionList || d.Action == adapters.ActionRead || d.Action == adapters.ActionExport
	if !reading || status < 200 || status > 299 {
		return l // write acknowledgements and error bodies: rules apply, nothing counted
	}
	l.HasRecords = true
	switch {
	case r.Records != nil:
		l.Records = *r.Records
	case r.single():
		l.Records = "@this"
	}
	if l.Records == "@this" {
		l.ID = r.oneID
	}
	return l
}

func formatOf(r *compiled, h http.Header) mask.Format {
	if r != nil && r.Format != "" {
		if r.Format == "csv" {
			return mask.FormatCSV
		}
		return mask.FormatJSON
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == "text/csv" || mt == "application/csv" {
		return mask.FormatCSV
	}
	return mask.FormatJSON
}
