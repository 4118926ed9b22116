package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of RedisRevocationsOptions.
const (
	DefaultRevocationPoll     = time.Second
	DefaultRevocationMaxStale = 10 * time.Second
	defaultRevocationTimeout  = time.Second
	// neverScore is the score (an expiry in Unix milliseconds) of an entry that never lapses:
	// 2^53, exact as a float64, some 285,000 years away.
	neverScore = float64(1 << 53)
)

// RedisRevocationsOptions configures a RedisRevocations. Zero values take the defaults shown.
type RedisRevocationsOptions struct {
	// Prefix of the Redis names: the list is the sorted set "<prefix>:revoked" (entries
	// scored by their expiry in Unix milliseconds) and changes are announced on the channel
	// "<prefix>:revoked:changed". Zero: "veil".
	Prefix string
	// Poll is how often every replica re-reads the whole list, besides reading it on every
	// change announced over pub/sub (which a replica can miss while reconnecting). Zero: 1s.
	Poll time.Duration
	// MaxStale is how old the local copy may get (Redis unreachable) before Revoked fails for
	// users it does not list. Zero: 10s. It must exceed Poll.
	MaxStale time.Duration
	// Timeout bounds each Redis call. Zero: 1s.
	Timeout time.Duration
	// Logger receives sync failures. Nil: discard.
	Logger *slog.Logger

	now func() time.Time // tests' clock; nil: time.Now
}

// revocationView is a replica's copy of the run-time list.
type revocationView struct {
	entries map[string]float64 // entry ⇒ expiry in Unix ms (neverScore: never)
	synced  time.Time          // when the read that produced it began
}

// RedisRevocations is a revocation list shared by every replica through Redis. Revoked reads
// a local copy that is refreshed when any replica announces a change (pub/sub) and every Poll,
// so a revocation made on one replica is enforced by all within about a second, and by the
// Poll interval at worst. It is safe for concurrent use; Close stops its background work.
type RedisRevocations struct {
	static  staticList
	c       redis.UniversalClient
	key     string
	channel string
	poll    time.Duration
	stale   time.Duration
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	view   atomic.Pointer[revocationView]
	syncMu sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRedisRevocations reads the list once (a failure is logged, not returned: Revoked fails
// closed until a read succeeds) and starts following changes until ctx ends or Close.
func NewRedisRevocations(ctx context.Context, c redis.UniversalClient, o RedisRevocationsOptions) (*RedisRevocations, error) {
	if c == nil {
		return nil, errors.New("identity: redis revocations: no client")
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "veil"
	}
	r := &RedisRevocations{
		c:       c,
		key:     prefix + ":revoked",
		channel: prefix + ":revoked:changed",
		poll:    o.Poll,
		stale:   o.MaxStale,
		timeout: o.Timeout,
		log:     o.Logger,
		now:     o.now,
		done:    make(chan struct{}),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.poll == 0 {
		r.poll = DefaultRevocationPoll
	}
	if r.stale == 0 {
		r.stale = DefaultRevocationMaxStale
	}
	if r.timeout == 0 {
		r.timeout = defaultRevocationTimeout
	}
	if r.poll < 0 || r.stale < 0 || r.timeout < 0 {
		return nil, errors.New("identity: redis revocations: negative duration")
	}
	if r.stale <= r.poll {
		return nil, fmt.Errorf("identity: redis revocations: max stale %s must exceed poll %s", r.stale, r.poll)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := r.sync(ctx); err != nil {
		r.log.Warn("revocation list: first read failed; revocation checks fail until Redis answers", "err", err)
	}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.follow(ctx)
	return r, nil
}

// Close stops following changes.
func (r *RedisRevocations) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// follow re-reads the list on every announced change, on every (re)subscription, and every
// poll interval.
func (r *RedisRevocations) follow(ctx context.Context) {
	defer close(r.done)
	ps := r.c.Subscribe(ctx, r.channel)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-msgs:
			if !ok {
				return
			}
		case <-tick.C:
		}
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("revocation list: read failed", "err", err)
		}
	}
}

// sync replaces the local copy with the list as Redis holds it now.
func (r *RedisRevocations) sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	started := r.now()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	zs, err := r.c.ZRangeByScoreWithScores(ctx, r.key, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(started.UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.key, err)
	}
	v := &revocationView{entries: make(map[string]float64, len(zs)), synced: started}
	for _, z := range zs {
		if e, ok := z.Member.(string); ok {
			v.entries[e] = z.Score
		}
	}
	r.view.Store(v)
	return nil
}

