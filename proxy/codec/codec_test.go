package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// encode applies codings in order with the libraries directly (not NewWriter), so that the
// reader is tested against independent encoders. "deflate-raw" is raw deflate.
func encode(t testing.TB, data []byte, codings ...string) []byte {
	t.Helper()
	for _, c := range codings {
		var buf bytes.Buffer
		var w io.WriteCloser
		var err error
		switch c {
		case "gzip", "x-gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w = zlib.NewWriter(&buf)
		case "deflate-raw":
			w, err = flate.NewWriter(&buf, flate.DefaultCompression)
		case "br":
			w = brotli.NewWriter(&buf)
		case "zstd":
			w, err = zstd.NewWriter(&buf)
		default:
			t.Fatalf("encode: unknown coding %q", c)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data = buf.Bytes()
	}
	return data
}

// decode reads everything NewReader returns.
func decode(body []byte, ce []string, max int64) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(body), ce, max)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func sampleJSON(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"客户%d","phone":"138%08d","note":"%x"}`, i, i, rng.IntN(1e8), rng.Uint64())
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestNewReaderRoundTrip(t *testing.T) {
	small := []byte(`{"phone":"13812345678"}`)
	large := sampleJSON(3000)
	tests := []struct {
		name    string
		applied []string // codings applied by the encoder, in order
		header  []string // Content-Encoding values
	}{
		{"none", nil, nil},
		{"identity", nil, []string{"identity"}},
		{"gzip", []string{"gzip"}, []string{"gzip"}},
		{"x-gzip upper case", []string{"gzip"}, []string{"X-GZIP"}},
		{"deflate zlib", []string{"deflate"}, []string{"deflate"}},
		{"deflate raw", []string{"deflate-raw"}, []string{"deflate"}},
		{"br", []string{"br"}, []string{"br"}},
		{"zstd", []string{"zstd"}, []string{"zstd"}},
		{"gzip, br", []string{"gzip", "br"}, []string{"gzip, br"}},
		{"gzip then br as two header lines", []string{"gzip", "br"}, []string{"gzip", "br"}},
		{"deflate, zstd, gzip with identity", []string{"deflate", "zstd", "gzip"}, []string{" deflate ,identity", "zstd,gzip"}},
		{"zstd, zstd", []string{"zstd", "zstd"}, []string{"zstd, zstd"}},
	}
	for _, tt := range tests {
		for _, data := range [][]byte{small, large} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, len(data)), func(t *testing.T) {
				got, err := decode(encode(t, data, tt.applied...), tt.header, 1<<30)
				if err != nil {
					t.Fatalf("decode(%q) error = %v", tt.header, err)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("decode(%q) = %d bytes, want the %d original bytes", tt.header, len(got), len(data))
				}
			})
		}
	}
}

func TestNewReaderCap(t *testing.T) {
	const max = 1 << 20
	zeros := make([]byte, 10<<20)
	exact := bytes.Repeat([]byte("a"), max)
	tests := []struct {
		name    string
		data    []byte
		applied []string
		header  []string
		wantErr error
		wantLen int
	}{
		{"10 MB zero gzip bomb", zeros, []string{"gzip"}, []string{"gzip"}, ErrTooLarge, max},
		{"zlib bomb", zeros, []string{"deflate"}, []string{"deflate"}, ErrTooLarge, max},
		{"br bomb", zeros, []string{"br"}, []string{"br"}, ErrTooLarge, max},
		{"zstd bomb", zeros, []string{"zstd"}, []string{"zstd"}, ErrTooLarge, max},
		{"nested gzip bomb", zeros, []string{"gzip", "gzip"}, []string{"gzip, gzip"}, ErrTooLarge, max},
		{"uncompressed body over the cap", zeros[:max+1], nil, nil, ErrTooLarge, max},
		{"exactly the cap", exact, []string{"gzip"}, []string{"gzip"}, nil, max},
		{"exactly the cap, identity", exact, nil, nil, nil, max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := encode(t, tt.data, tt.applied...)
			got, err := decode(body, tt.header, max)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("decode(%d bytes, %q, max %d) error = %v, want %v", len(body), tt.header, max, err, tt.wantErr)
			}
			if len(got) != tt.wantLen {
				t.Errorf("decode(%q) returned %d bytes, want %d", tt.header, len(got), tt.wantLen)
			}
		})
	}
}

func TestNewReaderUnboundedMax(t *testing.T) {
	data := []byte(`{"a":1}`)
	got, err := decode(encode(t, data, "gzip", "br"), []string{"gzip, br"}, math.MaxInt64)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("decode(max MaxInt64) = %q, %v; want %q, nil", got, err, data)
	}
}

// emptyStoredBlocks is a raw deflate stream of n empty stored blocks: 5 bytes each that
// decode to nothing.
func emptyStoredBlocks(n int) []byte {
	b := bytes.Repeat([]byte{0x00, 0x00, 0x00, 0xff, 0xff}, n)
	return append(b, 0x03, 0x00) // final empty fixed-Huffman block
}

// An inner stream that decodes to nothing while its outer layer expands it without end
// is stopped by the cap on intermediate streams.
func TestNewReaderSpinningInnerLayer(t *testing.T) {
	inner := emptyStoredBlocks(1 << 20) // 5 MB of compressed nothing
	if got, err := decode(inner, []string{"deflate"}, 1); err != nil || len(got) != 0 {
		t.Fatalf("decode(empty stored blocks) = %d bytes, %v; want 0 bytes, nil", len(got), err)
	}
	body := encode(t, inner, "gzip")
	_, err := decode(body, []string{"deflate, gzip"}, 64<<10)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("decode(gzip of 5 MB of empty deflate blocks) error = %v, want ErrTooLarge", err)
	}
}

func TestNewReaderCorrupt(t *testing.T) {
	data := sampleJSON(500)
	tests := []struct {
		coding string
		header string
	}{
		{"gzip", "gzip"}, {"deflate", "deflate"}, {"deflate-raw", "deflate"}, {"br", "br"}, {"zstd", "zstd"},
	}
	for _, tt := range tests {
		body := encode(t, data, tt.coding)
		for _, cut := range []int{1, 2, 10, len(body) / 2, len(body) - 4, len(body) - 1} {
			t.Run(fmt.Sprintf("%s truncated to %d of %d", tt.coding, cut, len(body)), func(t *testing.T) {
				got, err := decode(body[:cut], []string{tt.header}, 1<<30)
				if err == nil || errors.Is(err, io.EOF) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported) {
					t.Errorf("decode(truncated %s) = %d bytes, error %v; want a decode error that is not io.EOF", tt.coding, len(got), err)
				}
			})
		}
	}
	// Codings with a checksum detect a flipped byte.
	for _, coding := range []string{"gzip", "deflate", "zstd"} {
		t.Run(coding+" corrupted", func(t *testing.T) {
			body := bytes.Clone(encode(t, data, coding))
			body[len(body)/2] ^= 0x55
			if _, err := decode(body, []string{coding}, 1<<30); err == nil {
				t.Errorf("decode(corrupted %s) error = nil, want an error", coding)
			}
		})
	}
	t.Run("gzip with trailing garbage", func(t *testing.T) {
		body := append(bytes.Clone(encode(t, data, "gzip")), "garbage"...)
		if _, err := decode(body, []string{"gzip"}, 1<<30); err == nil {
			t.Error("decode(gzip + garbage) error = nil, want an error")
		}
	})
	t.Run("br with trailing garbage", func(t *testing.T) {
		body := append(bytes.Clone(encode(t, data, "br")), "garbage"...)
		if _, err := decode(body, []string{"br"}, 1<<30); err == nil {
			t.Error("decode(br + garbage) error = nil, want an error")
		}
	})
	t.Run("zstd window beyond 8 MB", func(t *testing.T) {
		// Frame header: magic, descriptor without single-segment flag, window descriptor
		// with exponent 31 (a 2 TiB window).
		body := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00}
		if _, err := decode(body, []string{"zstd"}, 1<<30); err == nil {
			t.Error("decode(zstd frame with a 2 TiB window) error = nil, want an error")
		}
	})
	t.Run("not compressed at all", func(t *testing.T) {
		for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
			if got, err := decode(data, []string{c}, 1<<30); err == nil {
				t.Errorf("decode(plain JSON labelled %s) = %d bytes, nil error; want an error", c, len(got))
			}
		}
	})
}

func TestNewReaderEmptyBody(t *testing.T) {
	for _, c := range []string{"gzip", "deflate", "br", "zstd", "gzip, br"} {
		got, err := decode(nil, []string{c}, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("decode(empty, %q) = %q, %v; want empty, nil", c, got, err)
		}
	}
	// Encodings of the empty document are as short as one byte (br).
	for _, c := range []string{"gzip", "deflate", "deflate-raw", "br", "zstd"} {
		body := encode(t, nil, c)
		got, err := decode(body, []string{strings.TrimSuffix(c, "-raw")}, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("decode(%s of nothing, %d bytes) = %q, %v; want empty, nil", c, len(body), got, err)
		}
	}
}

// failingReader fails the test if anything reads it.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("body read")
	return 0, io.ErrUnexpectedEOF
}

func TestNewReaderUnsupported(t *testing.T) {
	tests := [][]string{
		{"compress"},
		{"gzip;q=1"},
		{"br, foo"},
		{"gzip", "exi"},
		{"gzip, gzip, gzip, gzip, gzip"},
		{strings.Repeat("x", 1000)},
	}
	for _, ce := range tests {
		_, err := NewReader(failingReader{t}, ce, 1<<20)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewReader(%q) error = %v, want ErrUnsupported", ce, err)
		}
		if err != nil && len(err.Error()) > 100 {
			t.Errorf("NewReader(%q) error is %d bytes long; it should quote a bounded part of the header", ce, len(err.Error()))
		}
	}
	if _, err := NewReader(failingReader{t}, nil, 0); err == nil {
		t.Error("NewReader(max 0) error = nil, want an error")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestNewReaderClose(t *testing.T) {
	body := &closeRecorder{Reader: bytes.NewReader(encode(t, []byte("hello"), "gzip"))}
	r, err := NewReader(body, []string{"gzip"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !body.closed {
		t.Error("Close did not close the body")
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close error = nil, want an error")
	}
}

// Pooled decoders and encoders are reused safely across goroutines.
func TestConcurrentReuse(t *testing.T) {
	data := sampleJSON(200)
	codings := []string{"gzip", "deflate", "br", "zstd"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				c := codings[(g+i)%len(codings)]
				var buf bytes.Buffer
				w, err := NewWriter(&buf, c)
				if err != nil {
					t.Error(err)
					return
				}
				w.Write(data)
				if err := w.Close(); err != nil {
					t.Error(err)
					return
				}
				got, err := decode(buf.Bytes(), []string{c}, 1<<20)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("round trip %s: %d bytes, %v", c, len(got), err)
					return
				}
				// A truncated body leaves the pooled decoder in an error state.
				if _, err := decode(buf.Bytes()[:buf.Len()/2], []string{c}, 1<<20); err == nil {
					t.Errorf("truncated %s decoded without error", c)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewWriter(t *testing.T) {
	data := sampleJSON(1000)
	for _, c := range []string{"gzip", "br", "zstd", "deflate", ""} {
		t.Run("coding="+c, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, c)
			if err != nil {
				t.Fatalf("NewWriter(%q): %v", c, err)
			}
			for chunk := range slices.Chunk(data, 4096) {
				if _, err := w.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.(interface{ Flush() error }).Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if c != "" && buf.Len() >= len(data) {
				t.Errorf("NewWriter(%q) wrote %d bytes for %d bytes of JSON, want fewer", c, buf.Len(), len(data))
			}
			// Decode with the libraries' own readers where they exist.
			got, err := decode(buf.Bytes(), []string{c}, 1<<30)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("round trip through %q changed the body", c)
			}
			if _, err := w.Write([]byte("x")); c != "" && err == nil {
				t.Error("Write after Close error = nil, want an error")
			}
		})
	}
	if _, err := NewWriter(io.Discard, "compress"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewWriter(compress) error = %v, want ErrUnsupported", err)
	}
	// Close never closes the destination.
	dst := &closeRecorder{}
	for _, c := range []string{"", "gzip"} {
		w, _ := NewWriter(writerOnly{dst}, c)
		w.Close()
	}
	if dst.closed {
		t.Error("Close closed the destination")
	}
}

type writerOnly struct{ c *closeRecorder }

func (writerOnly) Write(p []byte) (int, error) { return len(p), nil }

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept []string
		want   string
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"gzip"}, "gzip"},
		{[]string{"gzip, deflate, br"}, "br"},
		{[]string{"gzip, deflate, br, zstd"}, "zstd"},
		{[]string{"gzip", "br"}, "br"},
		{[]string{"GZIP, BR"}, "br"},
		{[]string{"deflate"}, ""},
		{[]string{"identity"}, ""},
		{[]string{"br;q=0.5, gzip;q=0.8"}, "gzip"},
		{[]string{"br;q=0.8, gzip;q=0.8"}, "br"},
		{[]string{"zstd;q=0, br;q=0, gzip"}, "gzip"},
		{[]string{"gzip;q=0"}, ""},
		{[]string{"*"}, "zstd"},
		{[]string{"*;q=0.1, gzip;q=0.5"}, "gzip"},
		{[]string{"*;q=0"}, ""},
		{[]string{"*, zstd;q=0"}, "br"},
		{[]string{"x-gzip"}, "gzip"},
		{[]string{"gzip ; q=1.000"}, "gzip"},
		{[]string{"gzip;Q=0.001"}, "gzip"},
		{[]string{"gzip;q=1.5"}, ""},
		{[]string{"gzip;q=0.0001"}, ""},
		{[]string{"gzip;q=abc"}, ""},
		{[]string{"gzip;q=0.5, br;q=x"}, "gzip"},
		{[]string{"gzip, gzip;q=0"}, ""},
		{[]string{"br;level=5;q=0.9, gzip;q=0.8"}, "br"},
		{[]string{" , ,gzip"}, "gzip"},
		{[]string{"compress, exi"}, ""},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.accept); got != tt.want {
			t.Errorf("Negotiate(%q) = %q, want %q", tt.accept, got, tt.want)
		}
	}
}

func TestParseCodings(t *testing.T) {
	got, err := parseCodings([]string{"x-gzip, identity", " BR ", ",zstd"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gzip", "br", "zstd"}, got); diff != "" {
		t.Errorf("parseCodings mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkNewReader(b *testing.B) {
	data := sampleJSON(5000)
	for _, c := range []string{"gzip", "br", "zstd"} {
		body := encode(b, data, c)
		b.Run(c, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(body), []string{c}, 1<<30)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}

func BenchmarkNewWriter(b *testing.B) {
	data := sampleJSON(5000)
	for _, c := range []string{"gzip", "br", "zstd"} {
		b.Run(c, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewWriter(io.Discard, c)
				if err != nil {
					b.Fatal(err)
				}
				w.Write(data)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
