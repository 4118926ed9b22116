// Package salesforce adapts the Salesforce REST API: SOQL queries and their nextRecordsUrl
// pages, sObject reads and writes, composite requests, Bulk API 2.0 query results (CSV) and
// report runs, with fields named by their API names.
package salesforce

import (
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veilproxy/veil/adapters"
	"github.com/veilproxy/veil/proxy/mask"
)

// System is the adapter's name in the registry and in input.resource.system.
const System = "salesforce"

// Resource types the adapter reports besides sObject names.
const (
	// TypeQuery is a query page whose object the request does not name: a nextRecordsUrl
	// page or a Bulk API 2.0 result set.
	TypeQuery = "query"
	// TypeComposite is a composite request whose subrequests touch several objects.
	TypeComposite = "composite"
	// TypeReport is a report run.
	TypeReport = "report"
	// TypeSearch is a SOSL search.
	TypeSearch = "search"
	// TypeMetadata is describe calls, limits, resource listings and bulk job status.
	TypeMetadata = "metadata"
)

// defaultBatch is the most records one query page holds.
const defaultBatch = 2000

// Options is the adapter's configuration (the route's `options:` key). Salesforce needs no
// tenant settings: fields are named by their API names, and tenant-specific fields
// (National_ID__c) are classified in policy data.
type Options struct{}

// Adapter is the Salesforce adapter. It is safe for concurrent use. Its only state is the
// query cursors it has seen (see Learn), so later pages of a query are described as the
// query; an adapter that has not seen a cursor (another replica, a restart) describes the
// page as type "query".
type Adapter struct {
	cursors *cursors
}

// New returns the adapter.
func New(Options) (*Adapter, error) { return &Adapter{cursors: newCursors(time.Now)}, nil }

// shape is where a response's records sit; Describe picks it, Layout applies it.
type shape uint8

const (
	shapeNone      shape = iota // no records: metadata, write acknowledgements
	shapeQuery                  // {records: [...]} with subquery records nested
	shapeRecord                 // one record (or a related collection with records nested)
	shapeArray                  // a top-level array of records (sObject Collections)
	shapeRecent                 // sObject basic info: recentItems
	shapeSearch                 // SOSL: searchRecords
	shapeCSV                    // Bulk API 2.0 results
	shapeReport                 // a report run: detail rows under factMap.*.rows
	shapeComposite              // compositeResponse[].body
	shapeBatch                  // composite/batch results[].result
	shapeJob                    // a Bulk API 2.0 query job's info: no records, its id captured
)

// state is what Describe tells Layout.
type state struct {
	shape   shape
	aliases map[string]string
}

var versionSeg = regexp.MustCompile(`^v[0-9]+\.[0-9]$`)

// Describe implements adapters.Adapter.
func (a *Adapter) Describe(req *adapters.Request) (adapters.Description, error) {
	d, err := describe(req, false)
	d.System = System
	if err == nil {
		a.continuation(&d, req.Path)
	}
	return d, err
}

