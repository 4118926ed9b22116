package limit

import (
	"context"
	"sync"
	"time"
)

// memoryBuckets is the MemoryStore's number of buckets per window, RedisOptions' default.
const memoryBuckets = 60

// sweepEvery is how often (by the store's clock) MemoryStore drops windows nothing is
// counted in any more, so that a stream of distinct users does not grow it without bound.
const sweepEvery = time.Minute

// MemoryStore keeps budgets in process, with the same semantics as RedisStore and time from
// its own clock. It serves one Veil instance only: replicas do not share it.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	windows   map[string]*window
	lastSweep int64
}

// NewMemory returns an empty in-process store reading time from now (nil means time.Now).
func NewMemory(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, windows: map[string]*window{}}
}

// Reserve implements Store. It never returns a *StoreError.
func (m *MemoryStore) Reserve(_ context.Context, bs []Budget, n int64) (Reservation, []Status, error) {
	if err := validate(bs, n); err != nil {
		return Reservation{}, nil, err
	}
	if len(bs) == 0 {
		return Reservation{}, nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixMilli()
	m.sweep(now)

	ws := make([]*window, len(bs))
	spans := make([]span, len(bs))
	st := make([]Status, len(bs))
	rejected := false
	for i, b := range bs {
		ws[i] = m.window(b)
		spans[i] = ws[i].at(now)
		st[i] = ws[i].check(b, spans[i], n)
		rejected = rejected || st[i].Rejected
	}
	if rejected {
		for i := range st {
			if !st[i].Rejected {
				st[i].RetryAfter = 0
			}
		}
		return Reservation{}, st, nil
	}
	r := Reservation{budgets: append([]Budget(nil), bs...), n: n, at: make([]int64, len(bs))}
	for i, b := range bs {
		w, s := ws[i], spans[i]
		if n > 0 {
			w.rec[s.cur] += n
			s.rec += n
		}
		if b.Requests > 0 {
			w.req[s.cur]++
			s.req++
		}
		r.at[i] = s.cur
		st[i] = w.status(b, s)
	}
	return r, st, nil
}

// Settle implements Store. It never returns a *StoreError.
func (m *MemoryStore) Settle(_ context.Context, r Reservation, actual int64) ([]Status, error) {
	if actual < 0 {
		return nil, validate(nil, actual)
	}
	if len(r.budgets) == 0 {
		return nil, nil
	}
	refund := r.n - actual // negative: charge more
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixMilli()
	st := make([]Status, len(r.budgets))
	for i, b := range r.budgets {
		w := m.window(b)
		s := w.at(now)
		at := r.at[i]
		if refund > 0 && at >= s.oldest {
			s.rec -= take(w.rec, at, refund)
		}
		if refund < 0 {
			w.rec[s.cur] -= refund
			s.rec -= refund
		}
		st[i] = w.status(b, s)
	}
	return st, nil
}

// take removes up to v from bucket i of m and returns what it removed.
func take(m map[int64]int64, i, v int64) int64 {
	d := min(m[i], v)
	if m[i]-d <= 0 {
		delete(m, i)
	} else {
		m[i] -= d
	}
	return max(d, 0)
}

// window returns b's window, creating it.
func (m *MemoryStore) window(b Budget) *window {
	k := storageKey("", memoryBuckets, b)
	w := m.windows[k]
	if w == nil {
		w = newWindow(bucketWidth(b.Window, memoryBuckets), memoryBuckets)
		m.windows[k] = w
	}
	return w
}

// sweep drops the windows that count nothing at now, at most once per sweepEvery.
func (m *MemoryStore) sweep(now int64) {
	if now-m.lastSweep < sweepEvery.Milliseconds() && now >= m.lastSweep {
		return
	}
	m.lastSweep = now
	for k, w := range m.windows {
		if s := w.at(now); s.rec == 0 && s.req == 0 {
			delete(m.windows, k)
		}
	}
}

// Len is the number of budget windows the store holds, for tests and metrics.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.windows)
}
