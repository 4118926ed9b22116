package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fullDiskLog opens a log whose active file is a symlink to /dev/full: every write fails with
// ENOSPC, for root too. Removing the symlink is the disk coming back.
func fullDiskLog(t *testing.T, o Options) *Log {
	t.Helper()
	o.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.Symlink("/dev/full", o.Path); err != nil {
		t.Fatal(err)
	}
	return openLog(t, o)
}

func diskBack(t *testing.T, l *Log) {
	t.Helper()
	if err := os.Remove(l.path); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFull(t *testing.T) {
	l := fullDiskLog(t, Options{})
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy() before any write = %v, want nil", err)
	}
	err := l.AppendSync(context.Background(), testRecord(1, "alice"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("AppendSync(disk full) = %v, want ErrUnavailable wrapping ENOSPC", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy(disk full) = %v, want ErrUnavailable", err)
	}
	for i := 2; i <= 4; i++ {
		if err := l.Append(testRecord(i, "alice")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Append(disk full) = %v, want ErrUnavailable", err)
		}
	}
	time.Sleep(50 * time.Millisecond) // retries reopen /dev/full and fail again
	if err := l.AppendSync(context.Background(), testRecord(5, "alice")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendSync(disk still full) = %v, want ErrUnavailable", err)
	}

	diskBack(t, l)
	waitFor(t, "recovery", func() bool { return l.Healthy() == nil })
	appendSync(t, l, testRecord(6, "alice"))
	closeLog(t, l)

	// Records from Append waited in memory; failed AppendSync records were never written.
	var got []string
	for _, line := range readLines(t, l.path) {
		got = append(got, decode(t, line).RequestID)
	}
	if diff := cmp.Diff([]string{"req-2", "req-3", "req-4", "req-6"}, got); diff != "" {
		t.Errorf("lines after the disk came back (-want +got):\n%s", diff)
	}
	verifyOK(t, []string{l.path}, 4)
	if n := l.Dropped(); n != 0 {
		t.Errorf("Dropped() = %d, want 0", n)
	}
}

func TestDiskFullBacklogBound(t *testing.T) {
	l := fullDiskLog(t, Options{MaxBacklog: 3})
	if err := l.AppendSync(context.Background(), testRecord(0, "alice")); err == nil {
		t.Fatal("AppendSync(disk full) = nil")
	}
	for i := 1; i <= 10; i++ {
		l.Append(testRecord(i, "alice"))
	}
	waitFor(t, "drops", func() bool { return l.Dropped() == 7 })
	time.Sleep(50 * time.Millisecond) // retries reopen /dev/full and fail again

	diskBack(t, l)
	waitFor(t, "recovery", func() bool { return l.Healthy() == nil })
	closeLog(t, l)

	lines := readLines(t, l.path)
	var got []string
	for _, line := range lines {
		r := decode(t, line)
		got = append(got, r.RequestID+"/"+r.Extra["event"]+r.Extra["dropped"])
	}
	// The oldest records are kept, so the gap is one stretch of time, and the drop is recorded.
	want := []string{"/" + EventDropped + "7", "req-1/", "req-2/", "req-3/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines after the disk came back (-want +got):\n%s", diff)
	}
	verifyOK(t, []string{l.path}, 4)
	if n := l.Dropped(); n != 7 {
		t.Errorf("Dropped() = %d, want 7", n)
	}
}

func TestCloseWhileDiskFull(t *testing.T) {
	l := fullDiskLog(t, Options{RetryInterval: time.Hour})
	l.AppendSync(context.Background(), testRecord(0, "alice"))
	l.Append(testRecord(1, "alice"))
	err := l.Close()
	if err == nil || !strings.Contains(err.Error(), "1 records not written") {
		t.Errorf("Close(disk full, one record held) = %v, want it to report the record", err)
	}
}
