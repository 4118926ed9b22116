package salesforce

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/veilproxy/veil/adapters"
)

// maxSubrequests bounds the subrequests of one composite request (Salesforce allows 25, a
// graph 500).
const maxSubrequests = 500

// describeComposite describes /composite, /composite/batch, /composite/sobjects and
// /composite/tree. A composite graph is "other": its records cannot be located for counting.
func describeComposite(d adapters.Description, req *adapters.Request, segs []string, st *state) (adapters.Description, error) {
	post := req.Method == http.MethodPost
	switch n := len(segs); {
	case n == 0 && post:
		return describeSubrequests(d, req, "compositeRequest", "body", "", st, shapeComposite)
	case n == 1 && segs[0] == "batch" && post:
		return describeSubrequests(d, req, "batchRequests", "richInput", "/services/data/", st, shapeBatch)
	case n >= 1 && segs[0] == "sobjects":
		return describeCollection(d, req, segs[1:], st)
	case n == 2 && segs[0] == "tree" && post:
		d.Type, d.Action = objectType(segs[1]), adapters.ActionCreate
		ms, err := members(req.Body)
		if err != nil {
			return d, &adapters.Error{Reason: "the tree must be one JSON object"}
		}
		recs, err := records(ms)
		if err != nil {
			return d, err
		}
		set := map[string]bool{}
		for _, r := range recs {
			if err := recordFields(r, "", set, 0); err != nil {
				return d, err
			}
		}
		d.Fields = sortedKeys(set)
		return d, nil
	case n == 1 && segs[0] == "graph":
		d.Type, d.Action, d.State = TypeComposite, adapters.ActionOther, nil
		return d, nil
	}
	return notKnown(d), nil
}

// records reads the "records" array of a body.
func records(ms []member) ([]json.RawMessage, error) {
	v, ok, err := get(ms, "records")
	if err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	}
	var recs []json.RawMessage
	if !ok || json.Unmarshal(v, &recs) != nil || len(recs) > maxSubrequests {
		return nil, &adapters.Error{Reason: "records must be an array of records"}
	}
	return recs, nil
}

// describeCollection describes sObject Collections: GET or POST /composite/sobjects/{SObject}
// retrieves records by id; POST, PATCH and DELETE /composite/sobjects write several.
func describeCollection(d adapters.Description, req *adapters.Request, segs []string, st *state) (adapters.Description, error) {
	switch {
	case len(segs) == 1 && req.Method == http.MethodGet:
		d.Type, d.Action, st.shape = objectType(segs[0]), adapters.ActionList, shapeArray
		ids, err := req.Param("ids")
		if err != nil {
			return d, err
		}
		fields, err := req.Param("fields")
		if err != nil {
			return d, err
		}
		d.PageSize, d.Fields = len(splitList(ids)), splitList(fields)
		return d, nil
	case len(segs) == 1 && req.Method == http.MethodPost:
		d.Type, d.Action, st.shape = objectType(segs[0]), adapters.ActionList, shapeArray
		var body struct {
			IDs    []string `json:"ids"`
			Fields []string `json:"fields"`
		}
		if _, err := members(req.Body); err != nil || json.Unmarshal(req.Body, &body) != nil {
			return d, &adapters.Error{Reason: "the retrieve body must be {ids, fields}"}
		}
		d.PageSize, d.Fields = len(body.IDs), body.Fields
		return d, nil
	case len(segs) == 0 && req.Method == http.MethodDelete:
		d.Type, d.Action = TypeComposite, adapters.ActionDelete
		return d, nil
	case len(segs) == 0 && (req.Method == http.MethodPost || req.Method == http.MethodPatch),
		len(segs) == 2 && req.Method == http.MethodPatch:
		d.Action = adapters.ActionUpdate
		if req.Method == http.MethodPost || len(segs) == 2 { // create, or upsert by external id
			d.Action = adapters.ActionCreate
		}
		ms, err := members(req.Body)
		if err != nil {
			return d, &adapters.Error{Reason: "the body must be one JSON object"}
		}
		recs, err := records(ms)
		if err != nil {
			return d, err
		}
		types := map[string]bool{}
		if len(segs) == 2 {
			types[objectType(segs[0])] = true
		}
		set := map[string]bool{}
		for _, r := range recs {
			rm, err := members(r)
			if err != nil {
				return d, &adapters.Error{Reason: "records must be an array of records"}
			}
			if attrs, ok, _ := get(rm, "attributes"); ok {
				var a struct{ Type string }
				if json.Unmarshal(attrs, &a) == nil && a.Type != "" {
					types[objectType(a.Type)] = true
				}
			}
			if err := recordFields(r, "", set, 0); err != nil {
				return d, err
			}
		}
		d.Type, d.Fields = TypeComposite, sortedKeys(set)
		if len(types) == 1 {
			for t := range types {
				d.Type = t
			}
		}
		return d, nil
	}
	return notKnown(d), nil
}