// describe describes one request; sub is set for a composite subrequest, which may not be a
// composite request itself.
func describe(req *adapters.Request, sub bool) (adapters.Description, error) {
	d := adapters.Description{System: System, Action: methodAction(req.Method)}
	segs, ok := apiPath(req.Path)
	if !ok {
		if !sub {
			// The Lightning/Classic "Export" of a report (/00O…?export=1) is a bulk export
			// of unmasked report output; it is flagged and left unrecognised, so policy
			// refuses it.
			if v, _ := req.Param("export"); v != "" {
				d.Action, d.Export = adapters.ActionExport, true
			}
		}
		return d, nil
	}
	st := &state{}
	d.State = st
	get := req.Method == http.MethodGet
	n := len(segs)
	switch {
	case n == 0 || (n == 1 && (segs[0] == "limits" || segs[0] == "sobjects")):
		d.Type, d.Action = TypeMetadata, adapters.ActionRead
		if !get {
			d.Type = ""
		}
	case n == 1 && (segs[0] == "query" || segs[0] == "queryAll"):
		if !get {
			return notKnown(d), nil
		}
		return describeQuery(d, req, st)
	case n == 2 && (segs[0] == "query" || segs[0] == "queryAll"):
		if !get {
			return notKnown(d), nil
		}
		d.Type, d.Action, st.shape = TypeQuery, adapters.ActionList, shapeQuery
		batch, err := batchSize(req)
		d.PageSize = batch
		return d, err
	case segs[0] == "sobjects" && n >= 2:
		return describeSObject(d, req, segs[1:], st)
	case n == 1 && segs[0] == "search":
		if !get {
			return notKnown(d), nil
		}
		q, err := req.Param("q")
		if err != nil {
			return d, err
		}
		if q == "" {
			return d, &adapters.Error{Reason: "search needs a q parameter"}
		}
		d.Type, d.Action, st.shape = TypeSearch, adapters.ActionList, shapeSearch
	case n == 1 && segs[0] == "parameterizedSearch" && (get || req.Method == http.MethodPost):
		d.Type, d.Action, st.shape = TypeSearch, adapters.ActionList, shapeSearch
	case segs[0] == "composite":
		if sub {
			return d, &adapters.Error{Reason: "a composite subrequest may not be a composite request"}
		}
		return describeComposite(d, req, segs[1:], st)
	case segs[0] == "jobs" && n >= 2 && segs[1] == "query":
		return describeBulkQuery(d, req, segs[2:], st)
	case n >= 2 && segs[0] == "analytics" && segs[1] == "reports":
		return describeReport(d, req, segs[2:], st)
	default:
		d.State = nil
	}
	return d, nil
}

// notKnown marks d as a request the adapter does not recognise: policy sees no resource.
func notKnown(d adapters.Description) adapters.Description {
	d.Type, d.State = "", nil
	return d
}

// apiPath returns the segments of a REST API path after /services/data/vNN.N.
func apiPath(p string) ([]string, bool) {
	rest, ok := strings.CutPrefix(p, "/services/data/")
	if !ok {
		return nil, false
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(segs) == 0 || !versionSeg.MatchString(segs[0]) {
		return nil, false
	}
	for _, s := range segs[1:] {
		if s == "" {
			return nil, false
		}
	}
	return segs[1:], true
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

// describeQuery describes GET …/query?q=SOQL (and queryAll).
func describeQuery(d adapters.Description, req *adapters.Request, st *state) (adapters.Description, error) {
	soql, err := req.Param("q")
	if err != nil {
		return d, err
	}
	if soql == "" {
		return d, &adapters.Error{Reason: "query needs a q parameter"}
	}
	q, err := parseSOQL(soql)
	if err != nil {
		return d, &adapters.Error{Reason: err.Error()}
	}
	batch, err := batchSize(req)
	if err != nil {
		return d, err
	}
	d.Type, d.Action, d.Fields = objectType(q.Object), adapters.ActionList, q.Fields
	d.PageSize = batch
	if q.Limit > 0 && (batch == 0 || q.Limit < batch) {
		d.PageSize = min(q.Limit, defaultBatch)
	}
	st.shape, st.aliases = shapeQuery, q.Aliases
	return d, nil
}

// batchSize reads Sforce-Query-Options: batchSize=N (Salesforce keeps it within 200–2000).
// Without one it is 0, unknown: Salesforce then returns up to 2000 records, but a client
// that names no size is not charged 2000 up front; the records returned are charged.
func batchSize(req *adapters.Request) (int, error) {
	vs := req.Header.Values("Sforce-Query-Options")
	switch len(vs) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, &adapters.Error{Reason: "the Sforce-Query-Options header is given more than once"}
	}
	size := 0
	seen := false
	for _, opt := range strings.Split(vs[0], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "batchSize") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if seen || err != nil || n < 0 {
			return 0, &adapters.Error{Reason: "Sforce-Query-Options: batchSize must be given once, as a number"}
		}
		seen = true
		size = min(max(n, 200), defaultBatch)
	}
	return size, nil
}

