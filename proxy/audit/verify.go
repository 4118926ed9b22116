package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	Lines  int    // lines that verified, before the first broken one
	OK     bool   // the whole chain verified
	File   string // file of the first broken line
	Line   int    // first broken line, 1-based within File
	Reason string // what is wrong with it
	Head   string // hash of the last line that verified: the value to anchor or compare
}

// Verify checks the hash chain across files, given in chain order (rotated files oldest first,
// then the active file, as Files lists them); the first line must carry ZeroHash as its prev.
// It names the first broken line: one that cannot be parsed, whose hash does not match its
// content (a byte was changed), or whose prev is not the hash of the line before it (a line
// was deleted, inserted or moved, or a file is missing). Lines removed from the end of the last
// file leave no trace in the chain; compare Head with an anchored copy for that. The error is
// for I/O failures only; a broken chain is a result with OK false.
func Verify(ctx context.Context, files []string) (VerifyResult, error) {
	return VerifyFrom(ctx, files, ZeroHash)
}

// VerifyFrom is Verify for a chain whose first line's prev is start: the last hash of the
// files before files[0], when they were pruned or archived.
func VerifyFrom(ctx context.Context, files []string, start string) (VerifyResult, error) {
	if len(files) == 0 {
		return VerifyResult{}, errors.New("audit: verify: no files")
	}
	if !isHexString(start) {
		return VerifyResult{}, fmt.Errorf("audit: verify: start %q is not 64 lower-case hex digits", start)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Files are verified in parallel, each from its own first line; the links between them are
	// checked afterwards, in order.
	results := make([]fileCheck, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range files {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i], errs[i] = verifyFile(ctx, name)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return VerifyResult{}, err
	}

	res := VerifyResult{Head: start}
	for i, fc := range results {
		broken := func(line int, reason string) (VerifyResult, error) {
			res.File, res.Line, res.Reason = files[i], line, reason
			return res, nil
		}
		if fc.bad == 1 {
			return broken(1, fc.reason)
		}
		if fc.lines > 0 && fc.first != res.Head {
			switch {
			case i > 0:
				return broken(1, fmt.Sprintf("prev does not match the last hash of %s: the chain breaks between the files (a file or lines are missing)", files[i-1]))
			case res.Head == ZeroHash:
				return broken(1, "prev is not the chain start (64 zeros): earlier lines or files are missing; to check the rest, verify from this line's prev")
			default:
				return broken(1, "prev does not match the given start hash")
			}
		}
		if fc.bad > 0 {
			res.Lines += fc.bad - 1
			res.Head = fc.badHead
			return broken(fc.bad, fc.reason)
		}
		res.Lines += fc.lines
		if fc.lines > 0 {
			res.Head = fc.head
		}
	}
	res.OK = true
	return res, nil
}

// fileCheck is the verification of one file on its own.
type fileCheck struct {
	lines   int    // lines in the file (when it verified)
	first   string // prev of its first line
	head    string // hash of its last line
	bad     int    // first broken line, 0 when none
	reason  string
	badHead string // hash of the line before the broken one
}

func verifyFile(ctx context.Context, name string) (fileCheck, error) {
	f, err := os.Open(name)
	if err != nil {
		return fileCheck{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	var (
		fc   fileCheck
		h    = sha256.New()
		br   = newBlockReader(f)
		n    int
		prev []byte
	)
	fail := func(reason string) (fileCheck, error) {
		fc.bad, fc.reason, fc.badHead = n, reason, string(prev)
		return fc, nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return fileCheck{}, err
		}
		block, err := br.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errLineTooLong) {
			n++
			return fail(err.Error())
		}
		if err != nil {
			return fileCheck{}, fmt.Errorf("audit: verify: read %s: %w", name, err)
		}
		for len(block) > 0 {
			n++
			i := bytes.IndexByte(block, '\n')
			if i < 0 {
				return fail("last line is unfinished (no newline): a write cut short by a crash, or the file was truncated")
			}
			line := block[:i]
			block = block[i+1:]
			p, why := checkLine(h, line)
			if p.prev == nil {
				return fail(why)
			}
			if n == 1 {
				fc.first = string(p.prev)
			} else if !bytes.Equal(p.prev, prev) {
				return fail(fmt.Sprintf("prev does not match the hash of line %d: a line was deleted, inserted or moved here", n-1))
			}
			if why != "" {
				return fail(why)
			}
			prev = append(prev[:0], p.hash...)
		}
	}
	fc.lines, fc.head = n, string(prev)
	return fc, nil
}
