// Package limit enforces export budgets (records and requests per user or team per sliding
// window), shared by every Veil replica through Redis or held in process.
//
// A request goes through the budgets twice. Before it is forwarded, Reserve takes the page
// size the adapter reported from every budget that applies, atomically, or takes nothing and
// says which budget is spent and when to retry. After the response is masked, Settle corrects
// the reservation to the records actually returned. Reserving before forwarding is what keeps
// concurrent requests from overspending: each request has already taken its page before it
// reaches the upstream, so a user's parallel requests can overshoot a budget only by what a
// response returns beyond the page it reserved.
//
// Budgets are sliding window counters of Buckets sub-buckets per window; see docs/budgets.md
// for the algorithm and its bound.
package limit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Budget is one limit of a policy decision: at most Records records (and, when Requests is
// not zero, at most Requests requests) per Window for Key.
type Budget struct {
	// Name identifies the budget to the client and in metrics: "user-customers-hourly".
	Name string
	// Key is what is counted: "user:alice", "dept:cs". Budgets with the same Key share one
	// Redis Cluster slot.
	Key string
	// Window is the length of the sliding window; it must be positive.
	Window time.Duration
	// Records is the number of records per window; 0 means nothing may be taken, so every
	// request under the budget is rejected.
	Records int64
	// Requests is the number of requests per window; 0 means no request budget.
	Requests int64
}

// Status is a budget's state after a Reserve or a Settle.
type Status struct {
	// Name is the budget's Name.
	Name string
	// Limit is the budget's Records.
	Limit int64
	// Window is the budget's Window.
	Window time.Duration
	// Remaining is the number of records left in the window after the operation, never
	// negative.
	Remaining int64
	// Reset is the time until everything counted in the window has left it.
	Reset time.Duration
	// RetryAfter is, when Rejected, the time until the reservation would fit (callers round
	// it up to whole seconds). A reservation larger than the budget's Limit never fits; its
	// RetryAfter is then the full window the budget counts over.
	RetryAfter time.Duration
	// Rejected reports that this budget had no room for the reservation.
	Rejected bool
}

// Store keeps budgets. RedisStore and MemoryStore implement it.
type Store interface {
	// Reserve atomically checks every budget and, if all have room for n records (and 1
	// request), takes n records and 1 request from each. If any has no room, nothing is taken
	// and the statuses say which rejected (Rejected) and when to retry. A budget has room when
	// its window holds at most Records-max(n,1) records, so a spent budget rejects even a
	// reservation of 0 records. Statuses are in the order of bs; a rejection is not an error.
	Reserve(ctx context.Context, bs []Budget, n int64) (Reservation, []Status, error)
	// Settle corrects a reservation to the records actually returned (refunds when fewer,
	// takes more when more — never rejecting), returning the statuses after.
	Settle(ctx context.Context, r Reservation, actual int64) ([]Status, error)
}

var (
	_ Store = (*RedisStore)(nil)
	_ Store = (*MemoryStore)(nil)
)

// Reservation is what Reserve took: the budgets, the number of records and the bucket each
// budget was charged in. Its zero value (no budgets) settles without doing anything. Settle
// a reservation with the store that made it.
type Reservation struct {
	budgets []Budget
	n       int64
	at      []int64 // bucket index each budget was charged in
}

// Records is the number of records the reservation took.
func (r Reservation) Records() int64 { return r.n }

// ErrInvalidBudget is wrapped by the errors Reserve and Settle return for budgets they cannot
// count (empty name or key, non-positive window, negative counts, the same budget twice) and
// for negative record counts. Such an error comes from the policy decision, not from the
// store: it is not a *StoreError, and the request should be denied.
var ErrInvalidBudget = errors.New("invalid budget")

// ErrBreakerOpen is the cause of the *StoreError returned while the circuit breaker is open:
// the store failed too many times in a row and is not being asked until the cooldown ends.
var ErrBreakerOpen = errors.New("circuit breaker open")

// StoreError is the error of a store that could not be asked or did not answer: connection
// refused, timeout, NOAUTH, READONLY, an open circuit breaker. The proxy applies the route's
// on_store_error to it.
type StoreError struct {
	// Op is the operation that failed: "reserve" or "settle".
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *StoreError) Error() string { return "limit: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StoreError) Unwrap() error { return e.Err }

// Rejection returns the rejected status with the longest RetryAfter, the one a 429 response
// names, and whether any status is rejected.
func Rejection(st []Status) (Status, bool) {
	var worst Status
	found := false
	for _, s := range st {
		if s.Rejected && (!found || s.RetryAfter > worst.RetryAfter) {
			worst, found = s, true
		}
	}
	return worst, found
}

// validate checks budgets and a record count before anything is counted.
func validate(bs []Budget, n int64) error {
	if n < 0 {
		return fmt.Errorf("limit: %d records: %w", n, ErrInvalidBudget)
	}
	seen := make(map[string]bool, len(bs))
	for _, b := range bs {
		switch {
		case b.Name == "":
			return fmt.Errorf("limit: budget with key %q has no name: %w", b.Key, ErrInvalidBudget)
		case b.Key == "":
			return fmt.Errorf("limit: budget %q has no key: %w", b.Name, ErrInvalidBudget)
		case b.Window <= 0:
			return fmt.Errorf("limit: budget %q: window %v: %w", b.Name, b.Window, ErrInvalidBudget)
		case b.Records < 0 || b.Requests < 0:
			return fmt.Errorf("limit: budget %q: negative records or requests: %w", b.Name, ErrInvalidBudget)
		}
		id := storageKey("", 1, b)
		if seen[id] {
			return fmt.Errorf("limit: budget %q for key %q listed twice: %w", b.Name, b.Key, ErrInvalidBudget)
		}
		seen[id] = true
	}
	return nil
}

// bucketWidth is the width in milliseconds of one of a window's buckets: the window divided
// by the bucket count, rounded up, at least 1 ms.
func bucketWidth(window time.Duration, buckets int64) int64 {
	ms := (window + time.Millisecond - 1) / time.Millisecond
	return max(1, (int64(ms)+buckets-1)/buckets)
}

// storageKey names a budget's counter: prefix:{key}:name:window:buckets. The braces make Key
// the Redis Cluster hash tag, so every budget of one key lives in one slot; braces and '%'
// inside Key and Name are percent-encoded so that nothing else can become the tag. The bucket
// count is part of the name because counters kept with different bucket widths cannot be
// summed.
func storageKey(prefix string, buckets int64, b Budget) string {
	var sb strings.Builder
	sb.Grow(len(prefix) + len(b.Key) + len(b.Name) + 24)
	sb.WriteString(prefix)
	sb.WriteString(":{")
	sb.WriteString(escapeKey(b.Key))
	sb.WriteString("}:")
	sb.WriteString(escapeKey(b.Name))
	sb.WriteByte(':')
	sb.WriteString(b.Window.String())
	sb.WriteByte(':')
	fmt.Fprint(&sb, buckets)
	return sb.String()
}

var keyEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeKey(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	return keyEscaper.Replace(s)
}

// newStatus is the status of b with nothing but its identity and limits filled in.
func newStatus(b Budget) Status {
	return Status{Name: b.Name, Limit: b.Records, Window: b.Window}
}

// ms converts milliseconds to a Duration.
func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