// SetStatic replaces the static list (data.veil.revoked; call it on every policy reload).
// Invalid entries are skipped and reported in the error; the valid ones take effect
// regardless.
func (r *RedisRevocations) SetStatic(entries []string) error { return r.static.replace(entries) }

// Revoked reports whether user or tokenHash is listed, from the local copy. An entry it lists
// is revoked however old the copy; when the copy is older than MaxStale (or was never read) a
// user it does not list gets an error, for the caller to fail closed.
func (r *RedisRevocations) Revoked(_ context.Context, user, tokenHash string) (bool, error) {
	u, h := lookupKeys(user, tokenHash)
	if r.static.has(u, h) {
		return true, nil
	}
	now := r.now()
	v := r.view.Load()
	if v != nil {
		ms := float64(now.UnixMilli())
		for _, k := range []string{u, h} {
			if k == "" {
				continue
			}
			if exp, ok := v.entries[k]; ok && exp > ms {
				return true, nil
			}
		}
	}
	switch {
	case v == nil:
		return false, errors.New("the revocation list has not been read from Redis yet")
	case now.Sub(v.synced) > r.stale:
		return false, fmt.Errorf("the revocation list was last read from Redis %s ago", now.Sub(v.synced).Round(time.Millisecond))
	}
	return false, nil
}

// Revoke adds entry for every replica, for ttl when ttl > 0, and announces the change.
func (r *RedisRevocations) Revoke(ctx context.Context, entry string, ttl time.Duration) error {
	e, err := NormalizeRevocation(entry)
	if err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("revocation ttl %s is negative", ttl)
	}
	score := neverScore
	now := r.now()
	if ttl > 0 {
		score = float64(now.Add(ttl).UnixMilli())
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.c.TxPipelined(cctx, func(p redis.Pipeliner) error {
		p.ZAdd(cctx, r.key, redis.Z{Score: score, Member: e})
		p.ZRemRangeByScore(cctx, r.key, "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
		return nil
	}); err != nil {
		return fmt.Errorf("identity: revoke: %w", err)
	}
	return r.announce(ctx)
}

// Unrevoke removes entry for every replica and announces the change.
func (r *RedisRevocations) Unrevoke(ctx context.Context, entry string) error {
	e, err := NormalizeRevocation(entry)
	if err != nil {
		return err
	}
	if r.static.has(e) {
		return ErrStaticRevocation
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.ZRem(cctx, r.key, e).Err(); err != nil {
		return fmt.Errorf("identity: unrevoke: %w", err)
	}
	return r.announce(ctx)
}

// announce tells every replica to re-read the list, and re-reads it here.
func (r *RedisRevocations) announce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Publish(cctx, r.channel, "changed").Err(); err != nil {
		// The change is stored; replicas pick it up at their next poll.
		r.log.Warn("revocation list: announcing a change failed", "err", err)
	}
	return r.sync(ctx)
}

// List returns the entries in force, read from Redis now.
func (r *RedisRevocations) List(ctx context.Context) ([]Revocation, error) {
	now := r.now()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	zs, err := r.c.ZRangeByScoreWithScores(ctx, r.key, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("identity: list revocations: %w", err)
	}
	out := r.static.list()
	for _, z := range zs {
		e, ok := z.Member.(string)
		if !ok {
			continue
		}
		rev := Revocation{Entry: e}
		if z.Score < neverScore {
			rev.Expires = time.UnixMilli(int64(z.Score)).UTC()
		}
		out = append(out, rev)
	}
	return sortRevocations(out), nil
}

// Healthy reports whether the local copy is recent enough for Revoked to answer.
func (r *RedisRevocations) Healthy() error {
	_, err := r.Revoked(context.Background(), "", "")
	return err
}
