package mask

import (
	"bytes"
	"fmt"
)

// Detector indexes, in the order of scannerNames.
const (
	detPhone = iota
	detIDCard
	detBankCard
	detEmail
	detAddress
	numScanners
)

// scannerNames are the detector names a plan uses, by index.
var scannerNames = [numScanners]string{"phone", "id_card", "bank_card", "email", "address"}

// scanSet is a set of detectors, bit i for detector index i.
type scanSet uint8

func scanSetOf(names []string) (scanSet, error) {
	var set scanSet
next:
	for _, n := range names {
		for i, s := range scannerNames {
			if s == n {
				set |= 1 << i
				continue next
			}
		}
		return 0, fmt.Errorf("unknown detector %q", n)
	}
	return set, nil
}

func (s scanSet) has(i int) bool { return s&(1<<i) != 0 }

// Scan runs the named detectors over free text s and masks every hit in place with its
// format's mask (see MaskValue). It returns the masked text and the number of hits per
// detector, nil when there were none. Unknown detector names are ignored. The detectors:
//
//   - "phone": mainland mobile numbers 1[3-9] and 9 more digits, written together or grouped
//     3-4-4 with spaces or dashes, optionally prefixed by +86, 86 or 0086; never part of a
//     longer run of digits (a 12-digit number holds no phone number).
//   - "id_card": 18-character resident ID numbers (17 digits and a digit or X) with a valid
//     GB 11643 checksum and a plausible birth date (year 18xx to 20xx, month 01-12, day
//     01-31), not part of a longer run of digits.
//   - "bank_card": 13 to 19 digits, together or in groups of four separated by one space or
//     dash, passing the Luhn check, beginning with 2 to 6 (the card networks' ranges; this
//     keeps order numbers and snowflake ids starting with 1, 8 or 9 from matching).
//   - "email": local@domain.tld addresses with an ASCII local part and domain.
//   - "address": the street part of a Chinese address: a street name ending in 路, 街, 道,
//     巷, 弄, 里 or 村, a house number with 号, and the building, unit and room numbers after
//     it; replaced with "****" after the administrative prefix (see addrscan.go).
//
// A run of digits is tested as an ID first, then as a bank card, then as a phone number; an
// e-mail address wins over the digits in its local part.
func Scan(detectors []string, s string) (string, map[string]int) {
	var set scanSet
	for _, n := range detectors {
		for i, sn := range scannerNames {
			if sn == n {
				set |= 1 << i
			}
		}
	}
	var counts [numScanners]int
	out, hits := appendScan(nil, []byte(s), set, &counts)
	if hits == 0 {
		return s, nil
	}
	m := make(map[string]int)
	for i, c := range counts {
		if c > 0 {
			m[scannerNames[i]] = c
		}
	}
	return string(out), m
}

// scanCandidate reports whether s may hold a hit: an "@" for an e-mail address, or a chain
// of 11 digits, groups of digits joined by single spaces or dashes, for the others
// ("2024-11-03T08:15:27Z" has 14 digits but no such chain).
func scanCandidate(s []byte) bool {
	if len(s) < 6 {
		return false // full-width digits only lengthen a text: folded, it is shorter still
	}
	// One pass for the common case: no "@", no 号, no full-width forms, few digits.
	digits, wide := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case digitCount[c] == 1:
			digits++
		case c < 0x80:
			if c == '@' {
				return true
			}
		case c == 0xEF:
			wide = wide || i+2 < len(s) && s[i+1] == 0xBC && foldable(s[i+2])
		case c == hao[0] && i+2 < len(s) && s[i+1] == hao[1] && s[i+2] == hao[2]:
			return true
		}
	}
	if wide {
		return candidateWide(foldWidth(s))
	}
	if digits < 11 {
		return false
	}
	return digitChain(s)
}

// candidateWide is scanCandidate for a text whose full-width forms were folded.
func candidateWide(s []byte) bool {
	if len(s) < 6 {
		return false
	}
	if bytes.IndexByte(s, '@') >= 0 || bytes.Contains(s, []byte(hao)) {
		return true
	}
	d := 0
	for _, c := range s {
		d += int(digitCount[c])
	}
	return d >= 11 && digitChain(s)
}

// digitChain reports whether s holds a chain of 11 digits, groups joined by single spaces
// or dashes.
func digitChain(s []byte) bool {
	chain := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case digitCount[c] == 1:
			if chain++; chain >= 11 {
				return true
			}
		case (c == ' ' || c == '-') && chain > 0 && i+1 < len(s) && digitCount[s[i+1]] == 1:
		default:
			chain = 0
		}
	}
	return false
}

// digitCount is 1 for ASCII digits.
var digitCount = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	return t
}()

