package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chainFile writes n records to a fresh log and returns its path and lines.
func chainFile(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path})
	for i := range n {
		appendSync(t, l, testRecord(i+1, "user-"+string(rune('a'+i)), "10086"))
	}
	closeLog(t, l)
	return path, readLines(t, path)
}

// forge returns a line with the given body (everything up to and including the prev member)
// and a correct hash, as someone recomputing the chain would write it.
func forge(body, prev string) []byte {
	sum := sha256.Sum256([]byte(prev + body + "}"))
	return []byte(body + `,"hash":"` + hex.EncodeToString(sum[:]) + `"}`)
}

func TestVerifyTamper(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		wantLine int
		reason   string
	}{
		{
			name: "one byte changed",
			tamper: func(lines [][]byte) [][]byte {
				lines[3] = bytes.Replace(lines[3], []byte(`"user":"user-d"`), []byte(`"user":"user-x"`), 1)
				return lines
			},
			wantLine: 4, reason: "hash mismatch",
		},
		{
			name: "hash rewritten to match a changed line",
			tamper: func(lines [][]byte) [][]byte {
				var r Record
				json.Unmarshal(lines[3], &r)
				body := string(bytes.Replace(lines[3], []byte(`"status":200`), []byte(`"status":403`), 1))
				body = body[:strings.LastIndex(body, `,"hash":"`)]
				lines[3] = forge(body, r.Prev)
				return lines
			},
			wantLine: 5, reason: "prev does not match the hash of line 4",
		},
		{
			name: "one line deleted",
			tamper: func(lines [][]byte) [][]byte {
				return append(lines[:3], lines[4:]...)
			},
			wantLine: 4, reason: "prev does not match the hash of line 3",
		},
		{
			name: "first line deleted",
			tamper: func(lines [][]byte) [][]byte {
				return lines[1:]
			},
			wantLine: 1, reason: "chain start",
		},
		{
			name: "two lines swapped",
			tamper: func(lines [][]byte) [][]byte {
				lines[4], lines[5] = lines[5], lines[4]
				return lines
			},
			wantLine: 5, reason: "prev does not match",
		},
		{
			name: "line duplicated",
			tamper: func(lines [][]byte) [][]byte {
				return append(lines[:7], append([][]byte{lines[6]}, lines[7:]...)...)
			},
			wantLine: 8, reason: "prev does not match",
		},
		{
			name: "unparsable line",
			tamper: func(lines [][]byte) [][]byte {
				lines[2] = []byte("hello")
				return lines
			},
			wantLine: 3, reason: "not an audit line",
		},
		{
			name: "empty line",
			tamper: func(lines [][]byte) [][]byte {
				lines[2] = nil
				return lines
			},
			wantLine: 3, reason: "empty line",
		},
		{
			name: "hash not hex",
			tamper: func(lines [][]byte) [][]byte {
				lines[2][len(lines[2])-3] = 'X'
				return lines
			},
			wantLine: 3, reason: "hex",
		},
		{
			name: "valid hash over invalid JSON",
			tamper: func(lines [][]byte) [][]byte {
				var r Record
				json.Unmarshal(lines[9], &r)
				lines[9] = forge(`{"user":,"prev":"`+r.Prev+`"`, r.Prev)
				return lines
			},
			wantLine: 10, reason: "not valid JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, lines := chainFile(t, 10)
			writeLines(t, path, tt.tamper(lines))
			res, err := Verify(context.Background(), []string{path})
			if err != nil {
				t.Fatalf("Verify() error = %v", err)
			}
			if res.OK || res.File != path || res.Line != tt.wantLine || !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("Verify() = %+v, want line %d of %s broken: %q", res, tt.wantLine, path, tt.reason)
			}
			if res.Lines != tt.wantLine-1 {
				t.Errorf("Verify().Lines = %d, want %d verified before the break", res.Lines, tt.wantLine-1)
			}
		})
	}
}

func TestVerifyTruncatedLastLine(t *testing.T) {
	path, lines := chainFile(t, 10)
	b := readAll(t, path)
	if err := os.WriteFile(path, b[:len(b)-20], 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), []string{path})
	if err != nil || res.OK || res.Line != 10 || !strings.Contains(res.Reason, "unfinished") {
		t.Errorf("Verify(truncated) = %+v, %v; want line 10 unfinished", res, err)
	}
	if want := decode(t, lines[8]).Hash; res.Head != want {
		t.Errorf("Verify(truncated).Head = %s, want the hash of line 9 %s", res.Head, want)
	}
}

