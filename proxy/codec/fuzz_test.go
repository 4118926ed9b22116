package codec

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzNewReader")

const (
	corpusDir = "testdata/fuzz/FuzzNewReader"
	fuzzMax   = 64 << 10
)

type seed struct {
	body     []byte
	encoding string
}

// readerSeeds are the REDTEAM 16/28 cases by corpus file name; the prefix says what decoding
// must end in: ok_, toolarge_, unsupported_ or error_.
func readerSeeds(t testing.TB) map[string]seed {
	json := sampleJSON(20)
	zeros := make([]byte, 1<<20)
	trunc := func(b []byte) []byte { return b[:len(b)*2/3] }
	return map[string]seed{
		"ok_gzip":                   {encode(t, json, "gzip"), "gzip"},
		"ok_x_gzip":                 {encode(t, json, "gzip"), "x-gzip"},
		"ok_deflate_zlib":           {encode(t, json, "deflate"), "deflate"},
		"ok_deflate_raw":            {encode(t, json, "deflate-raw"), "deflate"},
		"ok_br":                     {encode(t, json, "br"), "br"},
		"ok_zstd":                   {encode(t, json, "zstd"), "zstd"},
		"ok_gzip_br":                {encode(t, json, "gzip", "br"), "gzip, br"},
		"ok_identity":               {json, "identity"},
		"ok_empty_gzip":             {nil, "gzip"},
		"ok_br_of_nothing":          {encode(t, nil, "br"), "br"},
		"toolarge_gzip_bomb":        {encode(t, zeros, "gzip"), "gzip"},
		"toolarge_br_bomb":          {encode(t, zeros, "br"), "br"},
		"toolarge_zstd_bomb":        {encode(t, zeros, "zstd"), "zstd"},
		"toolarge_nested_gzip_bomb": {encode(t, zeros, "gzip", "gzip"), "gzip, gzip"},
		"toolarge_spinning_deflate": {encode(t, emptyStoredBlocks(100_000), "gzip"), "deflate, gzip"},
		"error_truncated_gzip":      {trunc(encode(t, json, "gzip")), "gzip"},
		"error_truncated_br":        {trunc(encode(t, json, "br")), "br"},
		"error_truncated_zstd":      {trunc(encode(t, json, "zstd")), "zstd"},
		"error_gzip_trailing_junk":  {append(encode(t, json, "gzip"), "junk"...), "gzip"},
		"error_zstd_huge_window":    {[]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00}, "zstd"},
		"error_plain_as_gzip":       {json, "gzip"},
		"error_zlib_dictionary":     {[]byte{0x78, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00}, "deflate"},
		"unsupported_compress":      {json, "compress"},
		"unsupported_too_many":      {json, "gzip,gzip,gzip,gzip,gzip"},
	}
}

func seedFile(s seed) string {
	return "go test fuzz v1\n[]byte(" + strconv.Quote(string(s.body)) + ")\nstring(" + strconv.Quote(s.encoding) + ")\n"
}

func readSeedFile(t *testing.T, path string) seed {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a go test fuzz v1 file with two values", path)
	}
	arg := func(line, typ string) string {
		if !strings.HasPrefix(line, typ+"(") || !strings.HasSuffix(line, ")") {
			t.Fatalf("%s: %q is not a %s value", path, line, typ)
		}
		s, err := strconv.Unquote(line[len(typ)+1 : len(line)-1])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return s
	}
	return seed{body: []byte(arg(lines[1], "[]byte")), encoding: arg(lines[2], "string")}
}

// TestFuzzSeedCorpus checks that every checked-in seed decodes to the outcome its name
// promises. With -update-corpus it rewrites the seeds first.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := readerSeeds(t)
	if *updateCorpus {
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			if err := os.WriteFile(filepath.Join(corpusDir, name), []byte(seedFile(s)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		if _, err := os.Stat(filepath.Join(corpusDir, name)); err != nil {
			t.Errorf("seed %s missing (run with -update-corpus): %v", name, err)
		}
	}
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		s := readSeedFile(t, filepath.Join(corpusDir, e.Name()))
		out, err := decode(s.body, []string{s.encoding}, fuzzMax)
		var ok bool
		switch prefix, _, _ := strings.Cut(e.Name(), "_"); prefix {
		case "ok":
			ok = err == nil
		case "toolarge":
			ok = errors.Is(err, ErrTooLarge)
		case "unsupported":
			ok = errors.Is(err, ErrUnsupported)
		case "error":
			ok = err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupported)
		default:
			t.Errorf("seed %s: unknown outcome prefix", e.Name())
			continue
		}
		if !ok {
			t.Errorf("seed %s: decode = %d bytes, error %v; not the outcome its name promises", e.Name(), len(out), err)
		}
	}
}

// FuzzNewReader: whatever the body and Content-Encoding, NewReader never panics, never
// yields more than max bytes, fails only with ErrUnsupported up front, never reports a
// broken stream as a clean io.EOF, and decodes the same input the same way twice (pooled
// decoders keep no state between bodies).
func FuzzNewReader(f *testing.F) {
	for _, s := range readerSeeds(f) {
		f.Add(s.body, s.encoding)
	}
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		first, err1 := fuzzDecode(t, body, encoding)
		second, err2 := fuzzDecode(t, body, encoding)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(first, second) {
			t.Fatalf("two decodes of the same input differ: %d bytes, %v vs %d bytes, %v", len(first), err1, len(second), err2)
		}
	})
}

func fuzzDecode(t *testing.T, body []byte, encoding string) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(body), []string{encoding}, fuzzMax)
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("NewReader(%q) error = %v, want nil or ErrUnsupported", encoding, err)
		}
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	buf := make([]byte, 1000) // small reads exercise the limit's arithmetic
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if out.Len() > fuzzMax {
			t.Fatalf("decoded %d bytes, more than max %d", out.Len(), fuzzMax)
		}
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				t.Fatalf("error %v wraps io.EOF", err)
			}
			if _, again := r.Read(buf); again == nil {
				t.Fatalf("Read after error %v succeeded", err)
			}
			return out.Bytes(), err
		}
	}
}