// describeSObject describes /sobjects/{SObject}[/…].
func describeSObject(d adapters.Description, req *adapters.Request, segs []string, st *state) (adapters.Description, error) {
	d.Type = objectType(segs[0])
	get := req.Method == http.MethodGet
	switch n := len(segs); {
	case n == 1 && get: // basic info with recentItems
		d.Action, st.shape = adapters.ActionList, shapeRecent
	case n == 1 && req.Method == http.MethodPost:
		d.Action = adapters.ActionCreate
		return withBodyFields(d, req.Body)
	case n >= 2 && segs[1] == "describe" && get:
		d.Type, d.Action = TypeMetadata, adapters.ActionRead
	case n == 2 && (segs[1] == "updated" || segs[1] == "deleted") && get:
		d.Action = adapters.ActionList // ids and dates only
	case n == 2 || n == 3:
		d.ID = segs[1]
		if n == 3 {
			d.ID = segs[2] // an external id value, or the related record of a relationship
		}
		switch req.Method {
		case http.MethodGet:
			d.Action, d.PageSize, st.shape = adapters.ActionRead, 1, shapeRecord
			fields, err := req.Param("fields")
			if err != nil {
				return d, err
			}
			d.Fields = splitList(fields)
		case http.MethodPatch:
			// PATCH on an external id is an upsert: it creates when no record matches.
			d.Action = adapters.ActionUpdate
			if n == 3 {
				d.Action = adapters.ActionCreate
			}
			return withBodyFields(d, req.Body)
		case http.MethodDelete:
			d.Action = adapters.ActionDelete
		default:
			return notKnown(d), nil
		}
	default:
		return notKnown(d), nil
	}
	return d, nil
}

// describeBulkQuery describes Bulk API 2.0 query jobs: creating one is an export, its
// results are the export's records (CSV), status and management calls are metadata.
func describeBulkQuery(d adapters.Description, req *adapters.Request, segs []string, st *state) (adapters.Description, error) {
	switch n := len(segs); {
	case n == 0 && req.Method == http.MethodPost:
		ms, err := members(req.Body)
		if err != nil {
			return d, &adapters.Error{Reason: "the job must be one JSON object"}
		}
		soql, err := str(ms, "query")
		if err != nil {
			return d, err
		}
		q, err := parseSOQL(soql)
		if err != nil {
			return d, &adapters.Error{Reason: err.Error()}
		}
		d.Type, d.Fields = objectType(q.Object), q.Fields
		d.Action, d.Export, st.shape = adapters.ActionExport, true, shapeJob
	case n == 0 && req.Method == http.MethodGet, n == 1:
		d.Type = TypeMetadata
		if req.Method == http.MethodPatch { // abort: {"state": "Aborted"}
			return withBodyFields(d, req.Body)
		}
	case n == 2 && segs[1] == "results" && req.Method == http.MethodGet:
		d.Type, d.Action, d.Export, st.shape = TypeQuery, adapters.ActionExport, true, shapeCSV
		d.PageSizeParam = "maxRecords"
		v, err := req.Param("maxRecords")
		if err != nil {
			return d, err
		}
		if v != "" {
			if d.PageSize, err = strconv.Atoi(v); err != nil || d.PageSize < 0 {
				return d, &adapters.Error{Reason: "maxRecords must be a non-negative integer"}
			}
		}
	default:
		return notKnown(d), nil
	}
	return d, nil
}

// describeReport describes /analytics/reports[/{id}[/…]]: a run with details is an export.
func describeReport(d adapters.Description, req *adapters.Request, segs []string, st *state) (adapters.Description, error) {
	d.Type = TypeMetadata
	details := func() (bool, error) {
		v, err := req.Param("includeDetails")
		return strings.EqualFold(v, "true"), err
	}
	get, post := req.Method == http.MethodGet, req.Method == http.MethodPost
	switch n := len(segs); {
	case n == 0 && get, n == 2 && segs[1] == "describe" && get, n == 2 && segs[1] == "instances" && get:
		d.Action = adapters.ActionRead
	case n == 1 && (get || post), n == 2 && segs[1] == "instances" && post:
		d.Type, d.Action, d.ID, st.shape = TypeReport, adapters.ActionRead, segs[0], shapeReport
		full, err := details()
		if err != nil {
			return d, err
		}
		if full || n == 2 {
			d.Action, d.Export = adapters.ActionExport, true
		}
	case n == 3 && segs[1] == "instances" && get:
		d.Type, d.Action, d.Export, d.ID, st.shape = TypeReport, adapters.ActionExport, true, segs[0], shapeReport
	case n == 3 && segs[1] == "instances" && req.Method == http.MethodDelete:
		d.Action = adapters.ActionDelete
	default:
		return notKnown(d), nil
	}
	return d, nil
}

