package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestConcurrentAppend(t *testing.T) {
	const goroutines, each = 50, 200
	l := openLog(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				rec := testRecord(g*each+i, fmt.Sprintf("user-%d", g), fmt.Sprint(i))
				var err error
				if i%20 == 0 {
					err = l.AppendSync(context.Background(), rec)
				} else {
					err = l.Append(rec)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	closeLog(t, l)

	files := logFiles(t, l.path)
	verifyOK(t, files, goroutines*each)
	seen := map[string]bool{}
	for _, line := range readLines(t, l.path) {
		seen[decode(t, line).RequestID] = true
	}
	if len(seen) != goroutines*each {
		t.Errorf("distinct request ids = %d, want %d", len(seen), goroutines*each)
	}
}

func TestAppendSyncSetsChainValues(t *testing.T) {
	l := openLog(t, Options{})
	first, second := testRecord(1, "alice", "1"), testRecord(2, "alice", "2")
	appendSync(t, l, first)
	appendSync(t, l, second)
	if first.Prev != ZeroHash {
		t.Errorf("first record Prev = %s, want ZeroHash", first.Prev)
	}
	if second.Prev != first.Hash {
		t.Errorf("second record Prev = %s, want first Hash %s", second.Prev, first.Hash)
	}
	lines := readLines(t, l.path)
	if got := decode(t, lines[1]); got.Hash != second.Hash {
		t.Errorf("line 2 hash = %s, AppendSync reported %s", got.Hash, second.Hash)
	}
	// The line holds the record as given, in UTC, plus the chain values.
	want := *second
	want.Time = want.Time.UTC()
	if diff := cmp.Diff(want, decode(t, lines[1])); diff != "" {
		t.Errorf("line 2 (-want +got):\n%s", diff)
	}
}

func TestAppendSetsMissingTime(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	l := openLog(t, Options{Now: func() time.Time { return now }})
	rec := testRecord(1, "alice")
	rec.Time = time.Time{}
	appendSync(t, l, rec)
	got := decode(t, readLines(t, l.path)[0]).Time
	if !got.Equal(now) || got.Location() != time.UTC {
		t.Errorf("time of a record without one = %v, want %v in UTC", got, now)
	}
}

func TestFlushWindow(t *testing.T) {
	l := openLog(t, Options{FlushInterval: 20 * time.Millisecond})
	if err := l.Append(testRecord(1, "alice")); err != nil {
		t.Fatalf("Append() = %v", err)
	}
	waitFor(t, "the record to be written without Close", func() bool {
		b, _ := os.ReadFile(l.path)
		return strings.Contains(string(b), `"request_id":"req-1"`)
	})
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	const maxBytes = 4096
	l := openLog(t, Options{Path: path, MaxBytes: maxBytes})
	for i := range 60 {
		if err := l.Append(testRecord(i, "alice", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(t, l)

	// Rotation numbers continue after a restart; nothing is overwritten.
	l = openLog(t, Options{Path: path, MaxBytes: maxBytes})
	for i := 60; i < 100; i++ {
		appendSync(t, l, testRecord(i, "bob", fmt.Sprint(i)))
	}
	closeLog(t, l)

	files := logFiles(t, path)
	if len(files) < 4 {
		t.Fatalf("Files() = %v, want at least 3 rotated files and the active one", files)
	}
	if files[len(files)-1] != path {
		t.Errorf("last of Files() = %s, want the active file %s", files[len(files)-1], path)
	}
	n := 0
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > maxBytes {
			t.Errorf("%s is %d bytes, want at most MaxBytes %d", f, info.Size(), maxBytes)
		}
		for _, line := range readLines(t, f) {
			if got, want := decode(t, line).RequestID, fmt.Sprintf("req-%d", n); got != want {
				t.Fatalf("line %d of the log is %s, want %s (files out of order?)", n+1, got, want)
			}
			n++
		}
	}
	verifyOK(t, files, 100)

	// Any file alone starts mid-chain.
	res, err := Verify(context.Background(), files[1:])
	if err != nil || res.OK || res.File != files[1] || res.Line != 1 || !strings.Contains(res.Reason, "chain start") {
		t.Errorf("Verify(without the first file) = %+v, %v; want line 1 of %s, not the chain start", res, err, files[1])
	}
	first := decode(t, readLines(t, files[1])[0]).Prev
	res, err = VerifyFrom(context.Background(), files[1:], first)
	if err != nil || !res.OK {
		t.Errorf("VerifyFrom(without the first file, its last hash) = %+v, %v; want OK", res, err)
	}
}

func TestMaxFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path, MaxBytes: 2048, MaxFiles: 2})
	for i := range 50 {
		appendSync(t, l, testRecord(i, "alice"))
	}
	closeLog(t, l)
	files := logFiles(t, path)
	if len(files) != 3 {
		t.Fatalf("Files() = %v, want 2 rotated files and the active one", files)
	}
	start := decode(t, readLines(t, files[0])[0]).Prev
	res, err := VerifyFrom(context.Background(), files, start)
	if err != nil || !res.OK {
		t.Errorf("VerifyFrom(kept files) = %+v, %v; want OK", res, err)
	}
}

func TestReopenResumesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for round := range 3 {
		l := openLog(t, Options{Path: path})
		for i := range 5 {
			appendSync(t, l, testRecord(round*5+i, "alice"))
		}
		closeLog(t, l)
	}
	verifyOK(t, []string{path}, 15)
}

func TestReopenResumesFromRotatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path, MaxBytes: 2048})
	for i := range 20 {
		appendSync(t, l, testRecord(i, "alice"))
	}
	closeLog(t, l)
	// As after a crash between renaming the full file and creating the next one: no active file.
	lost := len(readLines(t, path))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	rotated := logFiles(t, path)
	newest := readLines(t, rotated[len(rotated)-1])

	l = openLog(t, Options{Path: path, MaxBytes: 2048})
	rec := testRecord(20, "alice")
	appendSync(t, l, rec)
	closeLog(t, l)
	if want := decode(t, newest[len(newest)-1]).Hash; rec.Prev != want {
		t.Errorf("first record after reopening has prev %s, want the newest rotated file's last hash %s", rec.Prev, want)
	}
	verifyOK(t, logFiles(t, path), 20-lost+1)
}

func TestOpenCutsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path})
	for i := range 5 {
		appendSync(t, l, testRecord(i, "alice"))
	}
	closeLog(t, l)
	good := len(readAll(t, path))
	torn := []byte(`{"time":"2026-11-28T09:00:06Z","request_id":"req-6","us`)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn)
	f.Close()

	res, err := Verify(context.Background(), []string{path})
	if err != nil || res.OK || res.Line != 6 || !strings.Contains(res.Reason, "unfinished") {
		t.Fatalf("Verify(torn file) = %+v, %v; want line 6 unfinished", res, err)
	}

	l = openLog(t, Options{Path: path})
	appendSync(t, l, testRecord(7, "alice"))
	closeLog(t, l)
	verifyOK(t, []string{path}, 7)
	ev := decode(t, readLines(t, path)[5])
	sum := sha256.Sum256(torn)
	want := map[string]string{
		"event":  EventTornLine,
		"file":   path,
		"offset": fmt.Sprint(good),
		"bytes":  fmt.Sprint(len(torn)),
		"sha256": hex.EncodeToString(sum[:]),
		"base64": base64.StdEncoding.EncodeToString(torn),
	}
	if diff := cmp.Diff(want, ev.Extra); diff != "" {
		t.Errorf("torn-line event extra (-want +got):\n%s", diff)
	}
}

func readAll(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRefusesDamagedEnd(t *testing.T) {
	tests := []struct {
		name   string
		damage func(lines [][]byte) [][]byte
	}{
		{"last line changed", func(lines [][]byte) [][]byte {
			last := lines[len(lines)-1]
			last[10] ^= 1
			return lines
		}},
		{"garbage line at the end", func(lines [][]byte) [][]byte {
			return append(lines, []byte("not json"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := openLog(t, Options{Path: path})
			for i := range 3 {
				appendSync(t, l, testRecord(i, "alice"))
			}
			closeLog(t, l)
			writeLines(t, path, tt.damage(readLines(t, path)))
			if l, err := Open(Options{Path: path}); !errors.Is(err, errNotTorn) {
				if err == nil {
					l.Close()
				}
				t.Errorf("Open(damaged file) = %v, want an error about the end of the file", err)
			}
		})
	}

	t.Run("unfinished line that is not a record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := os.WriteFile(path, []byte("some other file"), 0o640); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(Options{Path: path}); !errors.Is(err, errNotTorn) {
			if err == nil {
				l.Close()
			}
			t.Errorf("Open(not an audit file) = %v, want an error about the end of the file", err)
		}
		if b := readAll(t, path); string(b) != "some other file" {
			t.Errorf("Open changed a file that is not an audit log: %q", b)
		}
	})
}

func TestOpenLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path})
	if second, err := Open(Options{Path: path}); err == nil {
		second.Close()
		t.Fatal("second Open of the same path succeeded, want it locked out")
	}
	closeLog(t, l)
	l = openLog(t, Options{Path: path})
	closeLog(t, l)
}

