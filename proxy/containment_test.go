package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/veilproxy/veil/proxy/spike"
)

type heldUsers struct {
	users map[string]bool
	err   error
}

func (h heldUsers) Restricted(_ context.Context, user string) (bool, time.Time, error) {
	return h.users[user], time.Time{}, h.err
}

type events struct {
	mu sync.Mutex
	ev []spike.Event
}

func (e *events) Observe(ev spike.Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func TestContainedUserIsStopped(t *testing.T) {
	obs := &events{}
	r := newRig(t, rigOptions{Restrictions: heldUsers{users: map[string]bool{"olivia": true}}, Spike: obs})
	// The shipped policy gives a contained user budgets of zero records: nothing leaves.
	for _, path := range []string{"/api/customers?pageSize=5", "/api/customers/export"} {
		resp, body := r.do("GET", path, "olivia", "ops_manager", nil)
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("contained user GET %s = 200 %.200s", path, body)
		}
		if l := leaks(body, allSecrets(r.crm.Customers())); len(l) > 0 {
			t.Fatalf("contained user's refusal leaks %q", l[0])
		}
	}
	// Others are not affected.
	if resp, _ := r.do("GET", "/api/customers/export", "oscar", "ops_manager", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("uncontained ops_manager export = %d, want 200", resp.StatusCode)
	}
	// Events are sent as each request ends, just after the client has the response.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		obs.mu.Lock()
		n := len(obs.ev)
		obs.mu.Unlock()
		if n >= 3 {
			break
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.ev) != 3 {
		t.Fatalf("spike observer got %d events, want 3", len(obs.ev))
	}
	if e := obs.ev[0]; e.User != "olivia" || e.Decision != "limited" || e.Resource != "customers" || e.RequestID == "" {
		t.Errorf("event = %+v, want olivia limited on customers", e)
	}
	if e := obs.ev[2]; !e.Export || e.Records != len(r.crm.Customers()) || e.Decision != "allow" {
		t.Errorf("export event = %+v, want an allowed export of every record", e)
	}
}

func TestContainmentLookupFailureRestricts(t *testing.T) {
	r := newRig(t, rigOptions{Restrictions: heldUsers{err: errors.New("redis down")}})
	c := r.crm.Customers()[0]
	resp, body := r.do("GET", "/api/customers/"+c.ID, "sam", "security_admin", nil)
	if resp.StatusCode == http.StatusOK && json.Valid(body) {
		var rec map[string]any
		json.Unmarshal(body, &rec)
		if rec["mobile"] == c.Mobile {
			t.Fatalf("with the containment store down, security_admin saw the raw phone; want the user treated as contained")
		}
	}
}
