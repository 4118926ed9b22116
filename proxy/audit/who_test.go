package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var whoStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// whoLog writes a month of reads, one a day, rotating into several files, and returns the
// files in chain order.
func whoLog(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	now := whoStart
	l := openLog(t, Options{Path: path, MaxBytes: 4096, Now: func() time.Time { return now }})
	reads := []struct {
		user string
		ids  []string
	}{
		{"alice", []string{"10086", "10087"}},
		{"bob", []string{"100861"}},       // contains 10086, is not it
		{"carol", []string{"x10086"}},     // likewise
		{"dave", []string{"alice"}},       // a record id that looks like a user
		{"eve", []string{"1", "10086"}},   // 10086 not first
		{"alice", nil},                    // no ids
		{`mal"lory`, []string{"10086"}},   // a quote in the user
		{"frank", []string{"<10086&>"}},   // HTML characters, not escaped in the file
		{"alice", []string{"20000"}},      // another record
		{"bob", []string{"10086", "999"}}, // the record again, later
	}
	for day := range 30 {
		now = whoStart.Add(time.Duration(day) * 24 * time.Hour)
		r := reads[day%len(reads)]
		rec := testRecord(day, r.user, r.ids...)
		rec.Time = now
		appendSync(t, l, rec)
	}
	// The id elsewhere in the line, and as part of an id: the exact match rejects it.
	now = whoStart.Add(30 * 24 * time.Hour)
	rec := testRecord(30, "10086", "100860")
	rec.Time = now
	appendSync(t, l, rec)
	closeLog(t, l)
	files := logFiles(t, path)
	if len(files) < 3 {
		t.Fatalf("Files() = %v, want at least 3", files)
	}
	return files
}

type hit struct {
	User string
	Day  int
}

func who(t *testing.T, files []string, q Query) []hit {
	t.Helper()
	var got []hit
	line := map[string]int{}
	err := Who(context.Background(), files, q, func(m Match) error {
		if m.Line <= line[m.File] {
			t.Errorf("match at %s:%d after line %d: out of order", m.File, m.Line, line[m.File])
		}
		line[m.File] = m.Line
		if lines := readLines(t, m.File); string(lines[m.Line-1]) != string(m.Raw) {
			t.Errorf("Match at %s:%d: Raw is not that line", m.File, m.Line)
		}
		got = append(got, hit{m.Record.User, int(m.Record.Time.Sub(whoStart) / (24 * time.Hour))})
		return nil
	})
	if err != nil {
		t.Fatalf("Who(%+v) = %v", q, err)
	}
	return got
}

