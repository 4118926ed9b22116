package limit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilproxy/veil/proxy/limit"
)

func TestSetHeaders(t *testing.T) {
	hourly := limit.Status{Name: "user-customers-hourly", Limit: 1000, Window: time.Hour, Remaining: 950, Reset: 3540*time.Second + time.Millisecond}
	daily := limit.Status{Name: "dept-daily", Limit: 20000, Window: 24 * time.Hour, Remaining: 300, Reset: 80000 * time.Second}
	spent := limit.Status{Name: "user-customers-hourly", Limit: 1000, Window: time.Hour, Remaining: 5, Reset: 3000 * time.Second, RetryAfter: 1500*time.Second + 1, Rejected: true}
	tests := []struct {
		name string
		st   []limit.Status
		want http.Header
	}{
		{"none", nil, http.Header{}},
		{"one", []limit.Status{hourly}, http.Header{
			"Ratelimit-Policy":      {`"user-customers-hourly";q=1000;w=3600;veil-unit="records"`},
			"Ratelimit":             {`"user-customers-hourly";r=950;t=3541`},
			"X-Ratelimit-Limit":     {"1000"},
			"X-Ratelimit-Remaining": {"950"},
			"X-Ratelimit-Reset":     {"3541"},
		}},
		{"the tightest budget is the one with fewest records left", []limit.Status{hourly, daily}, http.Header{
			"Ratelimit-Policy":      {`"user-customers-hourly";q=1000;w=3600;veil-unit="records", "dept-daily";q=20000;w=86400;veil-unit="records"`},
			"Ratelimit":             {`"user-customers-hourly";r=950;t=3541, "dept-daily";r=300;t=80000`},
			"X-Ratelimit-Limit":     {"20000"},
			"X-Ratelimit-Remaining": {"300"},
			"X-Ratelimit-Reset":     {"80000"},
		}},
		{"a rejection wins and sets Retry-After", []limit.Status{daily, spent}, http.Header{
			"Ratelimit-Policy":      {`"dept-daily";q=20000;w=86400;veil-unit="records", "user-customers-hourly";q=1000;w=3600;veil-unit="records"`},
			"Ratelimit":             {`"dept-daily";r=300;t=80000, "user-customers-hourly";r=5;t=1501`},
			"X-Ratelimit-Limit":     {"1000"},
			"X-Ratelimit-Remaining": {"5"},
			"X-Ratelimit-Reset":     {"1501"},
			"Retry-After":           {"1501"},
		}},
		{"names are structured-field strings", []limit.Status{{Name: "a\"b\\c 导出", Limit: 1, Window: time.Millisecond, Rejected: true}}, http.Header{
			"Ratelimit-Policy":      {`"a\"b\\c ______";q=1;w=1;veil-unit="records"`},
			"Ratelimit":             {`"a\"b\\c ______";r=0;t=1`},
			"X-Ratelimit-Limit":     {"1"},
			"X-Ratelimit-Remaining": {"0"},
			"X-Ratelimit-Reset":     {"1"},
			"Retry-After":           {"1"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			limit.SetHeaders(h, tc.st)
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Errorf("SetHeaders(%+v) (-want +got):\n%s", tc.st, diff)
			}
		})
	}
}

func TestRejection(t *testing.T) {
	a := limit.Status{Name: "a", Rejected: true, RetryAfter: time.Second}
	b := limit.Status{Name: "b", Rejected: true, RetryAfter: time.Minute}
	c := limit.Status{Name: "c", RetryAfter: time.Hour}
	tests := []struct {
		st     []limit.Status
		want   string
		wantOK bool
	}{
		{nil, "", false},
		{[]limit.Status{c}, "", false},
		{[]limit.Status{a, c}, "a", true},
		{[]limit.Status{a, b, c}, "b", true},
		{[]limit.Status{b, a}, "b", true},
	}
	for _, tc := range tests {
		got, ok := limit.Rejection(tc.st)
		if got.Name != tc.want || ok != tc.wantOK {
			t.Errorf("Rejection(%v) = %q, %v; want %q, %v", tc.st, got.Name, ok, tc.want, tc.wantOK)
		}
	}
}