// appendScan appends s to dst with every hit of the detectors in set masked, adds the hits to
// counts, and returns the number of hits.
func appendScan(dst, s []byte, set scanSet, counts *[numScanners]int) ([]byte, int) {
	s = foldWidth(s)
	hits := 0
	copied := 0
	email := set.has(detEmail) && bytes.IndexByte(s, '@') >= 0
	for i := 0; i < len(s); {
		if !email {
			for i < len(s) && digitCount[s[i]] == 0 {
				i++
			}
			if i == len(s) {
				break
			}
		}
		c := s[i]
		if email && isLocalChar(c) && (i == 0 || !isLocalChar(s[i-1])) {
			if start, end := matchEmail(s, i); end > 0 {
				dst = append(dst, s[copied:start]...)
				dst = appendEmail(dst, s[start:end])
				counts[detEmail]++
				hits++
				i, copied = end, end
				continue
			}
		}
		if !isDigit(c) || (i > 0 && isDigit(s[i-1])) {
			i++
			continue
		}
		if set.has(detAddress) && copied <= i {
			if start, end := matchStreet(s, i, digitRun(s, i)); end > 0 && start >= copied {
				dst = append(dst, s[copied:start]...)
				dst = append(dst, addrMask...)
				counts[detAddress]++
				hits++
				i, copied = end, end
				continue
			}
		}
		kind, start, end := matchDigits(s, i, set)
		if kind < 0 {
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			continue
		}
		dst = append(dst, s[copied:start]...)
		switch kind {
		case detPhone:
			dst = appendPhone(dst, s[start:end])
		case detIDCard:
			dst = appendIDCard(dst, s[start:end])
		case detBankCard:
			dst = appendDigitsMasked(dst, s[start:end], 6, 4)
		}
		counts[kind]++
		hits++
		i, copied = end, end
	}
	return append(dst, s[copied:]...), hits
}

// matchDigits tests the run of digits starting at s[i]. It returns the detector that matched,
// where its mask starts (after a kept 86 or 0086 prefix) and where the hit ends, or -1.
func matchDigits(s []byte, i int, set scanSet) (kind, start, end int) {
	run := digitRun(s, i)
	next := i + run
	if set.has(detIDCard) {
		if e := i + 18; run == 18 || (run == 17 && next < len(s) && (s[next] == 'X' || s[next] == 'x')) {
			if (e == len(s) || !(isDigit(s[e]) || s[e] == 'X' || s[e] == 'x')) && validID(s[i:e]) {
				return detIDCard, i, e
			}
		}
	}
	if set.has(detBankCard) {
		if e := matchCard(s, i, run); e > 0 {
			return detBankCard, i, e
		}
	}
	if set.has(detPhone) {
		switch {
		case run == 11 && mobile(s[i:]):
			return detPhone, i, next
		case run == 13 && s[i] == '8' && s[i+1] == '6' && mobile(s[i+2:]):
			return detPhone, i + 2, next
		case run == 15 && string(s[i:i+4]) == "0086" && mobile(s[i+4:]):
			return detPhone, i + 4, next
		case run == 3 && mobile(s[i:]):
			if e := matchGroupedPhone(s, i); e > 0 {
				return detPhone, i, e
			}
		}
	}
	return -1, 0, 0
}