func TestWho(t *testing.T) {
	files := whoLog(t)
	day := func(d int) time.Time { return whoStart.Add(time.Duration(d) * 24 * time.Hour) }
	tests := []struct {
		name string
		q    Query
		want []hit
	}{
		{
			name: "who read record 10086",
			q:    Query{Record: "10086"},
			want: []hit{{"alice", 0}, {"eve", 4}, {`mal"lory`, 6}, {"bob", 9}, {"alice", 10}, {"eve", 14}, {`mal"lory`, 16}, {"bob", 19}, {"alice", 20}, {"eve", 24}, {`mal"lory`, 26}, {"bob", 29}},
		},
		{
			name: "who read 10086 since day 20",
			q:    Query{Record: "10086", Since: day(20)},
			want: []hit{{"alice", 20}, {"eve", 24}, {`mal"lory`, 26}, {"bob", 29}},
		},
		{
			name: "who read 10086 between days 5 and 17",
			q:    Query{Record: "10086", Since: day(5), Until: day(17)},
			want: []hit{{`mal"lory`, 6}, {"bob", 9}, {"alice", 10}, {"eve", 14}, {`mal"lory`, 16}},
		},
		{
			name: "what did alice read",
			q:    Query{User: "alice"},
			want: []hit{{"alice", 0}, {"alice", 5}, {"alice", 8}, {"alice", 10}, {"alice", 15}, {"alice", 18}, {"alice", 20}, {"alice", 25}, {"alice", 28}},
		},
		{
			name: "record id that looks like a user",
			q:    Query{Record: "alice"},
			want: []hit{{"dave", 3}, {"dave", 13}, {"dave", 23}},
		},
		{
			name: "user with a quote",
			q:    Query{User: `mal"lory`, Since: day(10)},
			want: []hit{{`mal"lory`, 16}, {`mal"lory`, 26}},
		},
		{
			name: "id with HTML characters",
			q:    Query{Record: "<10086&>", Until: day(10)},
			want: []hit{{"frank", 7}},
		},
		{
			name: "user and record",
			q:    Query{User: "bob", Record: "10086"},
			want: []hit{{"bob", 9}, {"bob", 19}, {"bob", 29}},
		},
		{
			name: "time only",
			q:    Query{Since: day(27), Until: day(29)},
			want: []hit{{"frank", 27}, {"alice", 28}},
		},
		{
			name: "nobody",
			q:    Query{Record: "424242"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, who(t, files, tt.q)); diff != "" {
				t.Errorf("Who(%+v) (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestWhoSkipsFilesRotatedBeforeSince(t *testing.T) {
	files := whoLog(t)
	// Spoil the oldest file: a line that contains the id, has a time after Since, but is not
	// JSON. Reading the file makes Who fail, so a Since after its rotation proves it was not
	// read.
	oldest := files[0]
	at, _, ok := parseRotatedPath(oldest)
	if !ok {
		t.Fatalf("parseRotatedPath(%s) not a rotated file", oldest)
	}
	f, err := os.OpenFile(oldest, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"ids":["10086"],"time":"`+whoStart.AddDate(1, 0, 0).Format(time.RFC3339)+`", broken`)
	f.Close()

	if err := Who(context.Background(), files, Query{Record: "10086"}, func(Match) error { return nil }); err == nil {
		t.Fatal("Who(spoiled file) = nil, want the file to be read and fail")
	}
	since := at.Add(rotationSlack + time.Second)
	got := who(t, files, Query{Record: "10086", Since: since})
	for _, h := range got {
		if d := whoStart.Add(time.Duration(h.Day) * 24 * time.Hour); d.Before(since) {
			t.Errorf("Who(since %v) returned day %d", since, h.Day)
		}
	}
	if len(got) == 0 {
		t.Errorf("Who(since %v) = nothing, want the later reads", since)
	}
}

func TestWhoStops(t *testing.T) {
	files := whoLog(t)
	stop := errors.New("enough")
	calls := 0
	err := Who(context.Background(), files, Query{Record: "10086"}, func(Match) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Who(fn fails) = %v after %d calls, want %v after 1", err, calls, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Who(ctx, files, Query{Record: "10086"}, func(Match) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Who(cancelled) = %v, want context.Canceled", err)
	}
	if err := Who(context.Background(), []string{filepath.Join(t.TempDir(), "none")}, Query{}, func(Match) error { return nil }); err == nil {
		t.Error("Who(missing file) = nil error")
	}
}

func TestWhoLineNumbersAcrossBlocks(t *testing.T) {
	// Lines spread over several read blocks: line numbers must still be exact.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path})
	const n = 12000
	for i := range n {
		ids := []string{fmt.Sprint(i)}
		if i%997 == 0 {
			ids = append(ids, "needle")
		}
		rec := testRecord(i, "u", ids...)
		rec.Reason = fmt.Sprintf("%0400d", i) // ~800-byte lines: several 4 MiB blocks
		if err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(t, l)
	var got, want []int
	for i := 0; i < n; i += 997 {
		want = append(want, i+1)
	}
	err := Who(context.Background(), []string{path}, Query{Record: "needle"}, func(m Match) error {
		got = append(got, m.Line)
		if m.Record.RequestID != fmt.Sprintf("req-%d", m.Line-1) {
			t.Errorf("line %d holds %s", m.Line, m.Record.RequestID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Who line numbers (-want +got):\n%s", diff)
	}
}
