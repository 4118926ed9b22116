package salesforce

import (
	"container/list"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/veilproxy/veil/adapters"
)

// Query cursors: Salesforce keeps a query's cursor for 15 minutes of inactivity, and its
// nextRecordsUrl names the cursor and an offset ("01gD0000002HU6KIAW-2000"). Veil learns
// the cursor of every page it serves, so a later page — whose URL does not name the object
// — is described as the query it continues: same type, same fields, same aliases. Bulk API
// 2.0 query jobs the same way: the id in the answer to creating a job names the job whose
// results (kept by Salesforce for 7 days) are then described as its query's object.
const (
	cursorTTL  = 15 * time.Minute
	jobTTL     = 7 * 24 * time.Hour
	maxCursors = 10000
)

// cursor is what a query's first page said of it.
type cursor struct {
	key     string
	typ     string
	fields  []string
	aliases map[string]string
	expires time.Time
}

// cursors remembers the most recently used query cursors, at most maxCursors, each for
// cursorTTL after its last page. It is safe for concurrent use.
type cursors struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*list.Element // key -> element holding *cursor
	lru list.List                // most recently used first
}

func newCursors(now func() time.Time) *cursors {
	return &cursors{now: now, m: make(map[string]*list.Element)}
}

// cursorKey is the cursor part of a query locator: what precedes its last "-offset".
func cursorKey(locator string) string {
	if i := strings.LastIndexByte(locator, '-'); i > 0 {
		return locator[:i]
	}
	return locator
}

func (cs *cursors) get(key string) (*cursor, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	e, ok := cs.m[key]
	if !ok {
		return nil, false
	}
	c := e.Value.(*cursor)
	if cs.now().After(c.expires) {
		cs.lru.Remove(e)
		delete(cs.m, c.key)
		return nil, false
	}
	return c, true
}

func (cs *cursors) put(c *cursor, ttl time.Duration) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.expires = cs.now().Add(ttl)
	if e, ok := cs.m[c.key]; ok {
		e.Value = c
		cs.lru.MoveToFront(e)
		return
	}
	cs.m[c.key] = cs.lru.PushFront(c)
	for cs.lru.Len() > maxCursors {
		old := cs.lru.Back()
		cs.lru.Remove(old)
		delete(cs.m, old.Value.(*cursor).key)
	}
}

// locator returns the query locator a query-page path names ("" when it names none).
func locator(path string) string {
	segs, ok := apiPath(path)
	if !ok || len(segs) != 2 || (segs[0] != "query" && segs[0] != "queryAll") {
		return ""
	}
	return segs[1]
}

// jobKey is a Bulk API 2.0 job's key among the cursors.
func jobKey(id string) string { return "job " + id }

// Learn implements adapters.Learner: the nextRecordsUrl of a query page Veil served names
// the cursor of the query it described; the id in the answer to creating a query job names
// the job.
func (a *Adapter) Learn(d adapters.Description, captured string) {
	st, _ := d.State.(*state)
	if st == nil || d.Type == "" || d.Type == TypeQuery {
		return
	}
	switch st.shape {
	case shapeQuery:
		u, err := url.Parse(captured)
		if err != nil {
			return
		}
		if loc := locator(u.Path); loc != "" {
			a.cursors.put(&cursor{key: cursorKey(loc), typ: d.Type, fields: d.Fields, aliases: st.aliases}, cursorTTL)
		}
	case shapeJob:
		if captured != "" && !strings.ContainsAny(captured, "/?#") {
			a.cursors.put(&cursor{key: jobKey(captured), typ: d.Type, fields: d.Fields}, jobTTL)
		}
	}
}

// continuation describes a query page by the query it continues, and a job's results by
// the job's query, when Veil served the earlier page or created the job.
func (a *Adapter) continuation(d *adapters.Description, path string) {
	st, _ := d.State.(*state)
	if st == nil || d.Type != TypeQuery {
		return
	}
	var key string
	switch st.shape {
	case shapeQuery:
		if loc := locator(path); loc != "" {
			key = cursorKey(loc)
		}
	case shapeCSV:
		if segs, ok := apiPath(path); ok && len(segs) == 4 && segs[0] == "jobs" && segs[1] == "query" && segs[3] == "results" {
			key = jobKey(segs[2])
		}
	}
	if key == "" {
		return
	}
	if c, ok := a.cursors.get(key); ok {
		d.Type, d.Fields, st.aliases = c.typ, c.fields, c.aliases
	}
}
