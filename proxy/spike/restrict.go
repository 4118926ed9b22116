package spike

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Restrictions hold the users under containment: restricted until a time, visible to the
// policy as input.user.restricted, lifted by a security admin or by time. RedisRestrictions
// shares them across replicas; MemoryRestrictions holds them in process.
type Restrictions interface {
	// Restricted reports whether user is restricted now, and until when. It reads a local
	// copy and does no I/O once the copy is loaded. Even with an error (the copy is stale,
	// or could not be loaded) the answer is the best known one.
	Restricted(ctx context.Context, user string) (bool, time.Time, error)
	// Restrict restricts user until until (or later, if already restricted for longer), for
	// reason, by the admin or rule named by.
	Restrict(ctx context.Context, user string, until time.Time, reason, by string) error
	// Release lifts user's restriction; by names the admin. It returns an error wrapping
	// ErrNotRestricted when user is not restricted.
	Release(ctx context.Context, user, by string) error
	// List returns the restrictions in force, by user.
	List(ctx context.Context) ([]Restriction, error)
}

var (
	_ Restrictions = (*RedisRestrictions)(nil)
	_ Restrictions = (*MemoryRestrictions)(nil)
)

// Restriction is one user's containment.
type Restriction struct {
	User   string    `json:"user"`
	Until  time.Time `json:"until"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
}

// ErrStale is wrapped by Restricted's error when the local copy of the restrictions has not
// been refreshed for RestrictionsOptions.StaleAfter: the answer may miss recent changes.
var ErrStale = errors.New("restrictions not refreshed recently")

// ErrNotRestricted is wrapped by Release's error when the user is not restricted.
var ErrNotRestricted = errors.New("user is not restricted")

// Audit kinds passed to RestrictionsOptions.Audit.
const (
	AuditRestrict = "restrict"
	AuditRelease  = "release"
)

// RestrictionsOptions configure restrictions. The zero value is usable.
type RestrictionsOptions struct {
	// Now is the clock restrictions expire by; nil means time.Now.
	Now func() time.Time
	// Audit is called after every change, with kind AuditRestrict or AuditRelease, the user
	// and a detail ("until=… reason=… by=…"); the caller writes it to the audit log. nil
	// means no audit.
	Audit func(kind, user, detail string)
	// Refresh is how often RedisRestrictions.Run reloads the restrictions when no change is
	// announced (pub/sub messages can be lost on a reconnect); 0 means 1s.
	Refresh time.Duration
	// StaleAfter is how old the local copy may grow (Redis unreachable) before Restricted
	// returns ErrStale with its answer; 0 means 10s.
	StaleAfter time.Duration
}

func (o RestrictionsOptions) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o RestrictionsOptions) audit(kind, user, detail string) {
	if o.Audit != nil {
		o.Audit(kind, user, detail)
	}
}

func restrictDetail(until time.Time, reason, by string) string {
	return fmt.Sprintf("until=%s reason=%q by=%q", until.UTC().Format(time.RFC3339), reason, by)
}

func checkRestrict(user string, until, now time.Time, by string) error {
	switch {
	case user == "":
		return errors.New("spike: restrict: no user")
	case by == "":
		return errors.New("spike: restrict: no one named as the author (by)")
	case !until.After(now):
		return fmt.Errorf("spike: restrict %s: until %s is not in the future", user, until.Format(time.RFC3339))
	}
	return nil
}

// MemoryRestrictions holds restrictions in process, for one Veil instance.
type MemoryRestrictions struct {
	o  RestrictionsOptions
	mu sync.RWMutex
	m  map[string]Restriction
}

// NewMemoryRestrictions returns an empty set of restrictions.
func NewMemoryRestrictions(o RestrictionsOptions) *MemoryRestrictions {
	return &MemoryRestrictions{o: o, m: map[string]Restriction{}}
}

// Restricted implements Restrictions. It never fails.
func (r *MemoryRestrictions) Restricted(_ context.Context, user string) (bool, time.Time, error) {
	r.mu.RLock()
	x, ok := r.m[user]
	r.mu.RUnlock()
	if !ok || !r.o.now().Before(x.Until) {
		return false, time.Time{}, nil
	}
	return true, x.Until, nil
}

// Restrict implements Restrictions.
func (r *MemoryRestrictions) Restrict(_ context.Context, user string, until time.Time, reason, by string) error {
	now := r.o.now()
	if err := checkRestrict(user, until, now, by); err != nil {
		return err
	}
	since := now
	r.mu.Lock()
	if x, ok := r.m[user]; ok && now.Before(x.Until) {
		since = x.Since
		if x.Until.After(until) {
			until = x.Until
		}
	}
	r.m[user] = Restriction{User: user, Until: until, Since: since, Reason: reason, By: by}
	r.mu.Unlock()
	r.o.audit(AuditRestrict, user, restrictDetail(until, reason, by))
	return nil
}

// Release implements Restrictions.
func (r *MemoryRestrictions) Release(_ context.Context, user, by string) error {
	r.mu.Lock()
	x, ok := r.m[user]
	delete(r.m, user)
	r.mu.Unlock()
	if !ok || !r.o.now().Before(x.Until) {
		return fmt.Errorf("spike: release %s: %w", user, ErrNotRestricted)
	}
	r.o.audit(AuditRelease, user, fmt.Sprintf("by=%q", by))
	return nil
}

// Len is the number of users restricted now (veil_restricted_users).
func (r *MemoryRestrictions) Len() int {
	now := r.o.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, x := range r.m {
		if now.Before(x.Until) {
			n++
		}
	}
	return n
}

// List implements Restrictions.
func (r *MemoryRestrictions) List(context.Context) ([]Restriction, error) {
	now := r.o.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Restriction, 0, len(r.m))
	for u, x := range r.m {
		if !now.Before(x.Until) {
			delete(r.m, u)
			continue
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Restriction) int { return cmp.Compare(a.User, b.User) })
	return out, nil
}
