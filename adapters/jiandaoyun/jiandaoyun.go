// Package jiandaoyun adapts the Jiandaoyun (简道云) v5 open API: form data is listed, read and
// written with POST calls whose JSON bodies name the app and the form, and the _widget_ keys
// of its records are named for policy by the widgets' labels.
package jiandaoyun

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in the registry and in input.resource.system.
const System = "jiandaoyun"

// Resource types the adapter reports besides the configured form types.
const (
	// TypeData is the resource type of a form that Options.Forms does not list.
	TypeData = "data"
	// TypeMetadata is the type of the app, form and widget listings.
	TypeMetadata = "metadata"
)

// Defaults of Options.
const (
	DefaultWidgetTTL     = 10 * time.Minute
	DefaultWidgetTimeout = 5 * time.Second
	defaultLimit         = 10 // what data/list returns without a limit
)

// Options is the adapter's configuration (the route's `options:` key).
type Options struct {
	// Forms configure individual forms: their resource type and, optionally, their widget
	// labels. A form not listed has type "data".
	Forms []Form `yaml:"forms"`
	// Widgets names widgets (their _widget_ id or alias ⇒ label) on every form of the tenant;
	// a form's own Widgets and the fetched labels take precedence. Zero: none.
	Widgets map[string]string `yaml:"widgets"`
	// FetchWidgets calls the form's widget/list on first use when the form has no Widgets of
	// its own, with the credential the client's request carries to the upstream. Nil: true.
	FetchWidgets *bool `yaml:"fetch_widgets"`
	// WidgetTTL is how long fetched labels are used before they are fetched again. Zero: 10m.
	WidgetTTL time.Duration `yaml:"widget_ttl"`
	// WidgetTimeout bounds one widget/list call. Zero: 5s.
	WidgetTimeout time.Duration `yaml:"widget_timeout"`
}

// Form configures one form (表单).
type Form struct {
	// EntryID is the form's entry_id. Required.
	EntryID string `yaml:"entry_id"`
	// AppID, when set, must match the request's app_id too. Zero: any app.
	AppID string `yaml:"app_id"`
	// Type is the resource type policy sees for the form ("customers"). Zero: "data".
	Type string `yaml:"type"`
	// Widgets names the form's widgets: _widget_ id or alias ⇒ label. When set, widget/list
	// is never called for the form.
	Widgets map[string]string `yaml:"widgets"`
}

// Adapter is the Jiandaoyun adapter. It is safe for concurrent use.
type Adapter struct {
	forms   []Form
	widgets map[string]string
	fetch   bool
	labels  *labelCache
}

// New validates o and returns the adapter. upstream is the route's upstream base URL and
// client the HTTP client for widget/list calls; a nil client turns fetching off.
func New(o Options, upstream string, client *http.Client) (*Adapter, error) {
	a := &Adapter{widgets: o.Widgets, fetch: o.FetchWidgets == nil || *o.FetchWidgets}
	seen := map[string]bool{}
	for i, f := range o.Forms {
		if strings.TrimSpace(f.EntryID) == "" {
			return nil, fmt.Errorf("jiandaoyun: forms[%d].entry_id: required", i)
		}
		key := f.AppID + "/" + f.EntryID
		if seen[key] {
			return nil, fmt.Errorf("jiandaoyun: forms[%d]: entry_id %q listed twice", i, f.EntryID)
		}
		seen[key] = true
		if f.Type == "" {
			f.Type = TypeData
		}
		a.forms = append(a.forms, f)
	}
	// Forms bound to an app first, so they win over the same entry_id for any app.
	slices.SortStableFunc(a.forms, func(x, y Form) int {
		switch {
		case x.AppID != "" && y.AppID == "":
			return -1
		case x.AppID == "" && y.AppID != "":
			return 1
		}
		return 0
	})
	if o.WidgetTTL < 0 || o.WidgetTimeout < 0 {
		return nil, fmt.Errorf("jiandaoyun: widget_ttl and widget_timeout must not be negative")
	}
	if client == nil {
		a.fetch = false
	}
	if a.fetch {
		ttl, timeout := o.WidgetTTL, o.WidgetTimeout
		if ttl == 0 {
			ttl = DefaultWidgetTTL
		}
		if timeout == 0 {
			timeout = DefaultWidgetTimeout
		}
		a.labels = newLabelCache(upstream, client, ttl, timeout, time.Now)
	}
	return a, nil
}

