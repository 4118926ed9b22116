package limit

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := time.Unix(0, 0)
	b := &breaker{threshold: 2, cooldown: time.Second, now: func() time.Time { return now }}
	step := func(what string, wantOK, wantProbe bool) bool {
		t.Helper()
		ok, probe := b.allow()
		if ok != wantOK || probe != wantProbe {
			t.Fatalf("%s: allow() = %v, %v; want %v, %v", what, ok, probe, wantOK, wantProbe)
		}
		return probe
	}
	p := step("closed", true, false)
	b.done(p, true, true)
	p = step("one failure", true, false)
	b.done(p, false, true) // a success resets the count
	b.done(step("closed again", true, false), true, true)
	b.done(step("one failure again", true, false), true, true)
	if !b.open() {
		t.Fatal("open() = false after 2 failures in a row, want true")
	}
	step("open", false, false)
	now = now.Add(time.Second)
	p = step("cooldown over: probe", true, true)
	step("while the probe runs", false, false)
	b.done(p, true, true)
	step("probe failed: open again", false, false)
	now = now.Add(time.Second)
	p = step("second probe", true, true)
	b.done(p, false, false) // the caller went away: not counted, still open
	p = step("third probe", true, true)
	b.done(p, false, true)
	if b.open() {
		t.Fatal("open() = true after a successful probe, want false")
	}
	step("closed after the probe", true, false)

	off := &breaker{threshold: -1, now: time.Now}
	for range 10 {
		ok, _ := off.allow()
		off.done(false, true, true)
		if !ok || off.open() {
			t.Fatal("a disabled breaker refused a call")
		}
	}
}

func TestStorageKeyEscapes(t *testing.T) {
	b := Budget{Name: "n{1}", Key: "user:{x}%", Window: time.Hour}
	if got, want := storageKey("veil", 60, b), "veil:{user:%7Bx%7D%25}:n%7B1%7D:1h0m0s:60"; got != want {
		t.Errorf("storageKey(%+v) = %q, want %q", b, got, want)
	}
}

func TestBucketWidth(t *testing.T) {
	for _, tc := range []struct {
		window  time.Duration
		buckets int64
		want    int64
	}{
		{time.Hour, 60, 60000},
		{2 * time.Second, 60, 34},
		{time.Microsecond, 60, 1},
		{1500 * time.Microsecond, 1, 2},
	} {
		if got := bucketWidth(tc.window, tc.buckets); got != tc.want {
			t.Errorf("bucketWidth(%v, %d) = %d, want %d", tc.window, tc.buckets, got, tc.want)
		}
	}
}

func TestMemorySweep(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMemory(func() time.Time { return now })
	for _, user := range []string{"a", "b", "c"} {
		if _, _, err := m.Reserve(t.Context(), []Budget{{Name: "n", Key: user, Window: time.Minute, Records: 10}}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", m.Len())
	}
	now = now.Add(2 * time.Minute)
	if _, _, err := m.Reserve(t.Context(), []Budget{{Name: "n", Key: "d", Window: time.Hour, Records: 10}}, 1); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Errorf("Len() after the windows emptied = %d, want 1", m.Len())
	}
}
