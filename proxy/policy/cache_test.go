package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilproxy/veil/policies"
)

func writePolicy(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInputPartsOfTheShippedPolicy(t *testing.T) {
	e, err := New(context.Background(), Options{FS: policies.FS})
	if err != nil {
		t.Fatal(err)
	}
	got := e.current.Load().parts
	if got&partRequest != 0 {
		t.Errorf("shipped policy reads input.request (parts %b): its decisions would not cache", got)
	}
	if got&partUserID == 0 || got&partResource == 0 || got&partRoute == 0 {
		t.Errorf("parts = %b, want user, resource and route", got)
	}
}

func TestDecisionCache(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return clock }
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"veil/p.rego": `package veil
decision := {"allow": true, "reason": sprintf("%s/%v", [input.user.id, input.request.query.pageSize])}
`})
	e, err := New(context.Background(), Options{FS: os.DirFS(dir), Dir: dir, Now: now, CacheTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := func(user, page string) Input {
		return Input{User: User{ID: user}, Request: Request{Query: map[string][]string{"pageSize": {page}}, Time: clock}}
	}
	decide := func(i Input) string {
		d, err := e.Decide(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		return d.Reason
	}
	if got := decide(in("alice", "10")); got != `alice/["10"]` {
		t.Fatalf("Decide = %q", got)
	}
	c := e.current.Load().cache
	if c == nil || len(c.entries) != 1 {
		t.Fatalf("decision not cached")
	}
	for _, tc := range []struct{ user, page, want string }{
		{"alice", "10", `alice/["10"]`},
		{"bob", "10", `bob/["10"]`},     // user is part of the key
		{"alice", "20", `alice/["20"]`}, // the query is read, so it is part of the key
	} {
		if got := decide(in(tc.user, tc.page)); got != tc.want {
			t.Errorf("Decide(%s, %s) = %q, want %q", tc.user, tc.page, got, tc.want)
		}
	}
	if len(c.entries) != 3 {
		t.Errorf("cache holds %d decisions, want 3", len(c.entries))
	}
	// Request time is not read by this policy: a later time hits the same entry.
	i := in("alice", "10")
	i.Request.Time = clock.Add(500 * time.Millisecond)
	k1, _ := c.key(&i)
	k2, _ := c.key(&Input{User: User{ID: "alice"}, Request: Request{Query: map[string][]string{"pageSize": {"10"}}}})
	if k1 != k2 {
		t.Errorf("time changed the key of a policy that does not read it")
	}
	clock = clock.Add(2 * time.Second)
	if _, ok := c.get(k1); ok {
		t.Errorf("entry survived its TTL")
	}
}

func TestNoCacheWhenThePolicyReadsTime(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"veil/p.rego": `package veil
decision := {"allow": input.request.time != ""}
`})
	e, err := New(context.Background(), Options{FS: os.DirFS(dir), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if e.current.Load().cache != nil {
		t.Fatal("a policy that reads input.request.time got a decision cache")
	}
}

func TestWholeInputDisablesNarrowKeys(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"veil/p.rego": `package veil
decision := {"allow": count(object.keys(input)) > 0}
`})
	e, err := New(context.Background(), Options{FS: os.DirFS(dir), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p := e.current.Load().parts; p&partTime == 0 {
		t.Fatalf("parts = %b: a policy using input as a value must count as reading all of it", p)
	}
}

func BenchmarkDecideCached(b *testing.B) {
	e, err := New(context.Background(), Options{FS: policies.FS})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		User:     User{ID: "alice", Roles: []string{"cs_agent"}, Department: "cs"},
		Request:  Request{Method: "GET", Path: "/api/customers", Time: time.Now()},
		Route:    "livecrm",
		Resource: Resource{System: "generic", Type: "customers", Action: "list", PageSize: 100},
	}
	ctx := context.Background()
	if _, err := e.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
