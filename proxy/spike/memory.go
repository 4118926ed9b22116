package spike

import (
	"context"
	"sync"
	"time"
)

// MemoryStore keeps the detector's state in process, with RedisStore's semantics and time
// from its own clock. It serves one Veil instance only.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	start     time.Time
	subjects  map[string]*subjectState
	exports   map[string]time.Time // subject → marker expiry
	cooldowns map[string]time.Time // key → expiry
	lastSweep time.Time
}

type subjectState struct {
	open       bool
	m, c       int64 // open minute and its records
	ms         int
	ring       [7]bucket
	first      int64
	hasFirst   bool
	refs       []Ref
	slots      map[int]*slotStat
	denials    map[int64]int64
	expires    time.Time
	denyExpiry time.Time
}

// NewMemoryStore returns an empty store reading time from now (nil means time.Now) for
// expiry; the tallies carry their own times.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, subjects: map[string]*subjectState{},
		exports: map[string]time.Time{}, cooldowns: map[string]time.Time{}}
}

// Start implements Store.
func (s *MemoryStore) Start(_ context.Context, now time.Time) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start.IsZero() {
		s.start = now
	}
	return s.start, nil
}

// Observe implements Store. It never fails.
func (s *MemoryStore) Observe(_ context.Context, ts []Tally, p Params) ([]State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	out := make([]State, len(ts))
	for i, t := range ts {
		out[i] = s.observe(now, t, p)
	}
	return out, nil
}

// observe is observe.lua in Go.
func (s *MemoryStore) observe(now time.Time, t Tally, p Params) State {
	sub := s.subjects[t.Subject]
	if sub == nil || !now.Before(sub.expires) {
		sub = &subjectState{slots: map[int]*slotStat{}, denials: map[int64]int64{}}
		s.subjects[t.Subject] = sub
	}
	if !now.Before(sub.denyExpiry) {
		clear(sub.denials)
	}
	wrote := false
	now10 := floorDiv(t.Time.UnixMilli(), bucketWidth)
	if t.Records > 0 {
		switch {
		case !sub.open:
			sub.open, sub.m, sub.c, sub.ms = true, t.Minute, 0, t.Slot
		case t.Minute > sub.m:
			if sub.c > 0 {
				sub.slot(sub.ms).fold(float64(sub.c), p, t.Floor)
			}
			sub.m, sub.c, sub.ms = t.Minute, 0, t.Slot
		}
		sub.c += t.Records
		if !sub.hasFirst {
			sub.first, sub.hasFirst = sub.m, true
		}
		i := ((now10 % 7) + 7) % 7
		b := sub.ring[i]
		if !b.ok || b.idx < now10 {
			b = bucket{idx: now10, ok: true}
		}
		if b.idx == now10 {
			b.n += t.Records
			sub.ring[i] = b
		}
		wrote = true
	}
	if len(t.Refs) > 0 {
		refs := make([]Ref, len(t.Refs), len(t.Refs)+len(sub.refs))
		for i, r := range t.Refs {
			refs[i] = Ref{TraceID: cleanRef(r.TraceID), RequestID: cleanRef(r.RequestID)}
		}
		sub.refs = append(refs, sub.refs...)
		sub.refs = sub.refs[:min(len(sub.refs), maxRefs)]
		wrote = true
	}
	if wrote {
		sub.expires = now.Add(baselineTTL)
	}

	st := State{MinuteStart: minuteTime(t.Minute)}
	bslot := t.Slot
	if sub.open && t.Minute <= sub.m {
		st.Minute, st.MinuteStart, bslot = sub.c, minuteTime(sub.m), sub.ms
	}
	if sum, since := sliding(&sub.ring, t.Time.UnixMilli()); since >= 0 {
		st.Sliding, st.SlidingSince = sum, time.UnixMilli(since).UTC()
	}
	if b := sub.slots[bslot]; b != nil {
		st.Samples, st.Mean, st.Variance = b.n, b.mean, b.variance
	}
	if sub.hasFirst {
		st.FirstSeen = minuteTime(sub.first)
	}
	if t.Export {
		if exp, ok := s.exports[t.Subject]; !ok || !now.Before(exp) {
			st.FirstExport = true
		}
		s.exports[t.Subject] = now.Add(exportTTL)
	}
	if t.Denials > 0 {
		sub.denials[t.Minute] += t.Denials
		oldest := t.Minute - int64(p.DenyWindow/time.Minute) + 1
		since := int64(-1)
		for m, v := range sub.denials {
			if m < oldest {
				delete(sub.denials, m)
				continue
			}
			st.Denials += v
			if since < 0 || m < since {
				since = m
			}
		}
		st.DenialsSince = minuteTime(since)
		sub.denyExpiry = now.Add(p.DenyWindow + time.Minute)
		if sub.expires.Before(sub.denyExpiry) {
			sub.expires = sub.denyExpiry
		}
	}
	st.Refs = append([]Ref(nil), sub.refs...)
	return st
}

func (sub *subjectState) slot(i int) *slotStat {
	b := sub.slots[i]
	if b == nil {
		b = &slotStat{}
		sub.slots[i] = b
	}
	return b
}

// Claim implements Store. It never fails.
func (s *MemoryStore) Claim(_ context.Context, cs []Cooldown) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]bool, len(cs))
	for i, c := range cs {
		k := c.Subject + "\x00" + c.Name
		if exp, ok := s.cooldowns[k]; ok && now.Before(exp) {
			continue
		}
		s.cooldowns[k] = now.Add(c.TTL)
		out[i] = true
	}
	return out, nil
}

// sweep drops expired state, at most once a minute.
func (s *MemoryStore) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute && !now.Before(s.lastSweep) {
		return
	}
	s.lastSweep = now
	for k, sub := range s.subjects {
		if !now.Before(sub.expires) {
			delete(s.subjects, k)
		}
	}
	for k, exp := range s.exports {
		if !now.Before(exp) {
			delete(s.exports, k)
		}
	}
	for k, exp := range s.cooldowns {
		if !now.Before(exp) {
			delete(s.cooldowns, k)
		}
	}
}

// Len is the number of subjects the store holds, for tests.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subjects)
}
