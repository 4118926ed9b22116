package mask

import (
	"fmt"
	"io"
)

const (
	windowSize = 64 << 10 // initial input window and CSV buffer size
	flushAt    = 32 << 10 // output is written to dst in chunks of about this size
	tokenSlack = 64       // window room beyond MaxRecordBytes, for escape look-ahead
)

// input is a forward-only window on a body: buf[pos:] is unread. Tokens are scanned in place;
// fill keeps buf[pos:] and reads more, so a token stays contiguous while it is scanned.
type input struct {
	r     io.Reader // nil for an in-memory document
	buf   []byte
	pos   int
	base  int64 // body offset of buf[0]
	eof   bool  // r is exhausted: buf holds the rest of the body
	max   int   // the window never grows beyond this: the largest token
	limit int64 // body offset past which the record being read is too large; -1 for none
}

// reset points in at r, reusing its window.
func (in *input) reset(r io.Reader, max int) {
	switch {
	case cap(in.buf) == 0:
		in.buf = make([]byte, 0, min(windowSize, max))
	case max > 0 && cap(in.buf) > max:
		in.buf = in.buf[:0:max] // a window left by a program with larger limits
	}
	*in = input{r: r, buf: in.buf[:0], max: max, limit: -1}
}

// offset returns the body offset of the next unread byte.
func (in *input) offset() int64 { return in.base + int64(in.pos) }

// fill moves the unread bytes to the front of the window and reads more. It returns io.EOF,
// unwrapped, when the body is exhausted.
func (in *input) fill() error {
	if in.eof {
		return io.EOF
	}
	if in.pos > 0 {
		n := copy(in.buf[:cap(in.buf)], in.buf[in.pos:])
		in.buf = in.buf[:n]
		in.base += int64(in.pos)
		in.pos = 0
	}
	if in.limit >= 0 && in.base > in.limit {
		return fmt.Errorf("mask: offset %d: record over the size limit: %w", in.base, ErrTooLarge)
	}
	if len(in.buf) == cap(in.buf) {
		if cap(in.buf) >= in.max {
			return fmt.Errorf("mask: offset %d: token over %d bytes: %w", in.base, in.max-tokenSlack, ErrTooLarge)
		}
		nb := make([]byte, len(in.buf), min(max(2*cap(in.buf), windowSize), in.max))
		copy(nb, in.buf)
		in.buf = nb
	}
	for range 100 {
		n, err := in.r.Read(in.buf[len(in.buf):cap(in.buf)])
		in.buf = in.buf[:len(in.buf)+n]
		if err == io.EOF {
			in.eof = true
			if n > 0 {
				return nil
			}
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("mask: read body: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("mask: read body: %w", io.ErrNoProgress)
}
