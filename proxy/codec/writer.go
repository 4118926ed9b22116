package codec

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

const (
	gzipLevel   = 5
	brotliLevel = 4 // on-the-fly: most of level 5's ratio at well under its cost
	// zstdWindow stays well under the 8 MB every HTTP zstd decoder supports (RFC 9659).
	zstdWindow = 2 << 20
)

// preference orders the codings Negotiate may choose, best first.
var preference = []string{Zstd, Brotli, Gzip}

// Negotiate picks the coding to encode a rewritten body in, from the client's
// Accept-Encoding header values: the acceptable coding (q > 0) with the highest q-value among
// zstd, br and gzip, ties going to zstd, then br, then gzip. A coding not listed takes the q
// of "*" when that is present, and is unacceptable otherwise; x-gzip counts as gzip. An
// element listed twice takes its lowest q; elements with an invalid q are ignored. ""
// means identity: no header, nothing acceptable, or only codings Veil does not produce.
// (When even identity is refused, identity is still the answer: a rewritten body is better
// than a 406.)
func Negotiate(acceptEncoding []string) string {
	q := make(map[string]int) // coding ⇒ q in thousandths
	for _, v := range acceptEncoding {
		for elem := range strings.SplitSeq(v, ",") {
			name, qv, ok := parseAcceptElement(elem)
			if !ok {
				continue
			}
			if name == "x-gzip" {
				name = Gzip
			}
			if old, seen := q[name]; !seen || qv < old {
				q[name] = qv
			}
		}
	}
	best, bestQ := "", 0
	for _, c := range preference {
		cq, ok := q[c]
		if !ok {
			cq = q["*"] // zero when "*" is absent
		}
		if cq > bestQ {
			best, bestQ = c, cq
		}
	}
	return best
}

// parseAcceptElement parses `coding *( OWS ";" OWS param )` and returns the lower-case
// coding and its q-value in thousandths (1000 when absent).
func parseAcceptElement(elem string) (name string, q int, ok bool) {
	parts := strings.Split(elem, ";")
	name = strings.ToLower(strings.Trim(parts[0], " \t"))
	if name == "" {
		return "", 0, false
	}
	q = 1000
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(strings.Trim(p, " \t"), "=")
		if !found || !strings.EqualFold(strings.TrimRight(k, " \t"), "q") {
			continue
		}
		if q, ok = parseQValue(strings.TrimLeft(v, " \t")); !ok {
			return "", 0, false
		}
	}
	return name, q, true
}

// parseQValue parses a qvalue (RFC 9110 §12.4.2): "0" to "1" with up to three decimals.
func parseQValue(s string) (int, bool) {
	intPart, frac, _ := strings.Cut(s, ".")
	if (intPart != "0" && intPart != "1") || len(frac) > 3 {
		return 0, false
	}
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	if intPart == "1" {
		if strings.Trim(frac, "0") != "" {
			return 0, false
		}
		return 1000, true
	}
	frac += strings.Repeat("0", 3-len(frac))
	n, err := strconv.Atoi(frac)
	return n, err == nil
}

var (
	gzipWriters   sync.Pool // *gzip.Writer
	zlibWriters   sync.Pool // *zlib.Writer
	brotliWriters sync.Pool // *brotli.Writer
	zstdWriters   sync.Pool // *zstd.Encoder
)

// encoder is the part of the compressors' API the writer uses.
type encoder interface {
	io.WriteCloser
	Flush() error
}

// NewWriter returns a writer that encodes into w with coding, which is what Negotiate
// returned: "gzip", "br" or "zstd" (and "deflate", as zlib). "" or "identity" passes writes
// through, and its Close does nothing. Close writes the end of the encoded stream; it never
// closes w. The returned writer also has a Flush() error method that pushes buffered data to w.
// Any other coding is ErrUnsupported.
func NewWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	var (
		enc  encoder
		pool *sync.Pool
	)
	switch strings.ToLower(coding) {
	case "", "identity":
		return passThrough{w}, nil
	case Gzip, "x-gzip":
		pool = &gzipWriters
		if z, ok := pool.Get().(*gzip.Writer); ok {
			z.Reset(w)
			enc = z
		} else {
			z, err := gzip.NewWriterLevel(w, gzipLevel)
			if err != nil {
				return nil, fmt.Errorf("codec: gzip: %w", err)
			}
			enc = z
		}
	case Deflate:
		pool = &zlibWriters
		if z, ok := pool.Get().(*zlib.Writer); ok {
			z.Reset(w)
			enc = z
		} else {
			enc = zlib.NewWriter(w)
		}
	case Brotli:
		pool = &brotliWriters
		if b, ok := pool.Get().(*brotli.Writer); ok {
			b.Reset(w)
			enc = b
		} else {
			enc = brotli.NewWriterLevel(w, brotliLevel)
		}
	case Zstd:
		pool = &zstdWriters
		if z, ok := pool.Get().(*zstd.Encoder); ok {
			z.Reset(w)
			enc = z
		} else {
			z, err := zstd.NewWriter(w,
				zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderLevel(zstd.SpeedDefault),
				zstd.WithWindowSize(zstdWindow),
			)
			if err != nil {
				return nil, fmt.Errorf("codec: zstd: %w", err)
			}
			enc = z
		}
	default:
		if len(coding) > 32 {
			coding = coding[:32] + "…"
		}
		return nil, fmt.Errorf("%w %q", ErrUnsupported, coding)
	}
	return &writer{enc: enc, pool: pool}, nil
}

var errClosed = errors.New("codec: write after close")

// writer encodes into the underlying writer and returns its encoder to the pool on Close.
type writer struct {
	enc  encoder
	pool *sync.Pool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.enc == nil {
		return 0, errClosed
	}
	return w.enc.Write(p)
}

// Flush pushes buffered encoded data to the underlying writer.
func (w *writer) Flush() error {
	if w.enc == nil {
		return errClosed
	}
	return w.enc.Flush()
}

// Close finishes the stream; it does not close the underlying writer.
func (w *writer) Close() error {
	if w.enc == nil {
		return nil
	}
	err := w.enc.Close()
	if err == nil {
		// Drop the reference to the destination before pooling.
		resetTo(w.enc, io.Discard)
		w.pool.Put(w.enc)
	}
	w.enc = nil
	return err
}

func resetTo(enc encoder, dst io.Writer) {
	switch e := enc.(type) {
	case *gzip.Writer:
		e.Reset(dst)
	case *zlib.Writer:
		e.Reset(dst)
	case *brotli.Writer:
		e.Reset(dst)
	case *zstd.Encoder:
		e.Reset(dst)
	}
}

// passThrough writes unencoded.
type passThrough struct{ w io.Writer }

func (p passThrough) Write(b []byte) (int, error) { return p.w.Write(b) }

// Flush does nothing: nothing is buffered.
func (passThrough) Flush() error { return nil }

// Close does nothing; it does not close the underlying writer.
func (passThrough) Close() error { return nil }