// operation is one API call the adapter knows.
type operation struct {
	action   string
	metadata bool   // app, form and widget listings: no form data
	id       string // body member holding the record id, if any
	records  string // body member holding the written records: "data" (one) or "data_list"
}

// operations by path after the version segment.
var operations = map[string]operation{
	"app/entry/data/list":         {action: adapters.ActionList},
	"app/entry/data/get":          {action: adapters.ActionRead, id: "data_id"},
	"app/entry/data/create":       {action: adapters.ActionCreate, records: "data"},
	"app/entry/data/batch_create": {action: adapters.ActionCreate, records: "data_list"},
	"app/entry/data/update":       {action: adapters.ActionUpdate, id: "data_id", records: "data"},
	"app/entry/data/batch_update": {action: adapters.ActionUpdate, records: "data"},
	"app/entry/data/delete":       {action: adapters.ActionDelete, id: "data_id"},
	"app/entry/data/batch_delete": {action: adapters.ActionDelete},
	"app/entry/widget/list":       {action: adapters.ActionRead, metadata: true},
	"app/entry/list":              {action: adapters.ActionList, metadata: true},
	"app/list":                    {action: adapters.ActionList, metadata: true},
}

// state is what Describe tells Layout.
type state struct {
	op      operation
	aliases map[string]string
}

// Describe implements adapters.Adapter. Every call is a POST whose JSON body names app_id and
// entry_id; the form's widget labels are resolved here, before the upstream is called, so a
// form whose fields cannot be named is refused rather than passed through unnamed.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: adapters.ActionOther}
	name, ok := opName(req.Path)
	op, known := operations[name]
	if !ok || !known || req.Method != http.MethodPost {
		return d, nil
	}
	d.Action = op.action
	ms, err := members(req.Body)
	if err != nil {
		return d, &adapters.Error{Reason: "the request body must be one JSON object"}
	}
	if op.metadata {
		d.Type = TypeMetadata
		d.State = &state{op: op}
		return d, nil
	}
	appID, err := str(ms, "app_id")
	if err != nil {
		return d, err
	}
	entryID, err := str(ms, "entry_id")
	if err != nil {
		return d, err
	}
	if appID == "" || entryID == "" {
		return d, &adapters.Error{Reason: "app_id and entry_id are required"}
	}
	form := a.form(appID, entryID)
	d.Type = form.Type
	aliases, err := a.aliases(form, appID, entryID, req)
	if err != nil {
		return d, err
	}
	d.State = &state{op: op, aliases: aliases}
	if op.id != "" {
		if d.ID, err = str(ms, op.id); err != nil {
			return d, err
		}
		if d.ID == "" {
			return d, &adapters.Error{Reason: op.id + " is required"}
		}
	}
	switch op.action {
	case adapters.ActionList:
		d.PageSize, err = limit(ms)
		if err != nil {
			return d, err
		}
		d.Fields, err = listFields(ms, aliases)
	case adapters.ActionRead:
		d.PageSize = 1
	case adapters.ActionCreate, adapters.ActionUpdate:
		d.Fields, err = writtenFields(ms, op.records, aliases)
	}
	return d, err
}

// opName returns the operation part of a v5 path: "/api/v5/app/entry/data/list" ⇒
// "app/entry/data/list". The "/api" prefix is optional, for routes whose upstream URL
// carries it.
func opName(path string) (string, bool) {
	p := strings.TrimPrefix(path, "/api")
	return strings.CutPrefix(p, "/v5/")
}

func (a *Adapter) form(appID, entryID string) Form {
	for _, f := range a.forms {
		if f.EntryID == entryID && (f.AppID == "" || f.AppID == appID) {
			return f
		}
	}
	return Form{EntryID: entryID, AppID: appID, Type: TypeData}
}

// aliases returns the labels of the form's widgets, raw key ⇒ label: the tenant-wide
// widgets, overridden by the fetched labels, overridden by the form's own widgets.
func (a *Adapter) aliases(f Form, appID, entryID string, req *adapters.Request) (map[string]string, error) {
	if len(f.Widgets) > 0 || !a.fetch {
		return merge(a.widgets, f.Widgets), nil
	}
	auth := req.Header.Values("Authorization")
	if len(auth) > 1 {
		return nil, &adapters.Error{Reason: "the Authorization header is given more than once"}
	}
	var credential string
	if len(auth) == 1 {
		credential = auth[0]
	}
	// The widget list sits beside the data calls: /api/v5/app/entry/widget/list.
	i := strings.LastIndex(req.Path, "/app/entry/")
	widgetPath := req.Path[:i] + "/app/entry/widget/list"
	fetched, err := a.labels.get(appID, entryID, widgetPath, credential)
	if err != nil {
		return nil, &adapters.Error{Reason: "the form's field labels could not be read from Jiandaoyun (widget/list); try again"}
	}
	return merge(a.widgets, fetched, f.Widgets), nil
}

