package spike

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// restrictScript adds or extends a restriction and prunes expired ones.
//
// KEYS[1] sorted set: user → until (ms); KEYS[2] hash: user → "since_ms\nby\nreason"
// ARGV    user, until_ms, now_ms, by, reason
// Returns the restriction's until: the later of ARGV's and the one in force.
var restrictScript = redis.NewScript(`
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if #stale > 0 then
  redis.call('ZREM', KEYS[1], unpack(stale))
  redis.call('HDEL', KEYS[2], unpack(stale))
end
local u = tonumber(ARGV[2])
local since = ARGV[3]
local cur = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if cur then
  if cur > u then u = cur end
  local old = redis.call('HGET', KEYS[2], ARGV[1])
  if old then since = string.match(old, '^(%d+)') or since end
end
redis.call('ZADD', KEYS[1], u, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], since .. '\n' .. ARGV[4] .. '\n' .. ARGV[5])
return u
`)

// releaseScript lifts a restriction. KEYS as restrictScript's; ARGV user, now_ms. Returns
// 1 if the user was restricted, 0 if not.
var releaseScript = redis.NewScript(`
local cur = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if cur == nil or cur <= tonumber(ARGV[2]) then return 0 end
return 1
`)

// RedisRestrictions keeps restrictions in Redis, shared by every replica: a sorted set of
// users by the time their restriction ends and a hash of who restricted them and why, both
// under the hash tag {restrictions}, and a pub/sub channel announcing changes. Each replica
// holds the set in memory, so Restricted costs a map lookup; Run keeps that copy fresh:
// within milliseconds of a change announced on the channel, and within Refresh (1 s) of any
// change if a message is lost.
type RedisRestrictions struct {
	c       redis.UniversalClient
	o       RestrictionsOptions
	log     *slog.Logger
	until   string // sorted set key
	info    string // hash key
	channel string
	timeout time.Duration

	snap   atomic.Pointer[snapshot]
	loadMu sync.Mutex
}

// snapshot is a replica's copy of the restrictions.
type snapshot struct {
	until  map[string]time.Time
	loaded time.Time // wall clock of the load, for staleness
}

// NewRedisRestrictions returns restrictions kept in Redis on c under prefix ("" means
// "veil"). Call Run to keep the local copy fresh; without it, Restricted loads the copy
// once and reports it stale after StaleAfter. logger receives refresh failures (nil
// discards them).
func NewRedisRestrictions(c redis.UniversalClient, prefix string, o RestrictionsOptions, logger *slog.Logger) *RedisRestrictions {
	prefix = cmp.Or(strings.NewReplacer("{", "", "}", "").Replace(prefix), "veil")
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 10 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RedisRestrictions{
		c: c, o: o, log: logger,
		until:   prefix + ":{restrictions}:until",
		info:    prefix + ":{restrictions}:info",
		channel: prefix + ":restrictions",
		timeout: 2 * time.Second,
	}
}

// Restricted implements Restrictions. The first call loads the copy from Redis; later ones
// read it without I/O.
func (r *RedisRestrictions) Restricted(ctx context.Context, user string) (bool, time.Time, error) {
	s := r.snap.Load()
	if s == nil {
		if err := r.load(ctx); err != nil {
			return false, time.Time{}, err
		}
		s = r.snap.Load()
	}
	until, ok := s.until[user]
	restricted := ok && r.o.now().Before(until)
	if !restricted {
		until = time.Time{}
	}
	if age := time.Since(s.loaded); age > r.o.StaleAfter {
		return restricted, until, fmt.Errorf("spike: restrictions loaded %s ago: %w", age.Round(time.Second), ErrStale)
	}
	return restricted, until, nil
}

