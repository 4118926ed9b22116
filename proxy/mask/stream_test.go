package mask

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// TestSplitReads feeds small documents split at every position, and through readers that
// return little at a time: the output and stats must equal the whole-buffer result.
func TestSplitReads(t *testing.T) {
	for _, name := range []string{"escaped_keys", "json_in_strings", "drop_null_redact_hash", "duplicate_keys", "positional_columns", "csv_basic", "csv_ragged_bom"} {
		t.Run(name, func(t *testing.T) {
			ext := ".json"
			if strings.HasPrefix(name, "csv_") {
				ext = ".csv"
			}
			plan, layout, lim := loadPlan(t, "testdata/"+name+".plan.json")
			in, err := os.ReadFile("testdata/" + name + ".in" + ext)
			if err != nil {
				t.Fatal(err)
			}
			p := mustCompile(t, plan, layout, lim)
			want, wantStats := rewriteString(t, p, in, bytes.NewReader(in))
			check := func(how string, r io.Reader) {
				t.Helper()
				got, st := rewriteString(t, p, in, r)
				if !bytes.Equal(got, want) {
					t.Errorf("%s: output differs (-whole +split):\n%s", how, cmp.Diff(string(want), string(got)))
				}
				if diff := cmp.Diff(wantStats, st); diff != "" {
					t.Errorf("%s: stats differ (-whole +split):\n%s", how, diff)
				}
			}
			for i := range len(in) + 1 {
				check(fmt.Sprintf("split at %d", i), io.MultiReader(bytes.NewReader(in[:i]), bytes.NewReader(in[i:])))
			}
			check("one byte", iotest.OneByteReader(bytes.NewReader(in)))
			check("half", iotest.HalfReader(bytes.NewReader(in)))
			check("data with EOF", iotest.DataErrReader(bytes.NewReader(in)))
		})
	}
}

// recordSource generates {"data":[record,record,...]} of about size bytes on the fly, so the
// document never exists in memory.
type recordSource struct {
	size, n int
	next    int // records generated
	buf     []byte
	off     int // buf[off:] is pending
	done    bool
	onRead  func()
}

func (s *recordSource) Read(p []byte) (int, error) {
	for s.off == len(s.buf) {
		s.buf, s.off = s.buf[:0], 0
		switch {
		case s.done:
			return 0, io.EOF
		case s.n >= s.size:
			s.buf = append(s.buf, `],"next":null}`...)
			s.done = true
			continue
		case s.next == 0:
			s.buf = append(s.buf, `{"total":-1,"data":[`...)
		default:
			s.buf = append(s.buf, ',')
		}
		var num [16]byte
		eight := strconv.AppendInt(num[:0], int64(1e8+s.next%1e8), 10)[1:] // 8 digits, zero-padded
		s.buf = strconv.AppendInt(append(s.buf, `{"id":`...), int64(s.next), 10)
		s.buf = append(append(append(s.buf, `,"name":"张三丰","phone":"138`...), eight...), `","owner":"alice","note":"请联系 139`...)
		s.buf = strconv.AppendInt(append(append(s.buf, eight...), ` 或 user`...), int64(s.next), 10)
		s.buf = strconv.AppendInt(append(s.buf, `@example.com","tags":["a","b"],"amount":`...), int64(s.next), 10)
		s.buf = append(s.buf, ".25}"...)
		s.next++
		if s.onRead != nil && s.next%5000 == 0 {
			s.onRead()
		}
	}
	n := copy(p, s.buf[s.off:])
	s.n += n
	s.off += n
	return n, nil
}

// countWriter counts bytes and keeps nothing.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// TestBoundedMemory rewrites a 50 MB records array generated on the fly, with a small
// MaxRecordBytes, and checks that the heap does not grow with the document.
func TestBoundedMemory(t *testing.T) {
	size := 50 << 20
	if raceEnabled {
		size = 20 << 20 // the race detector makes the walk ~10x slower
	}
	lim := Limits{MaxRecordBytes: 4 << 10}
	masking := mustCompile(t, Plan{
		Fields: map[string]Action{"phone": {Kind: Mask}, "name": {Kind: Mask, Format: "name"}},
		Rows:   []RowRule{{Field: "owner", Op: "eq", Value: []byte(`"alice"`)}},
		Detect: []string{"phone", "email"},
	}, Layout{Records: "data", HasRecords: true, ID: "id"}, lim)
	tests := []struct {
		name  string
		p     *Program
		check func(st Stats, records int) bool
	}{
		{"masking", masking, func(st Stats, n int) bool {
			return st.Records == n && st.Removed == 0 && st.Fields["phone"] == n && st.Detects["phone"] == n
		}},
		// Programs that change nothing skip what nothing reaches: the skipped spans must be
		// flushed as they go, in records and around them.
		{"counting", mustCompile(t, Plan{}, Layout{Records: "data", HasRecords: true, ID: "id"}, lim), func(st Stats, n int) bool {
			return st.Records == n
		}},
		{"no records", mustCompile(t, Plan{}, Layout{}, lim), func(st Stats, n int) bool {
			return st.Records == 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			peak := before.HeapAlloc
			var ms runtime.MemStats
			src := &recordSource{size: size, onRead: func() {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}}
			out := &countWriter{}
			st, err := tc.p.Rewrite(out, src)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			runtime.ReadMemStats(&after)
			if !tc.check(st, src.next) {
				t.Errorf("Rewrite(%d records) stats = records %d, removed %d, fields %v, detects %v", src.next, st.Records, st.Removed, st.Fields, st.Detects)
			}
			if out.n < int64(src.n)*9/10 {
				t.Errorf("Rewrite wrote %d bytes for %d in", out.n, src.n)
			}
			const bound = 8 << 20
			if growth := int64(peak) - int64(before.HeapAlloc); growth > bound {
				t.Errorf("heap grew by %d bytes while rewriting %d bytes, want < %d", growth, src.n, bound)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(size/16) {
				t.Errorf("Rewrite allocated %d bytes for a %d byte body, want it not to grow with the body", alloc, src.n)
			}
			t.Logf("%d bytes, %d records: heap peak +%d bytes, %d bytes allocated in total",
				src.n, src.next, int64(peak)-int64(before.HeapAlloc), after.TotalAlloc-before.TotalAlloc)
		})
	}
}

// TestConcurrentRewrite runs one Program from many goroutines (go test -race checks the
// sharing): every result must equal the sequential one.
func TestConcurrentRewrite(t *testing.T) {
	plan, layout, lim := loadPlan(t, "testdata/generic_odata_v4.plan.json")
	p := mustCompile(t, plan, layout, lim)
	inputs := []string{"generic_odata_v4", "generic_hal", "json_in_strings", "detect_chat_logs"}
	want := make(map[string][]byte)
	docs := make(map[string][]byte)
	for _, name := range inputs {
		in, err := os.ReadFile("testdata/" + name + ".in.json")
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = in
		want[name], _ = rewriteString(t, p, in, bytes.NewReader(in))
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 50 {
				name := inputs[(g+i)%len(inputs)]
				var out bytes.Buffer
				if _, err := p.Rewrite(&out, bytes.NewReader(docs[name])); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(out.Bytes(), want[name]) {
					errs <- fmt.Errorf("concurrent Rewrite(%s) = %q, want %q", name, out.Bytes(), want[name])
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