// merge returns the union of maps, later ones winning; nil when all are empty.
func merge(ms ...map[string]string) map[string]string {
	var out map[string]string
	for _, m := range ms {
		for k, v := range m {
			if out == nil {
				out = make(map[string]string)
			}
			out[k] = v
		}
	}
	return out
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

// limit reads the page size of a data/list body: limit, 10 when absent.
func limit(ms []member) (int, error) {
	v, ok, err := get(ms, "limit")
	if err != nil {
		return 0, &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, &adapters.Error{Reason: "limit must be a non-negative integer"}
	}
	return n, nil
}

// listFields names the widgets a data/list body asks for.
func listFields(ms []member, aliases map[string]string) ([]string, error) {
	v, ok, err := get(ms, "fields")
	if err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return nil, nil
	}
	var names []string
	if json.Unmarshal(v, &names) != nil {
		return nil, &adapters.Error{Reason: "fields must be an array of strings"}
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = label(n, aliases)
	}
	return out, nil
}

// writtenFields names the widgets a create or update writes: the keys of the data object (or
// of every object of data_list), subform widgets as "subform.widget", by label.
func writtenFields(ms []member, records string, aliases map[string]string) ([]string, error) {
	v, ok, err := get(ms, records)
	if err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return nil, nil
	}
	var objs []json.RawMessage
	if records == "data_list" {
		if json.Unmarshal(v, &objs) != nil {
			return nil, &adapters.Error{Reason: "data_list must be an array of objects"}
		}
	} else {
		objs = []json.RawMessage{v}
	}
	set := map[string]bool{}
	for _, o := range objs {
		if err := collectFields(o, "", aliases, set, 0); err != nil {
			return nil, err
		}
	}
	fields := make([]string, 0, len(set))
	for f := range set {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields, nil
}

// collectFields adds the labels of the widgets of one written record to set. A widget's
// value is {"value": …}; a subform's value is {"value": [rows]}, whose widgets are added as
// "subform.widget".
func collectFields(obj json.RawMessage, prefix string, aliases map[string]string, set map[string]bool, depth int) error {
	ms, err := members(obj)
	if err != nil || depth > 2 {
		return &adapters.Error{Reason: "written records must be JSON objects of widgets"}
	}
	for _, m := range ms {
		name := prefix + label(m.Name, aliases)
		set[name] = true
		wrapped, err := members(m.Value)
		if err != nil {
			continue // a bare value
		}
		inner, ok, err := get(wrapped, "value")
		if err != nil {
			return &adapters.Error{Reason: err.Error()}
		}
		var rows []json.RawMessage
		if !ok || json.Unmarshal(inner, &rows) != nil {
			continue
		}
		for _, row := range rows {
			if _, err := members(row); err != nil {
				continue // a multi-value widget (checkboxes, members)
			}
			if err := collectFields(row, name+".", aliases, set, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// label is the name policy uses for a raw key.
func label(key string, aliases map[string]string) string {
	if l, ok := aliases[key]; ok && l != "" {
		return l
	}
	return key
}

// Layout implements adapters.Adapter: data/list records sit at "data", a data/get response
// is one record under "data"; keys are renamed to their widget labels at any depth, so
// subform widgets are named too. Error bodies (HTTP 4xx with {code, msg}) and write
// acknowledgements carry no records.
func (a *Adapter) Layout(d adapters.Description, status int, _ http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON}
	st, _ := d.State.(*state)
	if st == nil {
		return l
	}
	l.Aliases = st.aliases
	if status < 200 || status > 299 || st.op.metadata {
		return l
	}
	switch st.op.action {
	case adapters.ActionList:
		l.Records, l.ID, l.HasRecords = "data", "_id", true
	case adapters.ActionRead:
		l.Records, l.ID, l.HasRecords = "@this", "data._id", true
	}
	return l
}
