package spike

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed observe.lua
	observeLua    string
	observeScript = redis.NewScript(observeLua)
)

// RedisStore keeps the detector's state in Redis (single node, Sentinel or Cluster), shared
// by every replica. Keys are hash-tagged by subject, so one script touches one slot:
//
//	<prefix>:{user:alice}:spike             hash: minute and 10 s counters, baseline per hour of week, recent refs (TTL 30 d)
//	<prefix>:{user:alice}:spike:export      the first-export marker (TTL 400 d)
//	<prefix>:{user:alice}:spike:deny        denials per minute in the probing window (TTL window + 1 min)
//	<prefix>:{user:alice}:spike:cd:<rule>   a cooldown (SET NX PX)
//	<prefix>:{spike}:start                  when detection began
//
// A flush's tallies are one pipeline: one round trip on a single node, one per node involved
// on a Cluster.
type RedisStore struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// NewRedisStore returns a store on c; prefix starts every key ("" means "veil"; braces are
// dropped, the hash tag is the subject).
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{
		c:       c,
		prefix:  cmp.Or(strings.NewReplacer("{", "", "}", "").Replace(prefix), "veil"),
		timeout: 2 * time.Second,
	}
}

// subjectKey is prefix:{subject}:spike, braces and '%' in subject percent-encoded so that
// nothing else becomes the hash tag.
func (s *RedisStore) subjectKey(subject string) string {
	return s.prefix + ":{" + escapeKey(subject) + "}:spike"
}

var keyEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeKey(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	return keyEscaper.Replace(s)
}

// Start implements Store.
func (s *RedisStore) Start(ctx context.Context, now time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.prefix + ":{spike}:start"
	var get *redis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, key, now.UnixMilli(), 0)
		get = p.Get(ctx, key)
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("spike: start: %w", err)
	}
	ms, err := strconv.ParseInt(get.Val(), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("spike: start: %s holds %q: %w", key, get.Val(), err)
	}
	return time.UnixMilli(ms), nil
}

// Observe implements Store.
func (s *RedisStore) Observe(ctx context.Context, ts []Tally, p Params) ([]State, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(ts))
	for i, t := range ts {
		k := s.subjectKey(t.Subject)
		export := 0
		if t.Export {
			export = 1
		}
		calls[i] = call{
			keys: []string{k, k + ":export", k + ":deny"},
			args: []any{
				t.Time.UnixMilli(), t.Minute, t.Slot, t.Records, t.Denials, export, encodeRefs(t.Refs),
				p.Alpha, p.K, t.Floor, p.MinSamples, int64(p.DenyWindow / time.Minute),
				baselineTTL.Milliseconds(), exportTTL.Milliseconds(),
			},
		}
	}
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = s.c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = observeScript.EvalSha(ctx, pl, c.keys, c.args...)
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
		_, _ = s.c.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, i := range reload {
				cmds[i] = observeScript.Eval(ctx, pl, calls[i].keys, calls[i].args...)
			}
			return nil
		})
	}
	out := make([]State, len(ts))
	var errs []error
	for i, cmd := range cmds {
		st, err := parseState(cmd)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ts[i].Subject, err))
			continue
		}
		out[i] = st
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("spike: observe: %w", err)
	}
	return out, nil
}

// parseState reads observe.lua's reply.
func parseState(cmd *redis.Cmd) (State, error) {
	v, err := cmd.Slice()
	if err != nil {
		return State{}, err
	}
	if len(v) != 12 {
		return State{}, fmt.Errorf("observe script returned %d values, want 12", len(v))
	}
	var n [12]int64
	for _, i := range []int{0, 1, 2, 3, 4, 7, 8, 9, 10} {
		x, ok := v[i].(int64)
		if !ok {
			return State{}, fmt.Errorf("observe script value %d is %T, want an integer", i, v[i])
		}
		n[i] = x
	}
	mean, err1 := parseFloat(v[5])
	variance, err2 := parseFloat(v[6])
	refs, ok := v[11].(string)
	if err := errors.Join(err1, err2); err != nil || !ok {
		return State{}, fmt.Errorf("observe script returned a bad mean, variance or refs: %v", v[5:])
	}
	st := State{
		Minute: n[0], MinuteStart: minuteTime(n[1]), Sliding: n[2], Samples: n[4],
		Mean: mean, Variance: variance, FirstExport: n[8] == 1, Denials: n[9],
		Refs: decodeRefs(refs),
	}
	if n[3] >= 0 {
		st.SlidingSince = time.UnixMilli(n[3]).UTC()
	}
	if n[7] >= 0 {
		st.FirstSeen = minuteTime(n[7])
	}
	if n[10] >= 0 {
		st.DenialsSince = minuteTime(n[10])
	}
	return st, nil
}

func parseFloat(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%T is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// Claim implements Store.
func (s *RedisStore) Claim(ctx context.Context, cs []Cooldown) ([]bool, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmds := make([]*redis.BoolCmd, len(cs))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range cs {
			key := s.subjectKey(c.Subject) + ":cd:" + escapeKey(c.Name)
			cmds[i] = p.SetNX(ctx, key, 1, c.TTL)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spike: claim cooldowns: %w", err)
	}
	out := make([]bool, len(cs))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
