package spike_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/proxy/spike"
)

func TestAdminHandler(t *testing.T) {
	clk := newClock()
	audit := &auditLog{}
	r := spike.NewMemoryRestrictions(spike.RestrictionsOptions{Now: clk.Now, Audit: audit.hook})
	srv := httptest.NewServer(http.StripPrefix("/admin", spike.AdminHandler(r, spike.BearerAuth("s3cret"), clk.Now)))
	t.Cleanup(srv.Close)

	do := func(method, path, token, admin, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if admin != "" {
			req.Header.Set("X-Veil-Admin", admin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 405 && !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q, want JSON", method, path, ct)
		}
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	user := "/admin/restrictions/" + url.PathEscape("alice@example.com")

	for _, tc := range []struct {
		name, method, path, token, admin, body string
		status                                 int
		want                                   string
	}{
		{"no token", "GET", "/admin/restrictions", "", "", "", 401, "credentials"},
		{"wrong token", "GET", "/admin/restrictions", "guess", "sec-lead", "", 401, "credentials"},
		{"no admin named", "GET", "/admin/restrictions", "s3cret", "", "", 401, "credentials"},
		{"empty list", "GET", "/admin/restrictions", "s3cret", "sec-lead", "", 200, "[]"},
		{"restrict without reason", "PUT", user, "s3cret", "sec-lead", `{"for": "2h"}`, 400, "reason"},
		{"restrict too long", "PUT", user, "s3cret", "sec-lead", `{"for": "1000h", "reason": "x"}`, 400, "for"},
		{"restrict with an unknown key", "PUT", user, "s3cret", "sec-lead", `{"for": "2h", "reason": "x", "user": "bob"}`, 400, "want"},
		{"restrict", "PUT", user, "s3cret", "sec-lead", `{"for": "2h", "reason": "leak review"}`, 200, `"restricted":true,"until":"2026-11-30T03:00:00Z"`},
		{"list", "GET", "/admin/restrictions", "s3cret", "sec-lead", "", 200, `"user":"alice@example.com","until":"2026-11-30T03:00:00Z"`},
		{"release", "DELETE", user, "s3cret", "sec-lead", "", 200, `"released_by":"sec-lead"`},
		{"release again", "DELETE", user, "s3cret", "sec-lead", "", 404, "not restricted"},
		{"wrong method", "POST", "/admin/restrictions", "s3cret", "sec-lead", "", 405, ""},
	} {
		status, body := do(tc.method, tc.path, tc.token, tc.admin, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %s %s = %d %s, want %d with %q", tc.name, tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}
	want := []string{
		`restrict alice@example.com until=2026-11-30T03:00:00Z reason="leak review" by="sec-lead"`,
		`release alice@example.com by="sec-lead"`,
	}
	if diff := cmp.Diff(want, audit.lines()); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestAdminListShape(t *testing.T) {
	clk := newClock()
	r := spike.NewMemoryRestrictions(spike.RestrictionsOptions{Now: clk.Now})
	_ = r.Restrict(ctx, "bob", t0.Add(time.Hour), "alert probing", "veil:probing")
	h := spike.AdminHandler(r, func(*http.Request) (string, error) { return "ops", nil }, clk.Now)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/restrictions", nil))
	var got []spike.Restriction
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("list body %q: %v", rec.Body, err)
	}
	want := []spike.Restriction{{User: "bob", Until: t0.Add(time.Hour), Since: t0, Reason: "alert probing", By: "veil:probing"}}
	if diff := cmp.Diff(want, got, cmpTimes); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", rec.Header().Get("Cache-Control"))
	}
}

func TestBearerAuthRefusesEmptyToken(t *testing.T) {
	req := httptest.NewRequest("GET", "/restrictions", nil)
	req.Header.Set("Authorization", "Bearer ")
	req.Header.Set("X-Veil-Admin", "x")
	if _, err := spike.BearerAuth("")(req); err == nil {
		t.Error("BearerAuth(\"\") accepted a request")
	}
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("X-Veil-Admin", "a\nb")
	if _, err := spike.BearerAuth("t")(req); err == nil {
		t.Error("BearerAuth accepted an admin name with a newline")
	}
}