// withBodyFields sets d.Fields to the fields a write body names.
func withBodyFields(d adapters.Description, body []byte) (adapters.Description, error) {
	set := map[string]bool{}
	if err := recordFields(body, "", set, 0); err != nil {
		return d, err
	}
	d.Fields = sortedKeys(set)
	return d, nil
}

// recordFields adds the fields of one written record to set: its keys but attributes, and
// the fields of child records ({"Contacts": {"records": [...]}} in a tree) as "Contacts.X".
func recordFields(body []byte, prefix string, set map[string]bool, depth int) error {
	ms, err := members(body)
	if err != nil || depth > 4 {
		return &adapters.Error{Reason: "a written record must be one JSON object"}
	}
	for _, m := range ms {
		if strings.EqualFold(m.Name, "attributes") {
			continue
		}
		set[prefix+m.Name] = true
		child, err := members(m.Value)
		if err != nil {
			continue
		}
		recs, ok, err := get(child, "records")
		if err != nil {
			return &adapters.Error{Reason: err.Error()}
		}
		var rows []json.RawMessage
		if !ok || json.Unmarshal(recs, &rows) != nil {
			continue
		}
		for _, r := range rows {
			if err := recordFields(r, prefix+m.Name+".", set, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// standardObjects spells the standard objects the way policy data does; object names are
// case-insensitive in Salesforce, so "contact" and "CONTACT" are both Contact.
var standardObjects = func() map[string]string {
	m := map[string]string{}
	for _, o := range []string{
		"Account", "AccountContactRelation", "Asset", "Campaign", "CampaignMember", "Case",
		"CaseComment", "Contact", "ContentVersion", "Contract", "EmailMessage", "Event", "Individual",
		"Lead", "Note", "Opportunity", "OpportunityContactRole", "OpportunityLineItem", "Order",
		"OrderItem", "Pricebook2", "PricebookEntry", "Product2", "Quote", "QuoteLineItem", "Task",
		"User", "UserRole", "Group", "Attachment", "Entitlement", "ServiceContract", "WorkOrder",
	} {
		m[strings.ToLower(o)] = o
	}
	return m
}()

// objectType is the resource type of an sObject name: standard objects in their usual
// spelling, custom objects as written.
func objectType(name string) string {
	if s, ok := standardObjects[strings.ToLower(name)]; ok {
		return s
	}
	return name
}

// Layout implements adapters.Adapter.
func (a *Adapter) Layout(d adapters.Description, status int, h http.Header) mask.Layout {
	l := mask.Layout{Format: mask.FormatJSON}
	st, _ := d.State.(*state)
	if st == nil {
		return l
	}
	l.Aliases = st.aliases
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if st.shape == shapeCSV && mt != "application/json" {
		l.Format = mask.FormatCSV
	}
	if status < 200 || status > 299 {
		return l
	}
	l.ID = "Id"
	l.Nested = []string{"records"}
	switch st.shape {
	case shapeQuery:
		l.Records, l.HasRecords, l.Capture = "records", true, "nextRecordsUrl"
	case shapeRecord:
		l.Records, l.HasRecords = "@this", true
	case shapeArray:
		l.Records, l.HasRecords = "", true
	case shapeRecent:
		l.Records, l.HasRecords = "recentItems", true
	case shapeSearch:
		l.Records, l.HasRecords = "searchRecords", true
	case shapeCSV:
		l.HasRecords = l.Format == mask.FormatCSV
	case shapeReport:
		l.Records, l.HasRecords, l.ID, l.Nested = "@this", true, "", []string{"rows"}
	case shapeComposite:
		l.Records, l.HasRecords, l.ID = "compositeResponse", true, "body.Id"
	case shapeBatch:
		l.Records, l.HasRecords, l.ID = "results", true, "result.Id"
	case shapeJob:
		l.ID, l.Nested, l.Capture = "", nil, "id"
	}
	return l
}
