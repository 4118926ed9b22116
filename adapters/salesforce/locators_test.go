package salesforce

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/veilproxy/veil/adapters"
)

func getReq(target string) *adapters.Request {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	return &adapters.Request{Method: http.MethodGet, Path: u.Path, Query: u.Query(), Header: http.Header{}}
}

// TestContinuation checks that a nextRecordsUrl page is described as the query it continues
// once Veil served a page of that query, and as "query" otherwise.
func TestContinuation(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	a := &Adapter{cursors: newCursors(func() time.Time { return now })}
	const v = "/services/data/v62.0"
	first, err := a.Describe(getReq(v + "/query?q=" + url.QueryEscape("SELECT Id, Name, Phone FROM Account")))
	if err != nil {
		t.Fatal(err)
	}
	if l := a.Layout(first, 200, http.Header{}); l.Capture != "nextRecordsUrl" {
		t.Fatalf("query Layout.Capture = %q, want nextRecordsUrl", l.Capture)
	}
	page := func(loc string) (string, []string) {
		t.Helper()
		d, err := a.Describe(getReq(v + "/query/" + loc))
		if err != nil {
			t.Fatal(err)
		}
		return d.Type, d.Fields
	}
	if typ, _ := page("01gD0000002HU6KIAW-2000"); typ != TypeQuery {
		t.Errorf("an unseen cursor is described as %q, want %q", typ, TypeQuery)
	}
	a.Learn(first, v+"/query/01gD0000002HU6KIAW-2000")
	for _, loc := range []string{"01gD0000002HU6KIAW-2000", "01gD0000002HU6KIAW-4000"} {
		if typ, fields := page(loc); typ != "Account" || !slices.Equal(fields, first.Fields) {
			t.Errorf("page %s = %s %v, want Account %v", loc, typ, fields, first.Fields)
		}
	}
	if typ, _ := page("01gD0000002OTHERAW-2000"); typ != TypeQuery {
		t.Errorf("another cursor is described as %q, want %q", typ, TypeQuery)
	}

	// A page described as "query" teaches nothing; neither does a link that is not a page.
	unseen, _ := a.Describe(getReq(v + "/query/01gUNSEEN00000000-2000"))
	a.Learn(unseen, v+"/query/01gUNSEEN00000000-4000")
	a.Learn(first, v+"/sobjects/Account/001x")
	a.Learn(first, "::not a url")
	if typ, _ := page("01gUNSEEN00000000-4000"); typ != TypeQuery {
		t.Errorf("a cursor learned from a %q page is described as %q", TypeQuery, typ)
	}

	// A cursor lasts 15 minutes after its last page.
	now = now.Add(cursorTTL - time.Second)
	if typ, _ := page("01gD0000002HU6KIAW-6000"); typ != "Account" {
		t.Errorf("a cursor before its TTL = %q, want Account", typ)
	}
	now = now.Add(2 * time.Second)
	if typ, _ := page("01gD0000002HU6KIAW-6000"); typ != TypeQuery {
		t.Errorf("an expired cursor = %q, want %q", typ, TypeQuery)
	}
}

func TestCursorsBounded(t *testing.T) {
	cs := newCursors(time.Now)
	for i := range maxCursors + 10 {
		cs.put(&cursor{key: "c" + strconv.Itoa(i), typ: "Account"}, cursorTTL)
	}
	if cs.lru.Len() != maxCursors || len(cs.m) != maxCursors {
		t.Fatalf("cursors hold %d (%d in the map), want %d", cs.lru.Len(), len(cs.m), maxCursors)
	}
	if _, ok := cs.get("c0"); ok {
		t.Error("the least recently used cursor was kept")
	}
	if _, ok := cs.get("c" + strconv.Itoa(maxCursors+9)); !ok {
		t.Error("the newest cursor was dropped")
	}
}

// TestJobResults checks that the results of a Bulk API 2.0 query job created through Veil
// are described as the job's query, and those of any other job as "query".
func TestJobResults(t *testing.T) {
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	const v = "/services/data/v62.0"
	create := getReq(v + "/jobs/query")
	create.Method, create.Body = http.MethodPost, []byte(`{"operation":"query","query":"SELECT Id, Phone FROM Contact"}`)
	job, err := a.Describe(create)
	if err != nil {
		t.Fatal(err)
	}
	if l := a.Layout(job, 200, http.Header{}); l.Capture != "id" || l.HasRecords {
		t.Fatalf("job create Layout = %+v, want the id captured and no records", l)
	}
	results := func(id string) string {
		t.Helper()
		d, err := a.Describe(getReq(v + "/jobs/query/" + id + "/results"))
		if err != nil {
			t.Fatal(err)
		}
		return d.Type
	}
	a.Learn(job, "750R0000000zlh9IAA")
	a.Learn(job, "../750R0000000OTHER") // not an id
	if got := results("750R0000000zlh9IAA"); got != "Contact" {
		t.Errorf("results of the job created through Veil = %q, want Contact", got)
	}
	if got := results("750R0000000OTHER"); got != TypeQuery {
		t.Errorf("results of another job = %q, want %q", got, TypeQuery)
	}
}
