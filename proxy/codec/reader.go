// Package codec decodes HTTP content codings (gzip, deflate, br, zstd) under a cap on the
// decoded size, and encodes rewritten bodies in the coding the client prefers.
package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

var (
	// ErrUnsupported is returned for a content coding this package does not know.
	ErrUnsupported = errors.New("codec: unsupported content coding")
	// ErrTooLarge is returned once a body decodes to more than the allowed size.
	ErrTooLarge = errors.New("codec: decoded body too large")
)

const (
	// maxCodings bounds stacked codings ("gzip, br" is two); more is refused as unsupported.
	maxCodings = 4
	// zstdMaxWindow is the largest zstd window accepted: the 8 MB that HTTP zstd decoders
	// must support and encoders must not exceed (RFC 9659).
	zstdMaxWindow = 8 << 20
	// zstdMaxMemory caps what a zstd decoder may allocate for one frame.
	zstdMaxMemory = 64 << 20
	bufSize       = 32 << 10
)

// Canonical coding names.
const (
	Gzip    = "gzip"
	Deflate = "deflate"
	Brotli  = "br"
	Zstd    = "zstd"
)

// parseCodings returns the codings listed in Content-Encoding header values, in the order
// they were applied, canonical and without "identity".
func parseCodings(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.ToLower(strings.Trim(tok, " \t"))
			switch tok {
			case "", "identity":
			case "gzip", "x-gzip":
				out = append(out, Gzip)
			case Deflate, Brotli, Zstd:
				out = append(out, tok)
			default:
				if len(tok) > 32 {
					tok = tok[:32] + "…"
				}
				return nil, fmt.Errorf("%w %q", ErrUnsupported, tok)
			}
		}
	}
	if len(out) > maxCodings {
		return nil, fmt.Errorf("%w: %d stacked codings, at most %d", ErrUnsupported, len(out), maxCodings)
	}
	return out, nil
}

// NewReader returns a reader of body decoded from the codings its Content-Encoding header
// values list (applied in order, so decoded in reverse). Supported: gzip, x-gzip, deflate
// (zlib, or raw deflate when the zlib header is absent, as browsers accept), br, zstd and
// identity; anything else is ErrUnsupported, before any byte is read. Reading more than max
// decoded bytes fails with ErrTooLarge (a decompression bomb); max must be positive. With
// stacked codings each intermediate stream is capped too, at max + max/4 + 64 KiB, so that a
// layer cannot spin on compressed input that decodes to nothing.
// Truncated or corrupt input fails with an error, never a silent io.EOF; an empty body
// decodes to an empty body. Decoding is lazy: the first Read reads body.
//
// Close releases the decoders for reuse and closes body if it is an io.Closer.
func NewReader(body io.Reader, contentEncoding []string, max int64) (io.ReadCloser, error) {
	if max <= 0 {
		return nil, fmt.Errorf("codec: max decoded size %d, want > 0", max)
	}
	codings, err := parseCodings(contentEncoding)
	if err != nil {
		return nil, err
	}
	r := &reader{body: body}
	// Intermediate streams are compressed data: beyond the final cap plus a margin for
	// incompressible data, a layer is only spinning (e.g. endless empty deflate blocks).
	interMax := max
	if interMax < math.MaxInt64/2 {
		interMax += max/4 + 64<<10
	}
	var src io.Reader = body
	for i := len(codings) - 1; i >= 0; i-- {
		l := &layer{coding: codings[i], buf: getBufio(src)}
		r.layers = append(r.layers, l)
		src = l
		if i > 0 {
			src = &limitReader{r: l, max: interMax}
		}
	}
	r.top = &limitReader{r: src, max: max}
	return r, nil
}

// reader is the decoded body.
type reader struct {
	body   io.Reader
	layers []*layer
	top    io.Reader
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("codec: read after close")
	}
	return r.top.Read(p)
}

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	for _, l := range r.layers {
		l.release()
	}
	if c, ok := r.body.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// limitReader fails with ErrTooLarge once more than max bytes have been read through it; it
// never returns more than max bytes.
type limitReader struct {
	r   io.Reader
	n   int64
	max int64
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	// Ask for at most one byte past the limit: enough to tell "exactly max" from "more".
	if rem := l.max - l.n; rem < math.MaxInt64 && int64(len(p)) > rem+1 {
		p = p[:rem+1]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		n -= int(l.n - l.max)
		l.n = l.max
		l.err = ErrTooLarge
		return n, l.err
	}
	if err != nil {
		l.err = err
	}
	return n, err
}

// layer decodes one coding. Its decoder is created on the first Read, from a pool.
type layer struct {
	coding  string
	buf     *bufio.Reader
	dec     io.Reader
	free    func() // returns the decoder and buf to their pools; nil before start
	started bool
	err     error // sticky
}

