package audit

import (
	"bytes"
	"errors"
	"io"
)

// errLineTooLong is returned by blockReader for a line longer than maxLine.
var errLineTooLong = errors.New("line longer than 16 MiB")

// blockReader reads a file in large blocks of whole lines, so that callers can search a block
// with one bytes.Index instead of looking at lines one by one. Memory stays bounded by the
// longest line.
type blockReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	eof        bool
}

const blockSize = 4 << 20

func newBlockReader(r io.Reader) *blockReader {
	return &blockReader{r: r, buf: make([]byte, blockSize)}
}

// next returns the buffered whole lines, each ending in "\n". At the end of the file it returns
// an unterminated last line once, without "\n", then io.EOF. The block is valid until the next
// call.
func (b *blockReader) next() ([]byte, error) {
	for {
		if i := bytes.LastIndexByte(b.buf[b.start:b.end], '\n'); i >= 0 {
			block := b.buf[b.start : b.start+i+1]
			b.start += i + 1
			return block, nil
		}
		if b.eof {
			if b.start < b.end {
				block := b.buf[b.start:b.end]
				b.start = b.end
				return block, nil
			}
			return nil, io.EOF
		}
		if b.start > 0 {
			b.end = copy(b.buf, b.buf[b.start:b.end])
			b.start = 0
		}
		if b.end == len(b.buf) {
			if len(b.buf) > maxLine {
				return nil, errLineTooLong
			}
			b.buf = append(b.buf, make([]byte, min(len(b.buf), maxLine+1-len(b.buf)))...)
		}
		for !b.eof && b.end < len(b.buf) {
			n, err := b.r.Read(b.buf[b.end:])
			b.end += n
			if errors.Is(err, io.EOF) {
				b.eof = true
			} else if err != nil {
				return nil, err
			}
			if n > 0 && bytes.IndexByte(b.buf[b.end-n:b.end], '\n') >= 0 {
				break
			}
		}
	}
}
