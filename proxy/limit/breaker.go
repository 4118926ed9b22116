package limit

import (
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker. Closed, it lets every call through; after
// threshold failures in a row it opens and refuses calls for cooldown; then it lets one probe
// through (half-open), closing on the probe's success and opening again on its failure. A
// threshold below 1 disables it.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// allow reports whether a call may go ahead and whether it is the half-open probe, whose
// outcome must be reported with done.
func (b *breaker) allow() (ok, probe bool) {
	if b.threshold < 1 {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true, false
	}
	if b.probing || b.now().Before(b.openUntil) {
		return false, false
	}
	b.probing = true
	return true, true
}

// done records the outcome of a call allow let through. A call that ended for reasons of its
// own (its caller went away) is reported with counted false and changes nothing but the
// probe flag.
func (b *breaker) done(probe, failed, counted bool) {
	if b.threshold < 1 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if !counted {
		return
	}
	if !failed {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = b.now().Add(b.cooldown)
	}
}

// open reports whether the breaker is refusing calls now.
func (b *breaker) open() bool {
	if b.threshold < 1 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.threshold && (b.probing || b.now().Before(b.openUntil))
}
