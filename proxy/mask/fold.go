package mask

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// appendFold appends the case-folded form of s to dst: every rune is replaced by the smallest
// lower-case form in its Unicode simple-folding orbit, so "PHONE", "Phone" and "phone" fold
// alike, and so do the Kelvin sign and "k". ASCII is folded without decoding.
func appendFold(dst, s []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(s))[:n+len(s)]
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return appendFoldSlow(dst[:n+i], s[i:])
		}
		dst[n+i] = lower[c]
	}
	return dst
}

// lower maps ASCII upper-case letters to lower case and every other byte to itself.
var lower = func() (t [256]byte) {
	for c := range t {
		t[c] = byte(c)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c - 'A' + 'a')
	}
	return t
}()

func appendFoldSlow(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, lower[c])
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

// foldRune maps r to the canonical member of its simple-folding orbit.
func foldRune(r rune) rune {
	best := unicode.ToLower(r)
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if l := unicode.ToLower(f); l < best {
			best = l
		}
	}
	return best
}

// fold returns the case-folded form of s.
func fold(s string) string { return string(appendFold(nil, []byte(s))) }