func TestVerifyLineTooLong(t *testing.T) {
	path, lines := chainFile(t, 3)
	lines[1] = bytes.Repeat([]byte("x"), maxLine+1)
	writeLines(t, path, lines)
	res, err := Verify(context.Background(), []string{path})
	if err != nil || res.OK || res.Line != 2 || !strings.Contains(res.Reason, "16 MiB") {
		t.Errorf("Verify(long line) = %+v, %v; want line 2 too long", res, err)
	}
}

func TestVerifyAcrossFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, Options{Path: path, MaxBytes: 2048})
	for i := range 40 {
		appendSync(t, l, testRecord(i, "alice"))
	}
	closeLog(t, l)
	files := logFiles(t, path)
	if len(files) < 4 {
		t.Fatalf("Files() = %v, want at least 4", files)
	}
	res := verifyOK(t, files, 40)
	last := readLines(t, path)
	if want := decode(t, last[len(last)-1]).Hash; res.Head != want {
		t.Errorf("Verify().Head = %s, want the last hash %s", res.Head, want)
	}

	t.Run("missing file", func(t *testing.T) {
		without := append(append([]string{}, files[:1]...), files[2:]...)
		res, err := Verify(context.Background(), without)
		if err != nil || res.OK || res.File != files[2] || res.Line != 1 || !strings.Contains(res.Reason, files[0]) {
			t.Errorf("Verify(second file missing) = %+v, %v; want line 1 of %s, not continuing %s", res, err, files[2], files[0])
		}
	})
	t.Run("files out of order", func(t *testing.T) {
		swapped := append([]string{}, files...)
		swapped[1], swapped[2] = swapped[2], swapped[1]
		res, err := Verify(context.Background(), swapped)
		if err != nil || res.OK || res.File != swapped[1] || res.Line != 1 {
			t.Errorf("Verify(files swapped) = %+v, %v; want line 1 of %s", res, err, swapped[1])
		}
	})
	t.Run("byte changed in a middle file", func(t *testing.T) {
		lines := readLines(t, files[2])
		lines[1] = bytes.Replace(lines[1], []byte(`"status":200`), []byte(`"status":201`), 1)
		writeLines(t, files[2], lines)
		res, err := Verify(context.Background(), files)
		if err != nil || res.OK || res.File != files[2] || res.Line != 2 || !strings.Contains(res.Reason, "hash mismatch") {
			t.Errorf("Verify(changed) = %+v, %v; want line 2 of %s", res, err, files[2])
		}
		before := len(readLines(t, files[0])) + len(readLines(t, files[1])) + 1
		if res.Lines != before {
			t.Errorf("Verify(changed).Lines = %d, want %d", res.Lines, before)
		}
	})
}

func TestVerifyErrors(t *testing.T) {
	if _, err := Verify(context.Background(), nil); err == nil {
		t.Error("Verify(no files) = nil error")
	}
	if _, err := Verify(context.Background(), []string{filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("Verify(missing file) = nil error")
	}
	path, _ := chainFile(t, 2)
	if _, err := VerifyFrom(context.Background(), []string{path}, "abc"); err == nil {
		t.Error("VerifyFrom(start not a hash) = nil error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, []string{path}); err == nil {
		t.Error("Verify(cancelled) = nil error")
	}
}

// TestDocumentedAlgorithm checks the chain the way docs/audit.md tells an auditor to, with
// string operations and a JSON parser only.
func TestDocumentedAlgorithm(t *testing.T) {
	_, lines := chainFile(t, 5)
	prev := strings.Repeat("0", 64)
	for i, raw := range lines {
		line := string(raw)
		cut := strings.LastIndex(line, `,"hash":"`)
		canonical := line[:cut] + "}"
		var fields struct{ Prev, Hash string }
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		if fields.Prev != prev {
			t.Fatalf("line %d prev = %s, want %s", i+1, fields.Prev, prev)
		}
		sum := sha256.Sum256([]byte(fields.Prev + canonical))
		if got := hex.EncodeToString(sum[:]); got != fields.Hash {
			t.Fatalf("line %d: sha256(prev || canonical) = %s, want hash %s", i+1, got, fields.Hash)
		}
		prev = fields.Hash
	}
}
