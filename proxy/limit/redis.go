package limit

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed reserve.lua
	reserveLua    string
	reserveScript = redis.NewScript(reserveLua)

	//go:embed settle.lua
	settleLua    string
	settleScript = redis.NewScript(settleLua)
)

// RedisOptions configures a RedisStore. The zero value is usable.
type RedisOptions struct {
	// Prefix starts every key; "" means "veil". Braces in it are dropped: the hash tag is
	// the budget's key.
	Prefix string
	// Timeout bounds every Reserve and Settle, pipeline and script reload included; 0 means
	// 100ms. It is enforced through the context, so the client must have
	// ContextTimeoutEnabled set (ParseRedisURL sets it); without it go-redis waits for its own
	// ReadTimeout instead.
	Timeout time.Duration
	// Buckets is the number of sub-buckets per window; 0 or less means 60. More buckets free
	// records more smoothly and cost more fields per key. Replicas must agree on it: it is part
	// of the key, so replicas with different values count separately.
	Buckets int
	// BreakerFailures is the number of consecutive failed operations after which the store
	// fails fast without asking Redis; 0 means 5, a negative value disables the breaker.
	BreakerFailures int
	// BreakerCooldown is how long the open breaker fails fast before it lets one probe
	// through; 0 means 1s.
	BreakerCooldown time.Duration
	// Logger receives the failures the store cannot return (a refund it could not make);
	// nil discards them.
	Logger *slog.Logger
}

// RedisStore keeps budgets in Redis (single node, Sentinel or Cluster) so that every Veil
// replica shares them. Each Reserve and each Settle is one atomic Lua script per budget key
// (hash tag), all sent in one pipeline, or a single script for all keys on a single node or
// behind Sentinel: one round trip there, one per node involved on a Cluster.
type RedisStore struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	buckets int64
	byTag   bool // one script per hash tag (Cluster, Ring) instead of one for all budgets
	brk     *breaker
	log     *slog.Logger
}

// NewRedis returns a store on c. Budgets with different keys are sent as one script on a
// *redis.Client (single node or Sentinel), which is then atomic across all of them; on any
// other client (Cluster, Ring) they are grouped by key, the keys' hash tag, one script per
// key, so that each script touches one slot.
func NewRedis(c redis.UniversalClient, o RedisOptions) *RedisStore {
	s := &RedisStore{
		c:       c,
		prefix:  cmp.Or(strings.NewReplacer("{", "", "}", "").Replace(o.Prefix), "veil"),
		timeout: cmp.Or(o.Timeout, 100*time.Millisecond),
		buckets: int64(o.Buckets),
		log:     o.Logger,
		brk: &breaker{
			threshold: cmp.Or(o.BreakerFailures, 5),
			cooldown:  cmp.Or(o.BreakerCooldown, time.Second),
			now:       time.Now,
		},
	}
	if s.buckets < 1 {
		s.buckets = 60
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	_, single := c.(*redis.Client)
	s.byTag = !single
	return s
}

// BreakerOpen reports whether the circuit breaker is failing operations fast, for readiness
// checks and metrics.
func (s *RedisStore) BreakerOpen() bool { return s.brk.open() }

// call is one script invocation: the budgets (indices into the caller's slice) of one hash
// tag, or all of them.
type call struct {
	idx  []int
	keys []string
	args []any
}

// group splits budgets into calls, one per budget key (the hash tag), or one for all on a
// single node.
func (s *RedisStore) group(bs []Budget) []call {
	keys := make([]string, len(bs))
	for i, b := range bs {
		keys[i] = storageKey(s.prefix, s.buckets, b)
	}
	if !s.byTag {
		idx := make([]int, len(bs))
		for i := range idx {
			idx[i] = i
		}
		return []call{{idx: idx, keys: keys}}
	}
	var calls []call
	byKey := map[string]int{}
	for i, b := range bs {
		j, ok := byKey[b.Key]
		if !ok {
			j = len(calls)
			byKey[b.Key] = j
			calls = append(calls, call{})
		}
		calls[j].idx = append(calls[j].idx, i)
		calls[j].keys = append(calls[j].keys, keys[i])
	}
	return calls
}

// Reserve implements Store. Store failures are returned as *StoreError.
//
// On a Cluster, budgets of different keys are reserved by separate scripts, one per key's
// slot; when one rejects, what the others took is given back. Between the two, another
// request can see those budgets briefly charged and be rejected for it: the window is one
// round trip long and errs on the side of rejecting.
func (s *RedisStore) Reserve(ctx context.Context, bs []Budget, n int64) (Reservation, []Status, error) {
	if err := validate(bs, n); err != nil {
		return Reservation{}, nil, err
	}
	if len(bs) == 0 {
		return Reservation{}, nil, nil
	}
	calls := s.group(bs)
	for i := range calls {
		c := &calls[i]
		c.args = append(make([]any, 0, 2+3*len(c.idx)), n, s.buckets)
		for _, j := range c.idx {
			b := bs[j]
			c.args = append(c.args, b.Records, b.Requests, bucketWidth(b.Window, s.buckets))
		}
	}
	res, errs, err := s.run(ctx, "reserve", reserveScript, calls)
	if err != nil {
		return Reservation{}, nil, err
	}

	st := make([]Status, len(bs))
	r := Reservation{budgets: append([]Budget(nil), bs...), n: n, at: make([]int64, len(bs))}
	rejected := false
	var taken []int // calls that took their budgets
	var firstErr error
	for i, c := range calls {
		if errs[i] != nil {
			firstErr = cmp.Or(firstErr, errs[i])
			continue
		}
		v := res[i]
		if len(v) != 1+5*len(c.idx) {
			firstErr = cmp.Or(firstErr, fmt.Errorf("reserve script returned %d values for %d budgets", len(v), len(c.idx)))
			continue
		}
		if v[0] == 1 {
			rejected = true
		} else {
			taken = append(taken, i)
		}
		for k, j := range c.idx {
			o := 1 + 5*k
			st[j] = newStatus(bs[j])
			st[j].Rejected = v[o] == 1
			st[j].Remaining = v[o+1]
			st[j].Reset = ms(v[o+2])
			st[j].RetryAfter = ms(v[o+3])
			r.at[j] = v[o+4]
		}
	}
	if !rejected && firstErr == nil {
		return r, st, nil
	}
	if len(taken) > 0 {
		s.release(ctx, r, calls, taken, st)
	}
	if rejected {
		for i := range st {
			if st[i].Name == "" { // its script failed: unknown, say nothing is left
				st[i] = newStatus(bs[i])
			}
		}
		return Reservation{}, st, nil
	}
	return Reservation{}, nil, &StoreError{Op: "reserve", Err: firstErr}
}

// release gives back what the calls in taken reserved, after another call rejected or
// failed, and writes the statuses after into st. A release that fails is logged: the budget
// then stays charged until the records leave the window, which errs on the side of limiting.
func (s *RedisStore) release(ctx context.Context, r Reservation, calls []call, taken []int, st []Status) {
	rc := make([]call, len(taken))
	for i, ci := range taken {
		rc[i] = s.settleCall(r, calls[ci], r.n, true)
	}
	res, errs, err := s.run(context.WithoutCancel(ctx), "release", settleScript, rc)
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "limit: release after rejection failed; budgets stay charged",
			slog.Any("error", err))
	}
	for i, c := range rc {
		if errs == nil || errs[i] != nil {
			continue
		}
		s.fillSettled(r.budgets, c, res[i], st)
	}
}