func (l *layer) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if !l.started {
		l.started = true
		if err := l.start(); err != nil {
			l.err = err
			return 0, err
		}
	}
	n, err := l.dec.Read(p)
	if err != nil && err != io.EOF {
		l.err = l.wrap(err)
		return n, l.err
	}
	return n, err
}

// wrap names the coding in err. Only a clean end of stream may be io.EOF: an error that
// merely wraps io.EOF becomes io.ErrUnexpectedEOF, so that no caller mistakes it for the end.
func (l *layer) wrap(err error) error {
	if errors.Is(err, ErrTooLarge) { // from an intermediate stream's cap
		return err
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("codec: %s: %w (%v)", l.coding, io.ErrUnexpectedEOF, err)
	}
	return fmt.Errorf("codec: %s: %w", l.coding, err)
}

// release returns the layer's decoder and buffer to their pools.
func (l *layer) release() {
	if l.free != nil {
		l.free()
	} else {
		putBufio(l.buf)
	}
	l.free, l.dec, l.buf = nil, nil, nil
	if l.err == nil {
		l.err = errors.New("codec: read after close")
	}
}

// start picks the decoder; an empty stream decodes to nothing.
func (l *layer) start() error {
	head, err := l.buf.Peek(2)
	if len(head) == 0 {
		if err == io.EOF {
			l.dec = eofReader{}
			return nil
		}
		return l.wrap(err)
	}
	err = nil // a short peek is for the decoder to judge
	switch l.coding {
	case Gzip:
		err = l.startGzip()
	case Deflate:
		if isZlibHeader(head) {
			err = l.startZlib()
		} else {
			l.startFlate()
		}
	case Brotli:
		l.startBrotli()
	case Zstd:
		err = l.startZstd()
	}
	if err != nil {
		return l.wrap(err)
	}
	return nil
}

// isZlibHeader reports whether b starts with a zlib header (RFC 1950 §2.2): deflate method,
// window at most 32 KiB, check bits valid.
func isZlibHeader(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	cmf, flg := b[0], b[1]
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

var (
	bufioPool  sync.Pool // *bufio.Reader
	gzipPool   sync.Pool // *gzip.Reader
	zlibPool   sync.Pool // io.ReadCloser implementing zlib.Resetter
	flatePool  sync.Pool // io.ReadCloser implementing flate.Resetter
	brotliPool sync.Pool // *brotli.Reader
	zstdPool   sync.Pool // *zstd.Decoder
)

func getBufio(r io.Reader) *bufio.Reader {
	if b, ok := bufioPool.Get().(*bufio.Reader); ok {
		b.Reset(r)
		return b
	}
	return bufio.NewReaderSize(r, bufSize)
}

func putBufio(b *bufio.Reader) {
	b.Reset(eofReader{}) // drop the body
	bufioPool.Put(b)
}

func (l *layer) startGzip() error {
	z, _ := gzipPool.Get().(*gzip.Reader)
	if z == nil {
		var err error
		if z, err = gzip.NewReader(l.buf); err != nil {
			return err
		}
	} else if err := z.Reset(l.buf); err != nil {
		gzipPool.Put(z)
		return err
	}
	l.dec = z
	l.free = func() {
		gzipPool.Put(z)
		putBufio(l.buf)
	}
	return nil
}

func (l *layer) startZlib() error {
	z, _ := zlibPool.Get().(io.ReadCloser)
	if z == nil {
		var err error
		if z, err = zlib.NewReader(l.buf); err != nil {
			return err
		}
	} else if err := z.(zlib.Resetter).Reset(l.buf, nil); err != nil {
		zlibPool.Put(z)
		return err
	}
	l.dec = z
	l.free = func() {
		zlibPool.Put(z)
		putBufio(l.buf)
	}
	return nil
}

func (l *layer) startFlate() {
	f, _ := flatePool.Get().(io.ReadCloser)
	if f == nil {
		f = flate.NewReader(l.buf)
	} else {
		_ = f.(flate.Resetter).Reset(l.buf, nil) // never fails without a dictionary
	}
	l.dec = f
	l.free = func() {
		flatePool.Put(f)
		putBufio(l.buf)
	}
}

func (l *layer) startBrotli() {
	b, _ := brotliPool.Get().(*brotli.Reader)
	if b == nil {
		b = brotli.NewReader(l.buf)
	} else {
		_ = b.Reset(l.buf) // always nil
	}
	l.dec = b
	l.free = func() {
		_ = b.Reset(eofReader{})
		brotliPool.Put(b)
		putBufio(l.buf)
	}
}

func (l *layer) startZstd() error {
	d, _ := zstdPool.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxMemory),
			zstd.WithDecoderLowmem(true),
		)
		if err != nil {
			return err
		}
	}
	if err := d.Reset(l.buf); err != nil {
		d.Close()
		return err
	}
	l.dec = d
	l.free = func() {
		_ = d.Reset(nil) // drop the body
		zstdPool.Put(d)
		putBufio(l.buf)
	}
	return nil
}
