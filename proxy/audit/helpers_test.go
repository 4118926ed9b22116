package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testRecord is a read of ids by user.
func testRecord(i int, user string, ids ...string) *Record {
	return &Record{
		Time:           time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		RequestID:      fmt.Sprintf("req-%d", i),
		User:           user,
		Roles:          []string{"cs_agent"},
		ClientIP:       "10.1.2.3",
		Route:          "livecrm",
		Method:         "GET",
		Path:           "/api/customers",
		Query:          "pageSize=100&q=<a>",
		System:         "generic",
		Resource:       "customers",
		Action:         "list",
		Decision:       DecisionAllow,
		Status:         200,
		Records:        len(ids),
		IDs:            ids,
		Fields:         map[string]int{"phone": len(ids)},
		PolicyRevision: "rev-1",
		Mode:           "enforce",
		BytesOut:       1234,
		DurationMS:     1.5,
	}
}

// openLog opens a log at dir/audit.jsonl with a short flush window and retry interval, and
// closes it at the end of the test.
func openLog(t *testing.T, o Options) *Log {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 5 * time.Millisecond
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 10 * time.Millisecond
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%s) = %v", o.Path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendSync(t *testing.T, l *Log, rec *Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.AppendSync(ctx, rec); err != nil {
		t.Fatalf("AppendSync(%s) = %v", rec.RequestID, err)
	}
}

func closeLog(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
}

// readLines returns the lines of a file without their newlines.
func readLines(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i := range lines {
		lines[i] = bytes.TrimSuffix(lines[i], []byte("\n"))
	}
	return lines
}

func writeLines(t *testing.T, name string, lines [][]byte) {
	t.Helper()
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	if err := os.WriteFile(name, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, line []byte) Record {
	t.Helper()
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("decode %s: %v", line, err)
	}
	return r
}

func verifyOK(t *testing.T, files []string, wantLines int) VerifyResult {
	t.Helper()
	res, err := Verify(context.Background(), files)
	if err != nil {
		t.Fatalf("Verify(%v) error = %v", files, err)
	}
	if !res.OK || res.Lines != wantLines {
		t.Fatalf("Verify(%v) = %+v, want OK with %d lines", files, res, wantLines)
	}
	return res
}

func logFiles(t *testing.T, path string) []string {
	t.Helper()
	files, err := Files(path)
	if err != nil {
		t.Fatalf("Files(%s) = %v", path, err)
	}
	return files
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
