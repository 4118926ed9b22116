package limit

// window is one budget's sliding window counter in process: records and requests per bucket
// index (time in milliseconds divided by the bucket width). reserve.lua and settle.lua do the
// same on a Redis hash; the two must stay in step (the shared tests in store_test.go hold them
// to it).
type window struct {
	width   int64           // bucket width in milliseconds
	buckets int64           // buckets per window; the window counts buckets+1 of them
	rec     map[int64]int64 // bucket index → records
	req     map[int64]int64 // bucket index → requests
}

func newWindow(width, buckets int64) *window {
	return &window{width: width, buckets: buckets, rec: map[int64]int64{}, req: map[int64]int64{}}
}

// span is a window's view at one instant: the current bucket, the oldest bucket still
// counted and the sums over them.
type span struct {
	now, cur, oldest int64
	rec, req         int64
}

// at prunes buckets that have left the window and sums the rest. A bucket newer than the
// current one (a clock that went back) counts as current.
func (w *window) at(now int64) span {
	s := span{now: now, cur: now / w.width}
	s.oldest = s.cur - w.buckets
	s.rec = prune(w.rec, s.oldest)
	s.req = prune(w.req, s.oldest)
	return s
}

func prune(m map[int64]int64, oldest int64) int64 {
	var sum int64
	for i, v := range m {
		if i < oldest || v <= 0 {
			delete(m, i)
			continue
		}
		sum += v
	}
	return sum
}

// freeAt is the time in milliseconds at which bucket i leaves the window.
func (w *window) freeAt(i int64) int64 { return (i + w.buckets + 1) * w.width }

// wait is how long until need units have left the window, walking buckets oldest first; -1
// when they never will.
func (w *window) wait(m map[int64]int64, s span, need int64) int64 {
	if need <= 0 {
		return 0
	}
	var freed int64
	for i := s.oldest; i <= s.cur; i++ {
		freed += m[i]
		if freed >= need {
			return w.freeAt(i) - s.now
		}
	}
	// Buckets ahead of cur (a clock that went back) free last.
	for i, v := range m {
		if i > s.cur {
			freed += v
		}
	}
	if freed >= need {
		return w.freeAt(s.cur) - s.now
	}
	return -1
}

// reset is how long until every counted unit has left the window.
func (w *window) reset(s span) int64 {
	newest := int64(-1)
	for _, m := range []map[int64]int64{w.rec, w.req} {
		for i, v := range m {
			if v > 0 && i > newest {
				newest = min(i, s.cur)
			}
		}
	}
	if newest < 0 {
		return 0
	}
	return w.freeAt(newest) - s.now
}

// check returns the status of reserving n records (and a request) in b at s, without
// taking anything.
func (w *window) check(b Budget, s span, n int64) Status {
	st := w.status(b, s)
	retry := int64(0)
	if needRec := s.rec + max(n, 1) - b.Records; needRec > 0 {
		st.Rejected = true
		if max(n, 1) > b.Records {
			retry = -1
		} else {
			retry = w.wait(w.rec, s, needRec)
		}
	}
	if b.Requests > 0 {
		if needReq := s.req + 1 - b.Requests; needReq > 0 {
			st.Rejected = true
			if r := w.wait(w.req, s, needReq); r < 0 || retry >= 0 && r > retry {
				retry = r
			}
		}
	}
	if retry < 0 {
		retry = w.freeAt(s.cur) - s.now // never: the longest anything counts
	}
	st.RetryAfter = ms(retry)
	return st
}

// status is b's status at s, not rejected.
func (w *window) status(b Budget, s span) Status {
	st := newStatus(b)
	st.Remaining = max(0, b.Records-s.rec)
	st.Reset = ms(w.reset(s))
	return st
}
