package limit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetHeaders tells the client its budgets, in two styles at once:
//
//   - the IETF draft (draft-ietf-httpapi-ratelimit-headers-10/-11) structured fields, one
//     item per budget, in the order of st:
//     RateLimit-Policy: "user-customers-hourly";q=1000;w=3600;veil-unit="records"
//     RateLimit: "user-customers-hourly";r=950;t=3540
//     q is the budget's Records and w its Window in whole seconds; r is Remaining and t is
//     Reset, or RetryAfter for a rejected budget (the draft asks that Retry-After not fall
//     before the end of t). The quota unit is records, which the draft's unit registry does
//     not list, so it rides in the vendor parameter veil-unit.
//   - X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds from now, not
//     a timestamp) for the tightest budget: the rejected one with the longest RetryAfter, else
//     the one with the fewest records remaining.
//
// When a budget rejected, it also sets Retry-After to RetryAfter rounded up to whole seconds
// (at least 1). Durations are always rounded up. With no statuses it sets nothing.
func SetHeaders(h http.Header, st []Status) {
	if len(st) == 0 {
		return
	}
	policy := make([]string, len(st))
	state := make([]string, len(st))
	tight := st[0]
	for i, s := range st {
		name := sfString(s.Name)
		policy[i] = name + ";q=" + strconv.FormatInt(s.Limit, 10) + ";w=" +
			strconv.FormatInt(max(1, seconds(s.Window)), 10) + `;veil-unit="records"`
		state[i] = name + ";r=" + strconv.FormatInt(max(0, s.Remaining), 10) + ";t=" +
			strconv.FormatInt(effective(s), 10)
		if i > 0 && tighter(s, tight) {
			tight = s
		}
	}
	h.Set("RateLimit-Policy", strings.Join(policy, ", "))
	h.Set("RateLimit", strings.Join(state, ", "))
	h.Set("X-RateLimit-Limit", strconv.FormatInt(tight.Limit, 10))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(max(0, tight.Remaining), 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(effective(tight), 10))
	if r, ok := Rejection(st); ok {
		h.Set("Retry-After", strconv.FormatInt(max(1, seconds(r.RetryAfter)), 10))
	}
}

// effective is the seconds a status' remaining records hold for: RetryAfter when rejected,
// else Reset.
func effective(s Status) int64 {
	if s.Rejected {
		return max(1, seconds(s.RetryAfter))
	}
	return seconds(s.Reset)
}

// tighter reports whether a is a tighter budget than b.
func tighter(a, b Status) bool {
	switch {
	case a.Rejected != b.Rejected:
		return a.Rejected
	case a.Rejected:
		return a.RetryAfter > b.RetryAfter
	case a.Remaining != b.Remaining:
		return a.Remaining < b.Remaining
	default:
		return a.Reset > b.Reset
	}
}

// seconds rounds d up to whole seconds, 0 for non-positive d.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString renders s as a structured-field String (RFC 8941 §3.3.3): printable ASCII with
// '"' and '\' escaped; any other byte becomes '_'.
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
