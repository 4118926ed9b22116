package mask

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"
)

// Output works on spans: consumed input is not copied token by token but stays pending from
// w.span to the read position, and is copied to out in bulk when something must change
// (a rewritten token, a drop), before the input window moves, and between records. Changes
// to what was already copied are truncations of out at positions taken with outPos.

// outPos returns the length out will have once the pending input is copied.
func (w *walker) outPos() int {
	if w.discard > 0 {
		return len(w.out)
	}
	return len(w.out) + int(w.in.offset()-w.span)
}

// copyTo copies the pending input up to body offset off to out (nothing while discarding).
func (w *walker) copyTo(off int64) {
	if w.discard == 0 {
		in := w.in
		w.out = append(w.out, in.buf[w.span-in.base:off-in.base]...)
	}
	w.span = off
}

// sync copies all pending input to out.
func (w *walker) sync() { w.copyTo(w.in.offset()) }

// truncate cuts the output back to n, an earlier outPos.
func (w *walker) truncate(n int) {
	w.sync()
	if w.discard == 0 {
		w.out = w.out[:n]
	}
}

// cutByte removes the output byte at n, an earlier outPos (a comma).
func (w *walker) cutByte(n int) {
	w.sync()
	if w.discard == 0 {
		w.out = append(w.out[:n], w.out[n+1:]...)
	}
}

// replace writes s as a JSON string in place of the token that started at body offset start
// and ends at the read position.
func (w *walker) replace(start int64, s []byte) {
	if w.discard > 0 {
		return
	}
	w.copyTo(start)
	w.out = appendQuoted(w.out, s)
	w.span = w.in.offset()
}

// startDiscard begins reading a value that is not written.
func (w *walker) startDiscard() {
	w.sync()
	w.discard++
}

// endDiscard ends it: output resumes at the read position.
func (w *walker) endDiscard() {
	w.discard--
	if w.discard == 0 {
		w.span = w.in.offset()
	}
}

// fill reads more input, copying the pending input first since the window is about to move.
func (w *walker) fill() error {
	w.sync()
	return w.in.fill()
}

// peek returns the byte at the read position, or 0 when the window is empty; a result above
// ' ' saves a call to next.
func (w *walker) peek() byte {
	if in := w.in; in.pos < len(in.buf) {
		return in.buf[in.pos]
	}
	return 0
}

// next returns the next byte that is not whitespace, unread, or io.EOF at the end of the body.
func (w *walker) next() (byte, error) {
	in := w.in
	if in.pos < len(in.buf) && in.buf[in.pos] > ' ' {
		return in.buf[in.pos], nil
	}
	return w.space()
}

// space consumes whitespace for next. Runs over wsKeep bytes are cut to wsKeep.
func (w *walker) space() (byte, error) {
	in := w.in
	run := 0
	for {
		for in.pos < len(in.buf) {
			switch c := in.buf[in.pos]; c {
			case ' ', '\n', '\r', '\t':
				in.pos++
				if run++; run > wsKeep {
					if run == wsKeep+1 {
						w.copyTo(in.offset() - 1)
					}
					w.span = in.offset()
				}
			default:
				return c, nil
			}
		}
		if err := w.fill(); err != nil {
			return 0, err
		}
	}
}

// Masks for testing the eight bytes of a uint64 at once.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// Byte classes inside a JSON string: 0 is a byte that needs no attention.
const (
	sPlain = iota
	sQuote
	sEscape
	sControl
	sHigh
)

var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = sControl
	}
	t['"'] = sQuote
	t['\\'] = sEscape
	for c := 0x80; c < 0x100; c++ {
		t[c] = sHigh
	}
	return t
}()

