package mask

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// MaskValue masks s in the given format, following Chinese-market conventions:
//
//   - "phone": a mainland mobile keeps its first 3 and last 4 digits (13812345678 →
//     138****5678), a +86, 0086 or 86 prefix is kept; other phone-like strings (digits,
//     spaces, dashes, parentheses, a leading +) keep the first 3 and last 4 digits when they
//     have 10 or more digits, the first 2 and last 2 when they have 7 to 9; separators stay.
//   - "id_card": 18-digit resident IDs keep the first 6 and last 4 characters
//     (110105********1234), 15-digit ones the first 6 and last 3.
//   - "bank_card": 13 to 19 digits keep the first 6 and last 4 digits, separators stay.
//   - "email": the first character of the local part, "***", then the domain
//     (z***@example.com); a one-character local part is hidden entirely.
//   - "name": Chinese names keep the surname, compound surnames included (欧阳娜娜 → 欧阳**);
//     other names keep the first letter of each word (Maria Anders → M*** A***).
//   - "address": Chinese addresses keep the administrative prefix down to the district or
//     county (北京市朝阳区建国路88号 → 北京市朝阳区****); other addresses keep the last
//     comma-separated component (****, San Francisco).
//   - "generic" or an unknown format: the first and last rune stay, every rune between becomes
//     "*"; one rune becomes "*", two runes keep the first.
//   - "": the format is inferred from the value's shape: a mainland mobile is a phone, a 15
//     or 18 character ID shape is an id_card, 13 to 19 Luhn-valid digits are a bank_card,
//     other phone-like strings are a phone, anything with "@" is an email, the rest generic.
//
// A value that does not have the shape its format expects (mask:phone on "n/a", mask:id_card
// on a passport number) is masked generic, so a mask never returns a non-empty value
// unchanged and always hides at least half of it, rounded down, when the format's own
// convention does not apply.
func MaskValue(format, s string) string {
	return string(appendMask(nil, format, []byte(s)))
}

// appendMask appends the masked form of s to dst; see MaskValue.
func appendMask(dst []byte, format string, s []byte) []byte {
	switch format {
	case "phone":
		return appendPhone(dst, s)
	case "id_card":
		return appendIDCard(dst, s)
	case "bank_card":
		return appendBankCard(dst, s)
	case "email":
		return appendEmail(dst, s)
	case "name":
		return appendName(dst, s)
	case "address":
		return appendAddress(dst, s)
	case "":
		return appendInferred(dst, s)
	}
	return appendGeneric(dst, s)
}

// appendInferred masks s in the format its shape suggests.
func appendInferred(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	switch {
	case cnMobilePrefix(t) >= 0:
		return appendPhone(dst, s)
	case idShape(t):
		return appendIDCard(dst, s)
	case bankShape(t):
		return appendBankCard(dst, s)
	case phoneLike(t) >= 7:
		return appendPhone(dst, s)
	case bytes.IndexByte(t, '@') >= 0:
		return appendEmail(dst, s)
	}
	return appendGeneric(dst, s)
}

