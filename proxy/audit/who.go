package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Query selects audit lines for Who. Empty fields select everything.
type Query struct {
	Record string    // a record id listed in the line's ids, matched exactly
	User   string    // the line's user, matched exactly
	Since  time.Time // lines whose time is at or after Since
	Until  time.Time // lines whose time is before Until
}

// Match is an audit line Who selected.
type Match struct {
	File   string
	Line   int // 1-based
	Record Record
	Raw    []byte // the line as written, without the newline
}

// rotationSlack is how far a record's time may lie after its file's rotation time (a clock
// step) before Who's file skipping would miss it.
const rotationSlack = 5 * time.Minute

// Who calls fn, in chain order, for every line of files that matches q: who read this record,
// what did this user read. It is built for large logs: each file is read in blocks of
// megabytes, a block is searched for the JSON-encoded record id or user with one bytes.Index,
// and only the lines that contain it are parsed (with gjson) and confirmed. Rotated files whose
// name says they were rotated before q.Since are skipped unread, and files are searched in
// parallel. Who does not verify the chain; run Verify for that. fn is called from one goroutine
// at a time; an error from fn stops Who and is returned.
func Who(ctx context.Context, files []string, q Query, fn func(Match) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s := newSearch(q)
	type job struct {
		file    string
		matches chan Match
		err     error
	}
	jobs := make([]*job, 0, len(files))
	for _, name := range files {
		if s.skip(name) {
			continue
		}
		jobs = append(jobs, &job{file: name, matches: make(chan Match, 256)})
	}

	// Workers start in file order, so the file fn is waiting for always has a worker; a later
	// file's worker blocks once its channel is full, which bounds memory.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	wg.Go(func() {
		for _, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				close(j.matches)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				defer close(j.matches)
				j.err = s.file(ctx, j.file, j.matches)
			})
		}
	})
	defer wg.Wait()
	defer cancel()

	for _, j := range jobs {
		for m := range j.matches {
			if err := fn(m); err != nil {
				return err
			}
		}
		if j.err != nil {
			return j.err
		}
	}
	return ctx.Err()
}

// search is a compiled Query.
type search struct {
	q      Query
	needle []byte // searched for in the raw bytes before any line is parsed; nil = every line
	user   []byte // `"user":"<user>"` when User is set
	times  bool
}

func newSearch(q Query) *search {
	s := &search{q: q, times: !q.Since.IsZero() || !q.Until.IsZero()}
	if q.User != "" {
		s.user = append([]byte(`"user":`), jsonString(q.User)...)
	}
	switch {
	case q.Record != "":
		s.needle = jsonString(q.Record)
	case q.User != "":
		s.needle = s.user
	}
	return s
}

// skip reports whether the name of a rotated file shows that it holds nothing since q.Since.
func (s *search) skip(name string) bool {
	if s.q.Since.IsZero() {
		return false
	}
	at, _, ok := parseRotatedPath(name)
	return ok && at.Add(rotationSlack).Before(s.q.Since)
}

// parseRotatedPath recognises a rotated file by its name alone: <base>.<timestamp>.<seq>.
func parseRotatedPath(name string) (time.Time, int, bool) {
	full := filepath.Base(name)
	i := strings.LastIndexByte(full, '.')
	if i <= 0 {
		return time.Time{}, 0, false
	}
	j := strings.LastIndexByte(full[:i], '.')
	if j <= 0 {
		return time.Time{}, 0, false
	}
	return parseRotated(full[:j], full)
}

// file searches one file, sending its matches in order.
func (s *search) file(ctx context.Context, name string, out chan<- Match) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("audit: who: %w", err)
	}
	defer f.Close()
	br := newBlockReader(f)
	lines := 0 // lines before the current block
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		block, err := br.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: who: %s after line %d: %w", name, lines, err)
		}
		if lines, err = s.block(ctx, name, block, lines, out); err != nil {
			return err
		}
	}
}

// block searches a block of whole lines whose first line is line number before+1, and returns
// the number of lines up to the block's end.
func (s *search) block(ctx context.Context, name string, block []byte, before int, out chan<- Match) (int, error) {
	counted := 0 // block[:counted] holds `before` lines
	pos := 0
	for pos < len(block) {
		var start, end int
		if s.needle == nil {
			start = pos
		} else {
			i := bytes.Index(block[pos:], s.needle)
			if i < 0 {
				break
			}
			start = bytes.LastIndexByte(block[:pos+i], '\n') + 1
		}
		end = len(block)
		if i := bytes.IndexByte(block[start:], '\n'); i >= 0 {
			end = start + i
		}
		before += bytes.Count(block[counted:start], []byte{'\n'})
		counted = start
		pos = end + 1
		line := block[start:end]
		if len(line) == 0 || !s.match(line) {
			continue
		}
		m := Match{File: name, Line: before + 1, Raw: bytes.Clone(line)}
		if err := json.Unmarshal(m.Raw, &m.Record); err != nil {
			return 0, fmt.Errorf("audit: who: %s:%d: %w", name, m.Line, err)
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return before + bytes.Count(block[counted:], []byte{'\n'}), nil
}

// match confirms a candidate line by parsing the members the query names.
func (s *search) match(line []byte) bool {
	if s.q.User != "" && gjson.GetBytes(line, "user").String() != s.q.User {
		return false
	}
	if s.q.Record != "" {
		found := false
		gjson.GetBytes(line, "ids").ForEach(func(_, id gjson.Result) bool {
			found = id.Type == gjson.String && id.Str == s.q.Record
			return !found
		})
		if !found {
			return false
		}
	}
	if s.times {
		t, err := time.Parse(time.RFC3339Nano, gjson.GetBytes(line, "time").Str)
		if err != nil {
			return false
		}
		if !s.q.Since.IsZero() && t.Before(s.q.Since) {
			return false
		}
		if !s.q.Until.IsZero() && !t.Before(s.q.Until) {
			return false
		}
	}
	return true
}