// str scans the string token at the read position (a '"'). raw is the bytes between the
// quotes, valid until the input is read again; esc reports escapes (raw is not the text),
// ascii that every byte is ASCII.
func (w *walker) str() (raw []byte, esc, ascii bool, err error) {
	in := w.in
	k := 1
	ascii = true
	for {
		buf := in.buf[in.pos:]
	scan:
		for k < len(buf) {
			// Skip eight bytes at a time while none of them is '"', '\', a control
			// character or non-ASCII. The lowest flagged byte is always a true one (the
			// tests only misfire above a true hit), so jump straight to it.
			for k+8 <= len(buf) {
				v := binary.LittleEndian.Uint64(buf[k:])
				q := v ^ (lsb * '"')
				b := v ^ (lsb * '\\')
				if m := (v | (v-lsb*0x20)&^v | (q-lsb)&^q | (b-lsb)&^b) & msb; m != 0 {
					k += bits.TrailingZeros64(m) >> 3
					goto special
				}
				k += 8
			}
			for k < len(buf) && strClass[buf[k]] == sPlain {
				k++
			}
			if k == len(buf) {
				break
			}
		special:
			switch strClass[buf[k]] {
			case sPlain:
				k++
			case sQuote:
				in.pos += k + 1
				return buf[1:k], esc, ascii, nil
			case sEscape:
				if k+1 >= len(buf) {
					break scan
				}
				switch buf[k+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					k += 2
				case 'u':
					if k+6 > len(buf) {
						break scan
					}
					if !isHex4(buf[k+2 : k+6]) {
						return nil, esc, ascii, w.malformed("invalid \\u escape")
					}
					k += 6
				default:
					return nil, esc, ascii, w.malformed("invalid escape")
				}
				esc = true
			case sControl:
				return nil, esc, ascii, w.malformed("control character in string")
			default:
				// A run of multi-byte runes: three-byte ones (Chinese text) inline.
				ascii = false
				for k < len(buf) && buf[k] >= 0x80 {
					if c := buf[k]; c >= 0xE1 && c <= 0xEF && c != 0xED && k+2 < len(buf) &&
						buf[k+1]&0xC0 == 0x80 && buf[k+2]&0xC0 == 0x80 {
						k += 3
						continue
					}
					n := utf8Len(buf[k:])
					if n == 0 {
						if !utf8.FullRune(buf[k:]) && !in.eof {
							break scan
						}
						return nil, esc, ascii, w.malformed("invalid UTF-8 in string")
					}
					k += n
				}
			}
		}
		if err := w.fill(); err != nil {
			if err == io.EOF {
				return nil, esc, ascii, w.malformed("unterminated string")
			}
			return nil, esc, ascii, err
		}
	}
}

// shortStr scans a string token of plain ASCII bytes (no escapes) that ends within the next
// 16 bytes of the window, the common key; ok false means the caller must use str.
func (w *walker) shortStr() (raw []byte, ascii, ok bool) {
	in := w.in
	start := in.pos + 1
	buf := in.buf
	for k := start; k+8 <= len(buf) && k < start+16; k += 8 {
		v := binary.LittleEndian.Uint64(buf[k:])
		q := v ^ (lsb * '"')
		b := v ^ (lsb * '\\')
		if m := (v | (v-lsb*0x20)&^v | (q-lsb)&^q | (b-lsb)&^b) & msb; m != 0 {
			k += bits.TrailingZeros64(m) >> 3
			if buf[k] != '"' {
				return nil, false, false
			}
			in.pos = k + 1
			return buf[start:k], true, true
		}
	}
	return nil, false, false
}

