package identity

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/veilproxy/veil/internal/redistest"
)

func TestNormalizeRevocation(t *testing.T) {
	hash := TokenHash("tok")
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "  Alice@Example.COM ", want: "alice@example.com"},
		{in: "0055g00000AbCdEAAV", want: "0055g00000abcdeaav"},
		{in: strings.ToUpper(hash), want: hash},
		{in: "", bad: true},
		{in: "sha256:abc", bad: true},
		{in: "sha256:" + strings.Repeat("z", 64), bad: true},
		{in: "bob\nalice", bad: true},
		{in: strings.Repeat("a", maxRevocationEntry+1), bad: true},
	}
	for _, tt := range tests {
		got, err := NormalizeRevocation(tt.in)
		if tt.bad != (err != nil) || got != tt.want {
			t.Errorf("NormalizeRevocation(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
	if want := "sha256:" + "1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62"; TokenHash("tok") != want {
		t.Errorf("TokenHash(tok) = %s, want %s", TokenHash("tok"), want)
	}
}

// checkStore runs the same checks against every RevocationStore.
func checkStore(t *testing.T, s interface {
	RevocationStore
	SetStatic([]string) error
}, advance func(time.Duration)) {
	t.Helper()
	ctx := t.Context()
	revoked := func(user, hash string) bool {
		t.Helper()
		ok, err := s.Revoked(ctx, user, hash)
		if err != nil {
			t.Fatalf("Revoked(%q, %q): %v", user, hash, err)
		}
		return ok
	}
	if revoked("alice", "") {
		t.Fatal("alice revoked in an empty list")
	}
	if err := s.Revoke(ctx, "Alice", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, TokenHash("leaked-token"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if !revoked("ALICE", "") || !revoked("bob", TokenHash("leaked-token")) || revoked("bob", TokenHash("other")) {
		t.Error("Revoked does not match the run-time entries")
	}
	if err := s.SetStatic([]string{"carol@example.com", "not\x00valid"}); err == nil {
		t.Error("SetStatic accepted an entry with a NUL byte")
	}
	if !revoked("Carol@Example.com", "") {
		t.Error("a valid static entry beside an invalid one did not take effect")
	}
	if err := s.Unrevoke(ctx, "carol@example.com"); !errors.Is(err, ErrStaticRevocation) {
		t.Errorf("Unrevoke(static) = %v, want ErrStaticRevocation", err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range list {
		if !list[i].Expires.IsZero() {
			list[i].Expires = time.Time{}.Add(1) // compare presence only
		}
	}
	want := []Revocation{{Entry: "alice"}, {Entry: "carol@example.com", Static: true}, {Entry: TokenHash("leaked-token"), Expires: time.Time{}.Add(1)}}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	advance(2 * time.Minute)
	if revoked("bob", TokenHash("leaked-token")) {
		t.Error("an entry past its ttl is still revoked")
	}
	if err := s.Unrevoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if revoked("alice", "") {
		t.Error("alice still revoked after Unrevoke")
	}
	if err := s.Revoke(ctx, "x", -time.Second); err == nil {
		t.Error("Revoke accepted a negative ttl")
	}
}

func TestMemoryRevocations(t *testing.T) {
	m := NewMemoryRevocations()
	now := time.Now()
	m.now = func() time.Time { return now }
	checkStore(t, m, func(d time.Duration) { now = now.Add(d) })
}

func newRedisRevocations(t *testing.T, url, prefix string, o RedisRevocationsOptions) *RedisRevocations {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	o.Prefix = prefix
	r, err := NewRedisRevocations(t.Context(), c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisRevocationsStore(t *testing.T) {
	url, prefix := redistest.URL(t)
	// Expiry is kept by Redis scores in wall-clock time; move this replica's clock instead.
	var offset atomic.Int64
	r := newRedisRevocations(t, url, prefix, RedisRevocationsOptions{
		now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	checkStore(t, r, func(d time.Duration) {
		offset.Add(int64(d))
		if err := r.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// A revocation made on one replica is refused by another within two seconds: over pub/sub
// (polling off), and by polling alone when the change was never announced.
func TestRedisRevocationsReachEveryReplica(t *testing.T) {
	url, prefix := redistest.URL(t)
	a := newRedisRevocations(t, url, prefix, RedisRevocationsOptions{Poll: time.Hour, MaxStale: 2 * time.Hour})
	b := newRedisRevocations(t, url, prefix, RedisRevocationsOptions{Poll: time.Hour, MaxStale: 2 * time.Hour})
	authB := newAuth(t, Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{SHA256: sha256.Sum256([]byte("k-dave")), User: "dave"}}}, Revocations: b})
	req := func() *http.Request { return &http.Request{Header: http.Header{"X-Api-Key": {"k-dave"}}} }
	if _, err := authB.Authenticate(t.Context(), req(), untrustedPeer, nil); err != nil {
		t.Fatalf("before revocation: %v", err)
	}

	start := time.Now()
	if err := a.Revoke(t.Context(), "dave", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitRefused := func(what string) {
		t.Helper()
		for {
			_, err := authB.Authenticate(t.Context(), req(), untrustedPeer, nil)
			var e *Error
			if errors.As(err, &e) && e.Code == CodeRevoked {
				return
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: replica b still accepts dave after %s (last error %v)", what, time.Since(start), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRefused("pub/sub")

	if err := a.Unrevoke(t.Context(), "dave"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := authB.Authenticate(t.Context(), req(), untrustedPeer, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica b still refuses dave 2s after Unrevoke")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Polling alone: a replica that missed the announcement still catches up.
	c := newRedisRevocations(t, url, prefix, RedisRevocationsOptions{Poll: 200 * time.Millisecond})
	authC := newAuth(t, Config{APIKeys: &APIKeysConfig{Keys: []APIKey{{SHA256: sha256.Sum256([]byte("k-dave")), User: "dave"}}}, Revocations: c})
	opts, _ := redis.ParseURL(url)
	raw := redis.NewClient(opts)
	defer raw.Close()
	start = time.Now()
	if err := raw.ZAdd(t.Context(), prefix+":revoked", redis.Z{Score: neverScore, Member: "dave"}).Err(); err != nil {
		t.Fatal(err)
	}
	authB = authC
	waitRefused("polling")
}

// When Redis is gone, entries already read stay revoked, and once the copy is older than
// MaxStale everyone else fails closed (503 through the Authenticator).
func TestRedisRevocationsStale(t *testing.T) {
	addr, stop, _ := redistest.StartServer(t)
	r := newRedisRevocations(t, "redis://"+addr+"/0", redistest.Prefix(t), RedisRevocationsOptions{Poll: 50 * time.Millisecond, MaxStale: 300 * time.Millisecond,
		Timeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err := r.Revoke(t.Context(), "erin", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Healthy(); err != nil {
		t.Fatalf("Healthy with Redis up: %v", err)
	}
	stop()
	deadline := time.Now().Add(5 * time.Second)
	for r.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("still healthy 5s after Redis stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, err := r.Revoked(t.Context(), "erin", ""); !ok || err != nil {
		t.Errorf("Revoked(erin) with a stale copy = %v, %v; want true, nil", ok, err)
	}
	if _, err := r.Revoked(t.Context(), "frank", ""); err == nil {
		t.Error("Revoked(frank) with a stale copy: no error, want one (fail closed)")
	}
	a := newAuth(t, Config{TrustedHeaders: &TrustedHeadersConfig{TrustedPeers: trustedPrefixes}, Revocations: r})
	_, err := a.Authenticate(t.Context(), &http.Request{Header: http.Header{"X-Veil-User": {"frank"}}}, trustedPeer, nil)
	checkError(t, err, http.StatusServiceUnavailable)
}

func TestNewRedisRevocationsErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := NewRedisRevocations(t.Context(), nil, RedisRevocationsOptions{}); err == nil {
		t.Error("no client: no error")
	}
	if _, err := NewRedisRevocations(t.Context(), c, RedisRevocationsOptions{Poll: time.Minute, MaxStale: time.Second}); err == nil {
		t.Error("max stale below poll: no error")
	}
}

// adminCall sends one request to the revocation admin endpoint.
func adminCall(t *testing.T, h http.Handler, method, target, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.RemoteAddr = "127.0.0.1:5555"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestRevocationAdmin(t *testing.T) {
	store := NewMemoryRevocations()
	if err := store.SetStatic([]string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	var events []RevocationEvent
	const adminToken = "admin-token-0123456789abcdef"
	h, err := NewRevocationAdmin(RevocationAdminConfig{
		Store: store, TokenSHA256: sha256.Sum256([]byte(adminToken)),
		Audit: func(_ context.Context, e RevocationEvent) { events = append(events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	leaked := "00D5g000004Xyz!AQ0AQH0dMHZfz972Szmpkb58"
	tests := []struct {
		name, method, target, token, body string
		status                            int
		contains                          string
	}{
		{name: "no token", method: "GET", target: "/", status: 401},
		{name: "wrong token", method: "GET", target: "/", token: "guess", status: 401},
		{name: "list", method: "GET", target: "/", token: adminToken, status: 200, contains: `"entry":"mallory","static":true`},
		{name: "revoke a user", method: "POST", target: "/", token: adminToken, body: `{"entry":"Alice","ttl":"24h","reason":"left the company"}`,
			status: 201, contains: `"entry":"alice","expires":`},
		{name: "revoke a token by value", method: "POST", target: "/", token: adminToken, body: `{"token":"` + leaked + `"}`,
			status: 201, contains: TokenHash(leaked)},
		{name: "entry and token", method: "POST", target: "/", token: adminToken, body: `{"entry":"a","token":"b"}`, status: 400},
		{name: "unknown field", method: "POST", target: "/", token: adminToken, body: `{"user":"a"}`, status: 400},
		{name: "bad ttl", method: "POST", target: "/", token: adminToken, body: `{"entry":"a","ttl":"-1h"}`, status: 400},
		{name: "bad entry", method: "POST", target: "/", token: adminToken, body: `{"entry":"sha256:xyz"}`, status: 400},
		{name: "unrevoke static", method: "DELETE", target: "/?entry=mallory", token: adminToken, status: 409},
		{name: "unrevoke", method: "DELETE", target: "/?entry=alice", token: adminToken, status: 204},
		{name: "unrevoke without entry", method: "DELETE", target: "/", token: adminToken, status: 400},
		{name: "other path", method: "GET", target: "/x", token: adminToken, status: 404},
		{name: "other method", method: "PUT", target: "/", token: adminToken, status: 405},
	}
	for _, tt := range tests {
		status, body := adminCall(t, h, tt.method, tt.target, tt.token, tt.body)
		if status != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %q", tt.name, tt.method, tt.target, status, body, tt.status, tt.contains)
		}
		if strings.Contains(body, leaked) {
			t.Errorf("%s: the response echoes the raw token", tt.name)
		}
	}
	if ok, _ := store.Revoked(t.Context(), "", TokenHash(leaked)); !ok {
		t.Error("the token revoked by value is not revoked")
	}
	if ok, _ := store.Revoked(t.Context(), "alice", ""); ok {
		t.Error("alice is still revoked after DELETE")
	}
	var got []string
	for _, e := range events {
		s := e.Action + " " + e.Entry
		if e.Err != nil {
			s += " (failed)"
		}
		got = append(got, s)
	}
	want := []string{"revoke alice", "revoke " + TokenHash(leaked), "unrevoke mallory (failed)", "unrevoke alice"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
	if events[0].Reason != "left the company" || events[0].Expires.IsZero() || events[0].RemoteAddr != "127.0.0.1:5555" {
		t.Errorf("audit event = %+v, want reason, expiry and remote address", events[0])
	}

	var list struct{ Revocations []Revocation }
	_, body := adminCall(t, h, "GET", "/", adminToken, "")
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Revocations) != 2 {
		t.Errorf("list after the changes = %s (%v), want mallory and the token hash", body, err)
	}

	if _, err := NewRevocationAdmin(RevocationAdminConfig{Store: store}); err == nil {
		t.Error("NewRevocationAdmin without an admin token: no error")
	}
}
