package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var benchMB = flag.Int("audit.benchmb", 200, "size in MB of the log BenchmarkWho and BenchmarkVerify generate")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var (
	benchOnce  sync.Once
	benchDir   string
	benchFiles []string
	benchSize  int64
	benchLines int
	benchErr   error
)

// benchStart is the time of the first generated line; lines are a second apart.
var benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchLog generates a log of about -audit.benchmb MB shaped like a busy proxy's: 2000 users,
// list reads of 20–100 customer ids out of a million, spread over five files the way rotation
// spreads a large log. Record "10086" is read by every 5000th line; user "user-7" makes one
// line in 2000.
func benchLog(b *testing.B) ([]string, int64) {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "veil-audit-bench-")
		if benchErr != nil {
			return
		}
		path := filepath.Join(benchDir, "audit.jsonl")
		perFile := int64(*benchMB) << 20 / 5
		rng := rand.New(rand.NewPCG(1, 2))
		h := sha256.New()
		prev := ZeroHash
		n := 0
		for file := range 5 {
			f, err := os.Create(path)
			if err != nil {
				benchErr = err
				return
			}
			w := bufio.NewWriterSize(f, 1<<20)
			var size int64
			for size < perFile {
				ids := make([]string, 20+rng.IntN(81))
				for i := range ids {
					ids[i] = fmt.Sprint(100000 + rng.IntN(900000))
				}
				if n%5000 == 0 {
					ids[rng.IntN(len(ids))] = "10086"
				}
				rec := testRecord(n, fmt.Sprintf("user-%d", n%2000), ids...)
				rec.Time = benchStart.Add(time.Duration(n) * time.Second)
				line, err := encodeLine(rec)
				if err != nil {
					benchErr = err
					return
				}
				prev = chain(h, line, prev)
				w.Write(line)
				size += int64(len(line))
				n++
			}
			if err := w.Flush(); err != nil {
				benchErr = err
				return
			}
			if err := f.Close(); err != nil {
				benchErr = err
				return
			}
			benchSize += size
			if file < 4 {
				// Rotated a second after its last line.
				at := benchStart.Add(time.Duration(n) * time.Second)
				if benchErr = os.Rename(path, rotatedName(path, at, file+1)); benchErr != nil {
					return
				}
			}
		}
		benchLines = n
		benchFiles, benchErr = Files(path)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFiles, benchSize
}

func BenchmarkWho(b *testing.B) {
	files, size := benchLog(b)
	lastFifth := benchStart.Add(time.Duration(benchLines*4/5) * time.Second)
	queries := []struct {
		name string
		q    Query
	}{
		{"record", Query{Record: "10086"}},
		{"user", Query{User: "user-7"}},
		{"record-since-last-fifth", Query{Record: "10086", Since: lastFifth}},
	}
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			b.SetBytes(size)
			matches := 0
			for b.Loop() {
				matches = 0
				err := Who(context.Background(), files, qq.q, func(Match) error {
					matches++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			if matches == 0 {
				b.Fatalf("Who(%+v) found nothing", qq.q)
			}
			b.ReportMetric(float64(matches), "matches")
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	files, size := benchLog(b)
	b.SetBytes(size)
	for b.Loop() {
		res, err := Verify(context.Background(), files)
		if err != nil || !res.OK {
			b.Fatalf("Verify() = %+v, %v", res, err)
		}
	}
}

// BenchmarkAppend measures records per second through the writer from many goroutines, each
// batch written and fsynced.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			l, err := Open(Options{Path: filepath.Join(b.TempDir(), "audit.jsonl")})
			if err != nil {
				b.Fatal(err)
			}
			rec := testRecord(1, "alice", "1", "2", "3")
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				rec := *rec
				for pb.Next() {
					var err error
					if sync {
						err = l.AppendSync(context.Background(), &rec)
					} else {
						err = l.Append(&rec)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