// utf8Len returns the length of the valid multi-byte UTF-8 sequence at the start of b, or 0.
// Two- and three-byte sequences (Chinese text) are checked inline.
func utf8Len(b []byte) int {
	c := b[0]
	switch {
	case c >= 0xC2 && c < 0xE0:
		if len(b) >= 2 && b[1]&0xC0 == 0x80 {
			return 2
		}
		return 0
	case c >= 0xE1 && c < 0xF0 && c != 0xED:
		if len(b) >= 3 && b[1]&0xC0 == 0x80 && b[2]&0xC0 == 0x80 {
			return 3
		}
		return 0
	}
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		return 0
	}
	return n
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case isDigit(c):
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// appendUnescaped appends the decoded form of a scanned (valid) string token. A lone
// surrogate decodes to U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				return append(dst, raw[i:]...)
			}
			dst = append(dst, raw[i:i+j]...)
			i += j
			continue
		}
		c := raw[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(raw[i : i+4])
			i += 4
			if 0xD800 <= r && r < 0xDC00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if r2 := hexVal(raw[i+2 : i+6]); 0xDC00 <= r2 && r2 < 0xE000 {
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r) // surrogates left over become U+FFFD
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// needsEscape marks the bytes appendQuoted escapes.
var needsEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendQuoted appends s as a JSON string, escaping '"', '\' and control characters.
func appendQuoted(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		// Skip eight bytes at a time while none needs escaping (see str).
		for i+8 <= len(s) {
			v := binary.LittleEndian.Uint64(s[i:])
			q := v ^ (lsb * '"')
			b := v ^ (lsb * '\\')
			if m := ((v-lsb*0x20)&^v | (q-lsb)&^q | (b-lsb)&^b) & msb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if !needsEscape[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func isNumChar(c byte) bool {
	return isDigit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// scanNumber scans the number token at the read position; raw is valid until the input is
// read again.
func (w *walker) scanNumber() ([]byte, error) {
	in := w.in
	k := 0
	for {
		for in.pos+k < len(in.buf) && isNumChar(in.buf[in.pos+k]) {
			k++
		}
		if in.pos+k < len(in.buf) || in.eof {
			break
		}
		if err := w.fill(); err != nil && err != io.EOF {
			return nil, err
		}
	}
	raw := in.buf[in.pos : in.pos+k]
	if !validNumber(raw) {
		return nil, w.malformed("invalid number")
	}
	in.pos += k
	return raw, nil
}

// scanWord consumes the literal word (true, false, null) at the read position.
func (w *walker) scanWord(word []byte) error {
	in := w.in
	for len(in.buf)-in.pos < len(word) {
		if err := w.fill(); err != nil {
			return w.eofErr(err)
		}
	}
	if !bytes.Equal(in.buf[in.pos:in.pos+len(word)], word) {
		return w.malformed("invalid literal")
	}
	in.pos += len(word)
	return nil
}

// validNumber reports whether b is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i == len(b)
}

// separator reads what follows a member or element of a container that ends with end: a
// comma and the first byte of the next member or element (more is true, comma is the
// output position of the comma), or end, which it consumes. A comma before end is a
// trailing comma: malformed.
func (w *walker) separator(end byte) (next byte, comma int, more bool, err error) {
	c := w.peek()
	if c <= ' ' {
		if c, err = w.next(); err != nil {
			return 0, 0, false, w.eofErr(err)
		}
	}
	switch c {
	case ',':
		comma = w.outPos()
		w.in.pos++
		if c = w.peek(); c <= ' ' {
			if c, err = w.next(); err != nil {
				return 0, 0, false, w.eofErr(err)
			}
		}
		if c == end {
			return 0, 0, false, w.malformed("trailing comma")
		}
		return c, comma, true, nil
	case end:
		w.in.pos++
		return 0, 0, false, nil
	}
	return 0, 0, false, w.malformed("expected ',' or '" + string(end) + "'")
}

func (w *walker) malformed(what string) error {
	return fmt.Errorf("mask: offset %d: %s: %w", w.in.offset(), what, ErrMalformed)
}

// eofErr turns io.EOF in the middle of a document into ErrMalformed.
func (w *walker) eofErr(err error) error {
	if err == io.EOF {
		return w.malformed("unexpected end of body")
	}
	return err
}

func (w *walker) tooDeep() error {
	return fmt.Errorf("mask: offset %d: nesting over %d: %w", w.in.offset(), w.p.lim.MaxDepth, ErrTooDeep)
}
