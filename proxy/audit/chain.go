package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"github.com/tidwall/gjson"
)

// ZeroHash is the prev of the first line of a chain: 64 zeros.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// maxLine is the longest line the log writes and the readers accept, newline excluded.
const maxLine = 16 << 20

const hexLen = 2 * sha256.Size

// A line ends with `,"prev":"<64 hex>","hash":"<64 hex>"}`. The hash covers the prev as written
// followed by the line up to `,"hash":"`, closed with `}`: the line with its hash member removed.
var (
	prevKey   = []byte(`,"prev":"`)
	hashKey   = []byte(`","hash":"`) // closes prev, opens hash
	hashCut   = []byte(`,"hash":"`)  // where the canonical bytes end
	lineEnd   = []byte(`"}`)
	closeBody = []byte(`}`)
	// suffixLen is the length of the fixed-size tail that starts at prevKey.
	suffixLen = len(prevKey) + hexLen + len(hashKey) + hexLen + len(lineEnd)
	// encodedEnd is how encoding/json ends a Record whose Prev is ZeroHash and Hash is empty.
	encodedEnd = []byte(`,"prev":"` + ZeroHash + `","hash":""}` + "\n")
)

// ErrTooLarge is returned for a record whose line would exceed 16 MiB.
var ErrTooLarge = errors.New("audit: record too large")

// encodeLine returns rec as a line ending in "\n", with prev and hash left as zeros for chain to
// fill. rec is copied; the caller's record is not modified.
func encodeLine(rec *Record) ([]byte, error) {
	r := *rec
	r.Time = r.Time.UTC()
	r.Prev, r.Hash = ZeroHash, ""
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&r); err != nil {
		return nil, fmt.Errorf("audit: encode record: %w", err)
	}
	b := buf.Bytes()
	if !bytes.HasSuffix(b, encodedEnd) {
		return nil, errors.New("audit: encode record: prev and hash are not the last members")
	}
	// Replace `""}` + "\n" by `<64 zeros>"}` + "\n".
	body := b[:len(b)-len(`""}`+"\n")]
	line := make([]byte, 0, len(body)+1+hexLen+len(lineEnd)+1)
	line = append(line, body...)
	line = append(line, '"')
	line = append(line, ZeroHash...)
	line = append(line, lineEnd...)
	line = append(line, '\n')
	if len(line)-1 > maxLine {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(line)-1)
	}
	return line, nil
}

// chain writes prev into an encoded line (ending in "\n") and fills in its hash, which it
// returns.
func chain(h hash.Hash, line []byte, prev string) string {
	n := len(line) - 1 // without the newline
	hashAt := n - len(lineEnd) - hexLen
	prevAt := hashAt - len(hashKey) - hexLen
	copy(line[prevAt:], prev)
	sum := lineSum(h, line[prevAt:prevAt+hexLen], line[:hashAt-len(hashCut)])
	hex.Encode(line[hashAt:], sum)
	return string(line[hashAt : hashAt+hexLen])
}

// lineSum is sha256(prev || body || "}"), body being the line up to `,"hash":"`.
func lineSum(h hash.Hash, prev, body []byte) []byte {
	h.Reset()
	h.Write(prev)
	h.Write(body)
	h.Write(closeBody)
	var sum [sha256.Size]byte
	return h.Sum(sum[:0])
}

// parsedLine is what checkLine learns about a line.
type parsedLine struct {
	prev, hash []byte // hex, as written
}

// checkLine checks that line (without its newline) is a well-formed audit line whose hash matches
// its content. It returns a reason when it is not.
func checkLine(h hash.Hash, line []byte) (parsedLine, string) {
	n := len(line)
	if n == 0 {
		return parsedLine{}, "empty line"
	}
	if n < 1+suffixLen || line[0] != '{' || !bytes.HasSuffix(line, lineEnd) {
		return parsedLine{}, "not an audit line: it does not end with prev and hash members"
	}
	hashAt := n - len(lineEnd) - hexLen
	prevAt := hashAt - len(hashKey) - hexLen
	if !bytes.Equal(line[hashAt-len(hashKey):hashAt], hashKey) ||
		!bytes.Equal(line[prevAt-len(prevKey):prevAt], prevKey) {
		return parsedLine{}, "not an audit line: it does not end with prev and hash members"
	}
	p := parsedLine{prev: line[prevAt : prevAt+hexLen], hash: line[hashAt : hashAt+hexLen]}
	if !isHex(p.prev) || !isHex(p.hash) {
		return parsedLine{}, "not an audit line: prev or hash is not 64 lower-case hex digits"
	}
	var want [hexLen]byte
	hex.Encode(want[:], lineSum(h, p.prev, line[:hashAt-len(hashCut)]))
	if !bytes.Equal(want[:], p.hash) {
		return p, "hash mismatch: the line was changed after it was written"
	}
	// Only someone recomputing the chain could write an invalid line with a valid hash, and
	// they could as well write a valid one; this catches bugs, not forgery.
	if !gjson.ValidBytes(line) {
		return p, "not valid JSON"
	}
	return p, ""
}

func isHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isHexString reports whether s is a chain hash: 64 lower-case hex digits.
func isHexString(s string) bool {
	return len(s) == hexLen && isHex([]byte(s))
}

// jsonString is s as encoding/json writes it in a line (HTML characters not escaped).
func jsonString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