// settleCall builds the settle script call for the budgets of c: refund records back to the
// reservation's bucket (negative: charged now), and the request too when request is set.
func (s *RedisStore) settleCall(r Reservation, c call, refund int64, request bool) call {
	req := 0
	if request {
		req = 1
	}
	sc := call{idx: c.idx, keys: c.keys}
	sc.args = append(make([]any, 0, 3+4*len(c.idx)), s.buckets, refund, req)
	for _, j := range c.idx {
		b := r.budgets[j]
		sc.args = append(sc.args, b.Records, b.Requests, bucketWidth(b.Window, s.buckets), r.at[j])
	}
	return sc
}

// fillSettled writes the statuses the settle script returned for c into st.
func (s *RedisStore) fillSettled(bs []Budget, c call, v []int64, st []Status) bool {
	if len(v) != 2*len(c.idx) {
		return false
	}
	for k, j := range c.idx {
		st[j] = newStatus(bs[j])
		st[j].Remaining = v[2*k]
		st[j].Reset = ms(v[2*k+1])
	}
	return true
}

// Settle implements Store. Store failures are returned as *StoreError. The charge is not
// abandoned when ctx is cancelled (the records were returned to the client whether or not it
// is still there); it is bounded by RedisOptions.Timeout.
func (s *RedisStore) Settle(ctx context.Context, r Reservation, actual int64) ([]Status, error) {
	if actual < 0 {
		return nil, validate(nil, actual)
	}
	if len(r.budgets) == 0 {
		return nil, nil
	}
	calls := s.group(r.budgets)
	for i := range calls {
		calls[i] = s.settleCall(r, calls[i], r.n-actual, false)
	}
	res, errs, err := s.run(context.WithoutCancel(ctx), "settle", settleScript, calls)
	if err != nil {
		return nil, err
	}
	st := make([]Status, len(r.budgets))
	var failed error
	for i, c := range calls {
		if errs[i] == nil && !s.fillSettled(r.budgets, c, res[i], st) {
			errs[i] = fmt.Errorf("settle script returned %d values for %d budgets", len(res[i]), len(c.idx))
		}
		failed = cmp.Or(failed, errs[i])
	}
	if failed != nil {
		return nil, &StoreError{Op: "settle", Err: failed}
	}
	return st, nil
}

// run sends one script call per element of calls in one pipeline, reloading the script with
// EVAL where the server answers NOSCRIPT, all within the store's timeout and through the
// circuit breaker. It returns each call's integer reply or error; err is set (a *StoreError)
// only when the breaker refused the operation.
func (s *RedisStore) run(ctx context.Context, op string, sc *redis.Script, calls []call) ([][]int64, []error, error) {
	ok, probe := s.brk.allow()
	if !ok {
		return nil, nil, &StoreError{Op: op, Err: ErrBreakerOpen}
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	cmds := make([]*redis.Cmd, len(calls))
	_, _ = s.c.Pipelined(tctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = sc.EvalSha(tctx, p, c.keys, c.args...)
		}
		return nil
	})
	var reload []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			reload = append(reload, i)
		}
	}
	if len(reload) > 0 {
		_, _ = s.c.Pipelined(tctx, func(p redis.Pipeliner) error {
			for _, i := range reload {
				cmds[i] = sc.Eval(tctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
	}

	res := make([][]int64, len(calls))
	errs := make([]error, len(calls))
	failed := false
	for i, cmd := range cmds {
		res[i], errs[i] = cmd.Int64Slice()
		if errs[i] != nil {
			failed = true
			errs[i] = fmt.Errorf("redis: %w", errs[i])
		}
	}
	// A caller that went away says nothing about Redis: do not count it.
	s.brk.done(probe, failed, ctx.Err() == nil)
	return res, errs, nil
}