func digitRun(s []byte, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// mobile reports whether s begins like a mainland mobile number: 1 then 3 to 9.
func mobile(s []byte) bool { return len(s) >= 2 && s[0] == '1' && '3' <= s[1] && s[1] <= '9' }

// matchGroupedPhone matches "138 0013 5521" or "138-0013-5521" at s[i:].
func matchGroupedPhone(s []byte, i int) int {
	if i+13 > len(s) {
		return -1
	}
	g := s[i : i+13]
	if !isSep(g[3]) || !isSep(g[8]) || digitRun(g, 4) != 4 || digitRun(g, 9) != 4 {
		return -1
	}
	if i+13 < len(s) && isDigit(s[i+13]) {
		return -1
	}
	return i + 13
}

func isSep(c byte) bool { return c == ' ' || c == '-' }

// matchCard matches a bank card number at s[i:], whose first run of digits is run long.
func matchCard(s []byte, i, run int) int {
	var buf [19]byte
	var digits []byte
	end := -1
	switch {
	case run >= 13 && run <= 19:
		digits, end = s[i:i+run], i+run
	case run == 4 && i+4 < len(s) && isSep(s[i+4]):
		sep := s[i+4]
		n := copy(buf[:], s[i:i+4])
		j := i + 4
		for j+1 < len(s) && s[j] == sep && isDigit(s[j+1]) {
			g := digitRun(s, j+1)
			if g > 4 || n+g > len(buf) {
				return -1
			}
			n += copy(buf[n:], s[j+1:j+1+g])
			j += 1 + g
			if g < 4 {
				break
			}
		}
		if n < 13 {
			return -1
		}
		digits, end = buf[:n], j
	default:
		return -1
	}
	if digits[0] < '2' || digits[0] > '6' || !luhn(digits) {
		return -1
	}
	return end
}

// idWeights are the GB 11643 checksum weights; idCheck maps the weighted sum mod 11 to the
// check character.
var (
	idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	idCheck   = "10X98765432"
)

// validID reports whether the 18 characters in s are a resident ID number with a valid
// checksum and a plausible birth date.
func validID(s []byte) bool {
	if len(s) != 18 || !allDigits(s[:17]) {
		return false
	}
	sum := 0
	for i, w := range idWeights {
		sum += int(s[i]-'0') * w
	}
	check := s[17]
	if check == 'x' {
		check = 'X'
	}
	if idCheck[sum%11] != check {
		return false
	}
	century := string(s[6:8])
	month := int(s[10]-'0')*10 + int(s[11]-'0')
	day := int(s[12]-'0')*10 + int(s[13]-'0')
	return (century == "18" || century == "19" || century == "20") &&
		month >= 1 && month <= 12 && day >= 1 && day <= 31
}

// isLocalChar reports whether c may appear in the local part of an e-mail address.
func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isAlnum(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// matchEmail matches an e-mail address whose local part is the run of local characters
// starting at s[i]. It returns the address's bounds, or end 0.
func matchEmail(s []byte, i int) (start, end int) {
	at := i
	for at < len(s) && isLocalChar(s[at]) {
		at++
	}
	if at == len(s) || s[at] != '@' {
		return 0, 0
	}
	start = i
	for start < at && (s[start] == '.' || s[start] == '-' || s[start] == '+') {
		start++
	}
	if start == at {
		return 0, 0 // no local part
	}
	end = domainAt(s, at+1)
	if end < 0 {
		return 0, 0
	}
	// A chain (a@b.cc@d.ee, a@b.cc%x@d.ee) is one address, masked up to its last '@': a
	// domain is made of local characters, so once the rest is masked no part of the chain
	// may be left to read as an address on its own.
	for {
		k := end
		for k < len(s) && isLocalChar(s[k]) {
			k++
		}
		if k == len(s) || s[k] != '@' {
			break
		}
		e := domainAt(s, k+1)
		if e < 0 {
			break
		}
		end = e
	}
	return start, end
}

// domainAt matches the domain of an e-mail address starting at s[k]: labels of letters,
// digits and '-' joined by single dots, the last of two letters or more. It returns where
// the domain ends, or -1.
func domainAt(s []byte, k int) int {
	j := k
	for j < len(s) && (isAlnum(s[j]) || s[j] == '.' || s[j] == '-') {
		j++
	}
	for j > k && (s[j-1] == '.' || s[j-1] == '-') {
		j--
	}
	domain := s[k:j]
	dot := -1
	for i, c := range domain {
		if c != '.' {
			continue
		}
		if i == 0 || domain[i-1] == '.' || domain[i-1] == '-' {
			return -1
		}
		dot = i
	}
	if dot < 0 || len(domain)-dot-1 < 2 || domain[0] == '-' {
		return -1
	}
	for _, c := range domain[dot+1:] {
		if isDigit(c) || c == '-' {
			return -1
		}
	}
	return j
}

// foldWidth rewrites full-width digits (U+FF10…FF19), plus and minus — what Chinese input
// methods type — as ASCII, so the detectors see "１３８…" as the phone number it is. It
// allocates only when s holds such a character; hits are then masked in the folded text.
func foldWidth(s []byte) []byte {
	first := firstWide(s)
	if first < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:first]...)
	for i := first; i < len(s); {
		if i+2 < len(s) && s[i] == 0xEF && s[i+1] == 0xBC {
			switch c := s[i+2]; {
			case c >= 0x90 && c <= 0x99:
				out = append(out, '0'+c-0x90)
				i += 3
				continue
			case c == 0x8B:
				out = append(out, '+')
				i += 3
				continue
			case c == 0x8D:
				out = append(out, '-')
				i += 3
				continue
			}
		}
		out = append(out, s[i])
		i++
	}
	return out
}

// firstWide returns the index of the first full-width form foldWidth folds (U+FF10–FF19,
// U+FF0B, U+FF0D: EF BC 90–99, 8B, 8D), or -1. Other full-width forms, such as the comma
// and colon of Chinese text, are left alone.
func firstWide(s []byte) int {
	for off := 0; ; {
		j := bytes.Index(s[off:], []byte{0xEF, 0xBC})
		if j < 0 {
			return -1
		}
		j += off
		if j+2 < len(s) && foldable(s[j+2]) {
			return j
		}
		off = j + 2
	}
}

// foldable reports whether EF BC c is a form foldWidth folds.
func foldable(c byte) bool { return c >= 0x90 && c <= 0x99 || c == 0x8B || c == 0x8D }