func TestClosed(t *testing.T) {
	l := openLog(t, Options{})
	appendSync(t, l, testRecord(1, "alice"))
	closeLog(t, l)
	closeLog(t, l) // idempotent
	if err := l.Append(testRecord(2, "alice")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.AppendSync(context.Background(), testRecord(3, "alice")); !errors.Is(err, ErrClosed) {
		t.Errorf("AppendSync after Close = %v, want ErrClosed", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy after Close = %v, want ErrClosed", err)
	}
	verifyOK(t, []string{l.path}, 1)
}

func TestAppendSyncContext(t *testing.T) {
	l := openLog(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.AppendSync(ctx, testRecord(1, "alice"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendSync(cancelled ctx) = %v, want context.Canceled", err)
	}
	closeLog(t, l)
	written := len(readLines(t, l.path)) == 1
	mayBe := strings.Contains(err.Error(), "may still be written")
	if written != mayBe {
		t.Errorf("AppendSync(cancelled ctx) = %q and the record was written: %v", err, written)
	}
}

func TestAppendTooLarge(t *testing.T) {
	l := openLog(t, Options{})
	rec := testRecord(1, "alice")
	rec.Reason = strings.Repeat("x", maxLine)
	if err := l.Append(rec); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append(17 MiB record) = %v, want ErrTooLarge", err)
	}
	if err := l.AppendSync(context.Background(), rec); !errors.Is(err, ErrTooLarge) {
		t.Errorf("AppendSync(17 MiB record) = %v, want ErrTooLarge", err)
	}
}

// TestActiveFileRemoved removes the directory of the active file: writes must fail (root
// included), exports fail closed, and once the directory is back the log writes again,
// recording the lost lines as a gap that Verify reports.
func TestActiveFileRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	l := openLog(t, Options{Path: path})
	last := testRecord(1, "alice")
	appendSync(t, l, last)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	err := l.AppendSync(context.Background(), testRecord(2, "alice"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendSync(after the directory was removed) = %v, want ErrUnavailable", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy() = %v, want ErrUnavailable", err)
	}
	if err := l.AppendSync(context.Background(), testRecord(3, "alice")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendSync(while unavailable) = %v, want ErrUnavailable", err)
	}
	if err := l.Append(testRecord(4, "alice")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append(while unavailable) = %v, want ErrUnavailable", err)
	}
	time.Sleep(50 * time.Millisecond) // several failed retries
	if err := l.Healthy(); err == nil {
		t.Fatal("Healthy() = nil while the directory is missing")
	}

	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery", func() bool { return l.Healthy() == nil })
	appendSync(t, l, testRecord(5, "alice"))
	closeLog(t, l)

	lines := readLines(t, path)
	var got []string
	for _, line := range lines {
		r := decode(t, line)
		got = append(got, r.RequestID+"/"+r.Extra["event"])
	}
	// The gap comes first; the record from Append was held and written; the failed
	// AppendSync records were not.
	want := []string{"/" + EventGap, "req-4/", "req-5/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines after recovery (-want +got):\n%s", diff)
	}
	gap := decode(t, lines[0])
	if gap.Extra["want_prev"] != last.Hash || gap.Prev != last.Hash {
		t.Errorf("gap event prev = %s, want_prev = %s; want both the last hash written %s", gap.Prev, gap.Extra["want_prev"], last.Hash)
	}
	res, err := Verify(context.Background(), []string{path})
	if err != nil || res.OK || res.Line != 1 {
		t.Errorf("Verify(file after a gap) = %+v, %v; want line 1 broken", res, err)
	}
	res, err = VerifyFrom(context.Background(), []string{path}, last.Hash)
	if err != nil || !res.OK {
		t.Errorf("VerifyFrom(file after a gap, last hash) = %+v, %v; want OK", res, err)
	}
}

func TestFilesOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jsonl")
	names := []string{
		// Sequence numbers order the files even when the clock stepped back.
		"a.jsonl.20261128T100000Z.000002",
		"a.jsonl.20261128T090000Z.000003",
		"a.jsonl.20261128T110000Z.000001",
		"a.jsonl.20261128T120000Z.1000000",
		"a.jsonl.lock",
		"a.jsonl.20261128T120000Z.x",
		"a.jsonl.bak",
		"b.jsonl.20261128T120000Z.000004",
		"a.jsonl",
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		filepath.Join(dir, "a.jsonl.20261128T110000Z.000001"),
		filepath.Join(dir, "a.jsonl.20261128T100000Z.000002"),
		filepath.Join(dir, "a.jsonl.20261128T090000Z.000003"),
		filepath.Join(dir, "a.jsonl.20261128T120000Z.1000000"),
		path,
	}
	if diff := cmp.Diff(want, logFiles(t, path)); diff != "" {
		t.Errorf("Files() (-want +got):\n%s", diff)
	}
	if _, err := Files(filepath.Join(dir, "none.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Files(no log) = %v, want ErrNotExist", err)
	}
}

func TestEncodeLineKeepsChainLast(t *testing.T) {
	// Every field set: prev and hash must still be the last members.
	rec := testRecord(1, "alice", "1", "2")
	rec.TraceID, rec.Reason, rec.IDsCut, rec.Export = "t", "r", true, true
	rec.Limits = map[string]int64{"b": 1, "a": 2}
	rec.Extra = map[string]string{"z": "1", "a": "2"}
	rec.Prev, rec.Hash = "ignored", "ignored"
	line, err := encodeLine(rec)
	if err != nil {
		t.Fatalf("encodeLine() = %v", err)
	}
	chain(sha256.New(), line, ZeroHash)
	if _, why := checkLine(sha256.New(), line[:len(line)-1]); why != "" {
		t.Fatalf("checkLine(encoded line) = %s", why)
	}
	got := decode(t, line)
	if diff := cmp.Diff(*rec, got, cmpopts.IgnoreFields(Record{}, "Prev", "Hash")); diff != "" {
		t.Errorf("decoded line (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(line), `"query":"pageSize=100&q=<a>"`) {
		t.Errorf("line %s escapes HTML characters, want them as written", line)
	}
}