// describeSubrequests describes a composite or batch request from its subrequests, each
// described as if it came alone. The request is allowed as one action only when its
// subrequests agree: reads (list/read) together are a list, exports are an export, writes of
// one kind are that write; reads mixed with writes, or different writes, are "other", which
// the shipped policy refuses (reads riding on a write would escape the read budgets).
func describeSubrequests(d adapters.Description, req *adapters.Request, listKey, bodyKey, base string, st *state, sh shape) (adapters.Description, error) {
	ms, err := members(req.Body)
	if err != nil {
		return d, &adapters.Error{Reason: "the composite body must be one JSON object"}
	}
	v, ok, err := get(ms, listKey)
	if err != nil {
		return d, &adapters.Error{Reason: err.Error()}
	}
	var subs []json.RawMessage
	if !ok || json.Unmarshal(v, &subs) != nil || len(subs) == 0 || len(subs) > maxSubrequests {
		return d, &adapters.Error{Reason: listKey + " must be a non-empty array of subrequests"}
	}
	types := map[string]bool{}
	actions := map[string]bool{}
	fields := map[string]bool{}
	var ids []string
	for _, raw := range subs {
		sr, err := subrequest(raw, bodyKey, base)
		if err != nil {
			return d, err
		}
		sd, err := describe(sr, true)
		if err != nil {
			return d, err
		}
		if sd.Type == "" {
			return notKnown(d), nil // a subrequest policy cannot see: the whole request is unknown
		}
		types[sd.Type] = true
		actions[sd.Action] = true
		d.Export = d.Export || sd.Export
		d.PageSize += sd.PageSize
		for _, f := range sd.Fields {
			fields[f] = true
		}
		if sd.ID != "" {
			ids = append(ids, sd.ID)
		}
		if sst, _ := sd.State.(*state); sst != nil {
			for k, v := range sst.aliases {
				if st.aliases == nil {
					st.aliases = make(map[string]string)
				}
				st.aliases[k] = v
			}
		}
	}
	d.Type = TypeComposite
	if len(types) == 1 {
		for t := range types {
			d.Type = t
		}
	}
	d.Fields = sortedKeys(fields)
	d.Action = combine(actions)
	if len(subs) == 1 && len(ids) == 1 {
		d.ID = ids[0]
	}
	switch d.Action {
	case adapters.ActionList, adapters.ActionRead, adapters.ActionExport:
		st.shape = sh
	}
	return d, nil
}

// combine is the one action a set of subrequest actions amounts to.
func combine(actions map[string]bool) string {
	reads := actions[adapters.ActionList] || actions[adapters.ActionRead]
	var writes []string
	for _, w := range []string{adapters.ActionCreate, adapters.ActionUpdate, adapters.ActionDelete} {
		if actions[w] {
			writes = append(writes, w)
		}
	}
	switch {
	case actions[adapters.ActionOther]:
		return adapters.ActionOther
	case actions[adapters.ActionExport]:
		if len(writes) > 0 {
			return adapters.ActionOther
		}
		return adapters.ActionExport
	case len(writes) == 0 && actions[adapters.ActionList]:
		return adapters.ActionList
	case len(writes) == 0:
		return adapters.ActionRead
	case len(writes) == 1 && !reads:
		return writes[0]
	}
	return adapters.ActionOther
}

// subrequest turns one composite subrequest into a request: its method, its url (relative to
// base when it does not start with "/"), its body and its headers.
func subrequest(raw json.RawMessage, bodyKey, base string) (*adapters.Request, error) {
	bad := &adapters.Error{Reason: "a composite subrequest could not be read"}
	ms, err := members(raw)
	if err != nil {
		return nil, bad
	}
	method, err := str(ms, "method")
	if err != nil {
		return nil, err
	}
	rawURL, err := str(ms, "url")
	if err != nil {
		return nil, err
	}
	method = strings.ToUpper(method)
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete}, method) {
		return nil, bad
	}
	// Percent escapes in the path are refused: Salesforce and Veil could decode them apart.
	if rawPath, _, _ := strings.Cut(rawURL, "?"); strings.Contains(rawPath, "%") {
		return nil, bad
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.Fragment != "" || u.User != nil {
		return nil, bad
	}
	p := u.Path
	if base != "" && !strings.HasPrefix(p, "/") {
		p = base + p
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "\\") ||
		strings.Contains(p+"/", "/./") || strings.Contains(p+"/", "/../") {
		return nil, bad
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad
	}
	sr := &adapters.Request{Method: method, Path: p, Query: q, Header: http.Header{}}
	if b, ok, err := get(ms, bodyKey); err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	} else if ok && !isNull(b) {
		sr.Body = b
	}
	if h, ok, err := get(ms, "httpHeaders"); err != nil {
		return nil, &adapters.Error{Reason: err.Error()}
	} else if ok && !isNull(h) {
		var hs map[string]string
		if json.Unmarshal(h, &hs) != nil {
			return nil, bad
		}
		for k, v := range hs {
			sr.Header.Add(k, v)
		}
	}
	return sr, nil
}