// Len is the number of users restricted now, by the local copy (veil_restricted_users).
func (r *RedisRestrictions) Len() int {
	s := r.snap.Load()
	if s == nil {
		return 0
	}
	now := r.o.now()
	n := 0
	for _, until := range s.until {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// load replaces the local copy with the restrictions in force in Redis.
func (r *RedisRestrictions) load(ctx context.Context) error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	now := r.o.now()
	zs, err := r.c.ZRangeByScoreWithScores(ctx, r.until, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return fmt.Errorf("spike: load restrictions: %w", err)
	}
	m := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		if u, ok := z.Member.(string); ok {
			m[u] = time.UnixMilli(int64(z.Score))
		}
	}
	r.snap.Store(&snapshot{until: m, loaded: time.Now()})
	return nil
}

// Run keeps the local copy fresh until ctx ends: it reloads on every change announced on
// the channel and every Refresh. It returns nil when ctx ends.
func (r *RedisRestrictions) Run(ctx context.Context) error {
	ps := r.c.Subscribe(ctx, r.channel)
	defer ps.Close()
	msgs := ps.Channel()
	if err := r.load(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("restrictions: load failed; retrying", "err", err)
	}
	tick := time.NewTicker(r.o.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-msgs:
			if !ok {
				return nil
			}
		case <-tick.C:
		}
		if err := r.load(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("restrictions: refresh failed; keeping the last copy", "err", err)
		}
	}
}

// Restrict implements Restrictions. Every replica sees the change within seconds.
func (r *RedisRestrictions) Restrict(ctx context.Context, user string, until time.Time, reason, by string) error {
	now := r.o.now()
	if err := checkRestrict(user, until, now, by); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ms, err := restrictScript.Run(tctx, r.c, []string{r.until, r.info},
		user, until.UnixMilli(), now.UnixMilli(), oneLine(by), oneLine(reason)).Int64()
	if err != nil {
		return fmt.Errorf("spike: restrict %s: %w", user, err)
	}
	r.o.audit(AuditRestrict, user, restrictDetail(time.UnixMilli(ms), reason, by))
	r.announce(ctx, user)
	return nil
}

// Release implements Restrictions. Every replica sees the change within seconds.
func (r *RedisRestrictions) Release(ctx context.Context, user, by string) error {
	tctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := releaseScript.Run(tctx, r.c, []string{r.until, r.info}, user, r.o.now().UnixMilli()).Int64()
	if err != nil {
		return fmt.Errorf("spike: release %s: %w", user, err)
	}
	r.announce(ctx, user)
	if n == 0 {
		return fmt.Errorf("spike: release %s: %w", user, ErrNotRestricted)
	}
	r.o.audit(AuditRelease, user, fmt.Sprintf("by=%q", by))
	return nil
}

// announce tells every replica (this one first) that user's restriction changed. A lost
// announcement delays the others by at most Refresh.
func (r *RedisRestrictions) announce(ctx context.Context, user string) {
	ctx = context.WithoutCancel(ctx)
	if err := r.load(ctx); err != nil {
		r.log.Warn("restrictions: reload after a change failed", "user", user, "err", err)
	}
	tctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Publish(tctx, r.channel, user).Err(); err != nil {
		r.log.Warn("restrictions: announcing a change failed; replicas see it within the refresh interval", "user", user, "err", err)
	}
}

// List implements Restrictions.
func (r *RedisRestrictions) List(ctx context.Context) ([]Restriction, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	now := r.o.now()
	var zs *redis.ZSliceCmd
	var info *redis.MapStringStringCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		zs = p.ZRangeByScoreWithScores(ctx, r.until, &redis.ZRangeBy{
			Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
		})
		info = p.HGetAll(ctx, r.info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spike: list restrictions: %w", err)
	}
	out := make([]Restriction, 0, len(zs.Val()))
	for _, z := range zs.Val() {
		u, ok := z.Member.(string)
		if !ok {
			continue
		}
		x := Restriction{User: u, Until: time.UnixMilli(int64(z.Score))}
		parts := strings.SplitN(info.Val()[u], "\n", 3)
		if len(parts) == 3 {
			if ms, err := strconv.ParseInt(parts[0], 10, 64); err == nil {
				x.Since = time.UnixMilli(ms)
			}
			x.By, x.Reason = parts[1], parts[2]
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Restriction) int { return cmp.Compare(a.User, b.User) })
	return out, nil
}

// oneLine keeps a field of the info hash on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
