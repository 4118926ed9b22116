package mask

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

var (
	wordTrue  = []byte("true")
	wordFalse = []byte("false")
	wordNull  = []byte("null")
)

// key reads an object key and returns its decoded text, valid until the input is read
// again, and whether that text is all ASCII.
func (w *walker) key() (dec []byte, ascii bool, err error) {
	raw, esc, ascii, err := w.str()
	if err != nil || !esc {
		return raw, ascii, err
	}
	w.keyBuf = appendUnescaped(w.keyBuf[:0], raw)
	if bytes.IndexByte(w.keyBuf, 0) >= 0 {
		// Parsers disagree on such a key: libraries that keep keys as C strings (cJSON and
		// what is built on it) cut it at the NUL ("name\u0000" is "name"), JavaScript keeps it
		// whole. Refuse the document rather than guess which key a client will see.
		return nil, false, w.malformed("object key holds an escaped NUL")
	}
	return w.keyBuf, isASCII(w.keyBuf), nil
}

func isASCII(s []byte) bool {
	for _, c := range s {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// scanKey masks what the detectors find in the key dec, which started at body offset start.
func (w *walker) scanKey(start int64, dec []byte) {
	if w.discard > 0 || w.p.detect == 0 || w.plain > 0 || !scanCandidate(dec) {
		return
	}
	var hits int
	w.tmp, hits = appendScan(w.tmp[:0], dec, w.p.detect, &w.detects)
	if hits > 0 {
		w.changes++
		w.replace(start, w.tmp)
	}
}

func (w *walker) unescape(raw []byte, esc bool) []byte {
	if !esc {
		return raw
	}
	w.strBuf = appendUnescaped(w.strBuf[:0], raw)
	return w.strBuf
}

func (w *walker) stringValue(f *frame) error {
	start := w.in.offset()
	raw, _, ok := w.shortStr()
	esc := false
	if !ok {
		var err error
		if raw, esc, _, err = w.str(); err != nil {
			return err
		}
	}
	var dec []byte
	if f.rEnd > f.rStart {
		dec = w.unescape(raw, esc)
		w.rowLeaf(f, valString, dec)
	}
	if f.st > 0 || f.cp > 0 {
		if dec == nil {
			dec = w.unescape(raw, esc)
		}
		w.status(f, dec, false)
		w.captureString(f, dec)
	}
	if w.discard > 0 {
		return nil
	}
	if f.act >= 0 {
		if a := w.p.rules[f.act].act; a.Kind != Keep {
			if dec == nil {
				dec = w.unescape(raw, esc)
			}
			if f.structural && f.inherited && isIdent(dec) {
				return nil
			}
			w.leaf(a, f, start, dec, false)
		}
		return nil
	}
	if !w.p.masks || w.plain > 0 {
		return nil
	}
	if dec == nil {
		dec = w.unescape(raw, esc)
	}
	text, changed, err := w.freeText(f, dec)
	if err != nil {
		return err
	}
	if changed {
		w.replace(start, text)
	}
	return nil
}

// freeText applies the detectors to s, or the whole plan when s is itself a JSON object or
// array. It returns the rewritten text and whether anything changed.
func (w *walker) freeText(f *frame, s []byte) ([]byte, bool, error) {
	if looksJSON(s) && json.Valid(s) {
		if w.embed >= maxEmbed {
			return nil, false, fmt.Errorf("mask: offset %d: JSON embedded in strings over %d levels: %w", w.in.offset(), maxEmbed, ErrTooDeep)
		}
		before := w.changes
		out, err := w.embedded(f, s)
		if err != nil {
			return nil, false, err
		}
		return out, w.changes != before, nil
	}
	if w.p.detect == 0 || !scanCandidate(s) {
		return nil, false, nil
	}
	var hits int
	w.tmp, hits = appendScan(w.tmp[:0], s, w.p.detect, &w.detects)
	if hits == 0 {
		return nil, false, nil
	}
	w.changes++
	return w.tmp, true, nil
}

// looksJSON reports whether s starts, after whitespace, like a JSON object or array.
func looksJSON(s []byte) bool {
	for _, c := range s {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// embedded rewrites the JSON document doc found in the string value f: the document's root
// stands where the string stands, so path rules continue into it. Row rules do not.
func (w *walker) embedded(f *frame, doc []byte) ([]byte, error) {
	saveIn, saveOut, saveSpan := w.in, w.out, w.span
	w.in = &input{buf: slices.Clone(doc), eof: true, max: len(doc), limit: -1}
	w.out = make([]byte, 0, len(doc)+len(doc)/4+16)
	w.span = 0
	w.embed++
	w.hold++
	ef := frame{
		act: f.act, inherited: f.inherited, depth: f.depth, recPath: -1,
		fStart: f.fStart, fEnd: f.fEnd,
		rStart: int32(len(w.rnodes)), rEnd: int32(len(w.rnodes)),
	}
	err := w.embeddedDoc(&ef)
	w.sync()
	out := w.out
	w.in, w.out, w.span = saveIn, saveOut, saveSpan
	w.embed--
	w.hold--
	return out, err
}

func (w *walker) embeddedDoc(f *frame) error {
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if err := w.value(f, c); err != nil {
		return err
	}
	switch _, err := w.next(); err {
	case io.EOF:
		return nil
	case nil:
		return w.malformed("data after the embedded document")
	default:
		return err
	}
}

func (w *walker) number(f *frame) error {
	start := w.in.offset()
	raw, err := w.scanNumber()
	if err != nil {
		return err
	}
	if f.rEnd > f.rStart {
		w.rowLeaf(f, valNumber, raw)
	}
	w.status(f, raw, false)
	if w.discard > 0 {
		return nil
	}
	if f.act >= 0 {
		if a := w.p.rules[f.act].act; a.Kind != Keep && !(f.structural && f.inherited && len(raw) <= 3 && allDigits(raw)) {
			w.leaf(a, f, start, raw, true)
		}
		return nil
	}
	if w.p.detect != 0 && w.plain == 0 && len(raw) >= 11 && len(raw) <= 19 && allDigits(raw) {
		var hits int
		w.tmp, hits = appendScan(w.tmp[:0], raw, w.p.detect, &w.detects)
		if hits > 0 {
			w.changes++
			w.replace(start, w.tmp)
		}
	}
	return nil
}

// isIdent reports whether s is a lower-case identifier of at most 16 bytes ([a-z_]), the
// value a Layout.Structural key keeps under an inherited action.
func isIdent(s []byte) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

func (w *walker) literal(f *frame, word []byte, kind byte) error {
	start := w.in.offset()
	if err := w.scanWord(word); err != nil {
		return err
	}
	if f.rEnd > f.rStart {
		w.rowLeaf(f, kind, word)
	}
	w.status(f, word, false)
	if w.discard > 0 || f.act < 0 || kind == valNull {
		return nil
	}
	if a := w.p.rules[f.act].act; a.Kind == Redact || a.Kind == Hash {
		w.leaf(a, f, start, word, true)
	}
	return nil
}

// leaf replaces the leaf that started at body offset start, s (a decoded string, or with
// literal a number or boolean literal), by its rewrite under a (mask, redact or hash) as a
// JSON string. Leaves of an address object (a value inside one that mask:address governs)
// are masked generic.
func (w *walker) leaf(a Action, f *frame, start int64, s []byte, literal bool) {
	switch a.Kind {
	case Mask:
		format := a.Format
		if format == "address" && f.inherited {
			format = "generic"
		}
		w.tmp = appendMask(w.tmp[:0], format, s)
	case Redact:
		w.tmp = append(w.tmp[:0], "***"...)
	case Hash:
		w.tmp = w.appendHash(w.tmp[:0], s)
	default:
		return
	}
	if !literal && bytes.Equal(w.tmp, s) {
		return // unchanged: the token stays as written
	}
	w.changes++
	w.replace(start, w.tmp)
}

// appendHash appends the pseudonym of s: the first 32 hex digits of HMAC-SHA256(key, s).
func (w *walker) appendHash(dst, s []byte) []byte {
	w.mac.Reset()
	w.mac.Write(s)
	w.sum = w.mac.Sum(w.sum[:0])
	return hex.AppendEncode(dst, w.sum[:16])
}