// appendGeneric keeps the first and last rune of s and stars the runes between.
func appendGeneric(dst, s []byte) []byte {
	n := 0 // runes: bytes that do not continue a rune
	for _, c := range s {
		if c&0xC0 != 0x80 {
			n++
		}
	}
	switch n {
	case 0:
		return dst
	case 1:
		return append(dst, '*')
	}
	first := 1
	for first < len(s) && s[first]&0xC0 == 0x80 {
		first++
	}
	dst = append(dst, s[:first]...)
	if n == 2 {
		return append(dst, '*')
	}
	last := len(s) - 1
	for last > 0 && s[last]&0xC0 == 0x80 {
		last--
	}
	for range n - 2 {
		dst = append(dst, '*')
	}
	return append(dst, s[last:]...)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// phoneLike returns the number of digits in s when s holds only digits and phone
// punctuation (spaces, dashes, parentheses, a leading +), or -1.
func phoneLike(s []byte) int {
	if len(s) == 0 {
		return -1
	}
	d := 0
	for i, c := range s {
		switch {
		case isDigit(c):
			d++
		case c == ' ' || c == '-' || c == '(' || c == ')':
		case c == '+' && i == 0:
		default:
			return -1
		}
	}
	return d
}

// cnMobilePrefix reports whether s is a mainland mobile number, optionally prefixed by +86,
// 0086 or 86 and written with spaces or dashes. It returns the length of the prefix (with
// the separators after it) to keep, or -1 when s is not a mainland mobile.
func cnMobilePrefix(s []byte) int {
	if len(s) == 11 && mobile(s) && allDigits(s) {
		return 0
	}
	if phoneLike(s) < 0 {
		return -1
	}
	pre := 0
	switch {
	case bytes.HasPrefix(s, []byte("+86")):
		pre = 3
	case bytes.HasPrefix(s, []byte("0086")):
		pre = 4
	case bytes.HasPrefix(s, []byte("86")) && countDigits(s) == 13:
		pre = 2
	}
	for pre > 0 && pre < len(s) && (s[pre] == ' ' || s[pre] == '-') {
		pre++
	}
	rest := s[pre:]
	if countDigits(rest) != 11 || len(rest) == 0 || rest[0] != '1' {
		return -1
	}
	if second := nthDigit(rest, 1); second < '3' || second > '9' {
		return -1
	}
	return pre
}

func countDigits(s []byte) int {
	n := 0
	for _, c := range s {
		if isDigit(c) {
			n++
		}
	}
	return n
}

// nthDigit returns the i-th (0-based) digit of s, or 0.
func nthDigit(s []byte, i int) byte {
	for _, c := range s {
		if isDigit(c) {
			if i == 0 {
				return c
			}
			i--
		}
	}
	return 0
}

// appendDigitsMasked appends s with every ASCII digit starred except the first keepFirst and
// the last keepLast digits; everything else is copied.
func appendDigitsMasked(dst, s []byte, keepFirst, keepLast int) []byte {
	if allDigits(s) && len(s) >= keepFirst+keepLast {
		dst = append(dst, s[:keepFirst]...)
		for range len(s) - keepFirst - keepLast {
			dst = append(dst, '*')
		}
		return append(dst, s[len(s)-keepLast:]...)
	}
	d := countDigits(s)
	k := 0
	for _, c := range s {
		if isDigit(c) {
			k++
			if k > keepFirst && k <= d-keepLast {
				c = '*'
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func appendPhone(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	if pre := cnMobilePrefix(t); pre >= 0 {
		dst = append(dst, t[:pre]...)
		return appendDigitsMasked(dst, t[pre:], 3, 4)
	}
	switch d := phoneLike(t); {
	case d >= 10:
		return appendDigitsMasked(dst, t, 3, 4)
	case d >= 7:
		return appendDigitsMasked(dst, t, 2, 2)
	}
	return appendGeneric(dst, s)
}

// idShape reports whether s looks like a resident ID: 18 characters (17 digits and a digit
// or X) or 15 digits.
func idShape(s []byte) bool {
	switch len(s) {
	case 18:
		return allDigits(s[:17]) && (isDigit(s[17]) || s[17] == 'X' || s[17] == 'x')
	case 15:
		return allDigits(s)
	}
	return false
}

func allDigits(s []byte) bool {
	for _, c := range s {
		if !isDigit(c) {
			return false
		}
	}
	return len(s) > 0
}

func appendIDCard(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	if !idShape(t) {
		return appendGeneric(dst, s)
	}
	dst = append(dst, t[:6]...)
	keep := 4
	if len(t) == 15 {
		keep = 3
	}
	for range len(t) - 6 - keep {
		dst = append(dst, '*')
	}
	return append(dst, t[len(t)-keep:]...)
}

// cardDigits returns the digits of s when s is 13 to 19 digits, optionally grouped with
// spaces or dashes, or nil.
func cardDigits(s []byte, buf *[19]byte) []byte {
	n := 0
	for _, c := range s {
		switch {
		case isDigit(c):
			if n == len(buf) {
				return nil
			}
			buf[n] = c
			n++
		case c == ' ' || c == '-':
		default:
			return nil
		}
	}
	if n < 13 {
		return nil
	}
	return buf[:n]
}

// bankShape reports whether s is 13 to 19 digits passing the Luhn check.
func bankShape(s []byte) bool {
	var buf [19]byte
	d := cardDigits(s, &buf)
	return d != nil && luhn(d)
}

// luhn reports whether the digits pass the Luhn checksum.
func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		v := int(digits[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

func appendBankCard(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	var buf [19]byte
	if cardDigits(t, &buf) == nil {
		return appendGeneric(dst, s)
	}
	return appendDigitsMasked(dst, t, 6, 4)
}

func appendEmail(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	at := bytes.LastIndexByte(t, '@')
	if at < 0 || at == len(t)-1 || hasSpace(t) {
		return appendGeneric(dst, s)
	}
	local := t[:at]
	if utf8.RuneCount(local) >= 2 {
		_, n := utf8.DecodeRune(local)
		dst = append(dst, local[:n]...)
	}
	dst = append(dst, "***"...)
	return append(dst, t[at:]...)
}

func hasSpace(s []byte) bool {
	for _, c := range s {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}

// compoundSurnames are the two-character Chinese surnames a name mask keeps whole.
var compoundSurnames = map[string]bool{
	"欧阳": true, "司马": true, "诸葛": true, "上官": true, "东方": true, "皇甫": true,
	"尉迟": true, "公孙": true, "慕容": true, "长孙": true, "宇文": true, "司徒": true,
	"夏侯": true, "轩辕": true, "令狐": true, "端木": true, "司空": true, "西门": true,
	"南宫": true, "独孤": true, "呼延": true, "闻人": true, "澹台": true, "公冶": true,
	"太史": true, "申屠": true, "钟离": true, "濮阳": true, "万俟": true, "赫连": true,
	"拓跋": true, "第五": true, "百里": true, "东郭": true, "左丘": true, "淳于": true,
	"单于": true, "仲孙": true, "公羊": true, "谷梁": true, "宰父": true, "段干": true,
	"巫马": true, "子车": true, "颛孙": true, "壤驷": true, "漆雕": true, "乐正": true,
	"梁丘": true, "羊舌": true, "微生": true, "公西": true, "东门": true, "司寇": true,
	"亓官": true, "鲜于": true, "闾丘": true, "宗政": true,
}

func appendName(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	r, _ := utf8.DecodeRune(t)
	if r >= 0x4E00 && r <= 0x9FFF || r >= 0x2E80 && unicode.Is(unicode.Han, r) { // the common CJK block first
		n := utf8.RuneCount(t)
		if n < 3 {
			return appendGeneric(dst, t)
		}
		keep := 1
		_, a := utf8.DecodeRune(t)
		_, b := utf8.DecodeRune(t[a:])
		if compoundSurnames[string(t[:a+b])] {
			keep = 2
		}
		end := 0
		for range keep {
			_, k := utf8.DecodeRune(t[end:])
			end += k
		}
		dst = append(dst, t[:end]...)
		for range n - keep {
			dst = append(dst, '*')
		}
		return dst
	}
	hidden := false
	for w := range bytes.FieldsSeq(t) {
		if utf8.RuneCount(w) > 1 {
			hidden = true
			break
		}
	}
	if !hidden {
		return appendGeneric(dst, s)
	}
	sep := false
	for w := range bytes.FieldsSeq(t) {
		if sep {
			dst = append(dst, ' ')
		}
		sep = true
		_, n := utf8.DecodeRune(w)
		dst = append(dst, w[:n]...)
		dst = append(dst, "***"...)
	}
	return dst
}

func hasHan(s []byte) bool {
	for _, r := range string(s) {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// adminMarkers end administrative units in a Chinese address; county marks the units after
// which an address is cut at the latest.
var adminMarkers = []struct {
	suffix string
	county bool
}{
	{"自治区", false}, {"省", false}, {"市", false}, {"州", false},
	{"区", true}, {"县", true}, {"旗", true},
}

// maxUnitRunes bounds the name of one administrative unit (黔东南苗族侗族自治州 has 10).
const maxUnitRunes = 10

// chinesePrefix returns the byte length of the administrative prefix of the trimmed Chinese
// address s: up to and including the last unit marker found within the first three units,
// stopping after a county-level unit (区, 县, 旗). A unit is 1 to 10 Han characters before its
// marker; an ASCII character ends the search. When the units make up the whole value, the
// last one is not kept, so an address is never shown whole. 0 means no prefix.
func chinesePrefix(s []byte) int {
	var ends [3]int
	n := 0
	for start := 0; n < len(ends); {
		end, county := nextUnit(s, start)
		if end < 0 {
			break
		}
		ends[n] = end
		n++
		start = end
		if county {
			break
		}
	}
	for n > 0 && ends[n-1] >= len(s) {
		n--
	}
	if n == 0 {
		return 0
	}
	return ends[n-1]
}

// nextUnit finds the administrative unit starting at s[start:]; it returns the end of its
// marker and whether the unit is county level, or -1.
func nextUnit(s []byte, start int) (int, bool) {
	runes := 0
	for i := start; i < len(s) && runes <= maxUnitRunes; {
		r, n := utf8.DecodeRune(s[i:])
		if r < utf8.RuneSelf {
			return -1, false
		}
		if runes > 0 {
			for _, m := range adminMarkers {
				if bytes.HasPrefix(s[i:], []byte(m.suffix)) {
					return i + len(m.suffix), m.county
				}
			}
		}
		runes++
		i += n
	}
	return -1, false
}

func appendAddress(dst, s []byte) []byte {
	t := bytes.TrimSpace(s)
	if hasHan(t) {
		if p := chinesePrefix(t); p > 0 {
			dst = append(dst, t[:p]...)
			return append(dst, "****"...)
		}
		return appendGeneric(dst, s)
	}
	if i := bytes.LastIndexByte(t, ','); i > 0 && len(bytes.TrimSpace(t[i+1:])) > 0 {
		dst = append(dst, "****"...)
		return append(dst, t[i:]...)
	}
	return appendGeneric(dst, s)
}
