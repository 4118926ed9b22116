package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenHashPrefix marks a revocation entry that names a credential rather than a user.
const tokenHashPrefix = "sha256:"

// maxRevocationEntry bounds the length of one entry.
const maxRevocationEntry = 512

// TokenHash returns the revocation entry for a credential: "sha256:" and the lower-case hex
// SHA-256 of the credential exactly as the client sends it (the bearer token without
// "Bearer ", the API key, the vendor token; for a client certificate, its DER bytes, which
// makes the entry the certificate's SHA-256 fingerprint). An operator computes it with
// `printf %s "$TOKEN" | sha256sum`.
func TokenHash(credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return tokenHashPrefix + hex.EncodeToString(sum[:])
}

// Revocations says whether a user or a credential has been revoked.
type Revocations interface {
	// Revoked reports whether user (a user id or an e-mail) or tokenHash (TokenHash of the
	// credential; "" when there is none) is revoked.
	Revoked(ctx context.Context, user, tokenHash string) (bool, error)
}

// Revocation is one entry of a revocation list.
type Revocation struct {
	// Entry is a user id, an e-mail, or TokenHash of a credential, normalised to lower case.
	Entry string `json:"entry"`
	// Expires is when the entry lapses; zero: never.
	Expires time.Time `json:"expires,omitzero"`
	// Static entries come from policy data (data.veil.revoked); only a policy change removes
	// them.
	Static bool `json:"static,omitempty"`
}

// RevocationStore is a revocation list operators change at run time, through the admin
// endpoint.
type RevocationStore interface {
	Revocations
	// Revoke adds entry; ttl > 0 makes it lapse after ttl, 0 keeps it until Unrevoke.
	Revoke(ctx context.Context, entry string, ttl time.Duration) error
	// Unrevoke removes entry from the run-time list (not from the static one).
	Unrevoke(ctx context.Context, entry string) error
	// List returns every entry in force, static ones included, sorted.
	List(ctx context.Context) ([]Revocation, error)
}

// ErrStaticRevocation is returned by Unrevoke for an entry that comes from policy data.
var ErrStaticRevocation = errors.New("identity: the entry is listed in policy data (data.veil.revoked); remove it there")

// NormalizeRevocation checks an entry and returns its normal form: trimmed and lower case
// (user ids are matched case-insensitively: revoking too much is the safe side), and, for a
// "sha256:" entry, 64 hex digits.
func NormalizeRevocation(entry string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(entry))
	switch {
	case e == "":
		return "", errors.New("empty revocation entry")
	case len(e) > maxRevocationEntry:
		return "", fmt.Errorf("revocation entry is %d bytes, limit %d", len(e), maxRevocationEntry)
	}
	if err := checkHeaderValue(e); err != nil {
		return "", fmt.Errorf("revocation entry: %w", err)
	}
	if h, ok := strings.CutPrefix(e, tokenHashPrefix); ok {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("revocation entry %q: want sha256: and 64 hex digits", entry)
		}
	}
	return e, nil
}

// staticList is the revocation list from policy data, replaced whole on every reload.
type staticList struct {
	set atomic.Pointer[map[string]struct{}]
}

// replace replaces the static list. Invalid entries are skipped and reported in the error;
// the valid ones take effect regardless.
func (s *staticList) replace(entries []string) error {
	set := make(map[string]struct{}, len(entries))
	var errs []error
	for _, raw := range entries {
		e, err := NormalizeRevocation(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set[e] = struct{}{}
	}
	s.set.Store(&set)
	if len(errs) > 0 {
		return fmt.Errorf("identity: data.veil.revoked: %w", errors.Join(errs...))
	}
	return nil
}

// has reports whether any of keys (already normalised; "" ignored) is in the static list.
func (s *staticList) has(keys ...string) bool {
	set := s.set.Load()
	if set == nil {
		return false
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := (*set)[k]; ok {
			return true
		}
	}
	return false
}

func (s *staticList) list() []Revocation {
	set := s.set.Load()
	if set == nil {
		return nil
	}
	out := make([]Revocation, 0, len(*set))
	for e := range *set {
		out = append(out, Revocation{Entry: e, Static: true})
	}
	return out
}

// lookupKeys normalises the user and token hash of a Revoked call.
func lookupKeys(user, tokenHash string) (string, string) {
	return strings.ToLower(strings.TrimSpace(user)), strings.ToLower(tokenHash)
}

// sortRevocations orders a list by entry, static entries first among equals.
func sortRevocations(list []Revocation) []Revocation {
	slices.SortFunc(list, func(a, b Revocation) int {
		if c := strings.Compare(a.Entry, b.Entry); c != 0 {
			return c
		}
		switch {
		case a.Static && !b.Static:
			return -1
		case b.Static && !a.Static:
			return 1
		}
		return 0
	})
	return list
}

// MemoryRevocations is a revocation list held in this process: for a single instance, or for
// tests. It is safe for concurrent use.
type MemoryRevocations struct {
	static  staticList
	mu      sync.RWMutex
	entries map[string]time.Time // entry ⇒ expiry (zero: never)
	now     func() time.Time
}

// NewMemoryRevocations returns an empty in-process revocation list.
func NewMemoryRevocations() *MemoryRevocations {
	return &MemoryRevocations{entries: make(map[string]time.Time), now: time.Now}
}

// SetStatic replaces the static list (data.veil.revoked; call it on every policy reload).
// Invalid entries are skipped and reported in the error; the valid ones take effect
// regardless.
func (m *MemoryRevocations) SetStatic(entries []string) error { return m.static.replace(entries) }

// Revoked reports whether user or tokenHash is listed, statically or at run time.
func (m *MemoryRevocations) Revoked(_ context.Context, user, tokenHash string) (bool, error) {
	u, h := lookupKeys(user, tokenHash)
	if m.static.has(u, h) {
		return true, nil
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, k := range []string{u, h} {
		if k == "" {
			continue
		}
		if exp, ok := m.entries[k]; ok && (exp.IsZero() || now.Before(exp)) {
			return true, nil
		}
	}
	return false, nil
}

// Revoke adds entry, for ttl when ttl > 0.
func (m *MemoryRevocations) Revoke(_ context.Context, entry string, ttl time.Duration) error {
	e, err := NormalizeRevocation(entry)
	if err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("revocation ttl %s is negative", ttl)
	}
	var exp time.Time
	if ttl > 0 {
		exp = m.now().Add(ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[e] = exp
	return nil
}

// Unrevoke removes entry from the run-time list.
func (m *MemoryRevocations) Unrevoke(_ context.Context, entry string) error {
	e, err := NormalizeRevocation(entry)
	if err != nil {
		return err
	}
	if m.static.has(e) {
		return ErrStaticRevocation
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, e)
	return nil
}

// List returns the entries in force.
func (m *MemoryRevocations) List(context.Context) ([]Revocation, error) {
	out := m.static.list()
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for e, exp := range m.entries {
		if exp.IsZero() || now.Before(exp) {
			out = append(out, Revocation{Entry: e, Expires: exp})
		}
	}
	return sortRevocations(out), nil
}
