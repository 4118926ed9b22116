package sheets

import (
	"strconv"
	"strings"
)

// cells is a parsed range: which sheet, and where its cells start and end.
type cells struct {
	Sheet string // sheet name, unquoted; "" for the first visible sheet
	// Named: the range named no cells ("Customers"): a whole sheet, or a named range —
	// only the spreadsheet knows which.
	Named    bool
	StartCol int // 0-based column of the first cell
	StartRow int // 1-based row of the first cell
	EndCol   int // 0-based column of the last cell; -1 when unbounded
	EndRow   int // 1-based row of the last cell; 0 when unbounded
}

// Rows is the number of rows the range covers, 0 when it is unbounded.
func (c cells) Rows() int {
	if c.EndRow == 0 {
		return 0
	}
	return c.EndRow - c.StartRow + 1
}

// parseRange reads a range in A1 notation ("Sheet1!A1:H100", "'客户 名单'!B2:F",
// "A:H", "Sheet1!3:10", "Sheet1") or R1C1 notation ("Sheet1!R2C1:R10C8"). ok is false
// for text that is neither.
func parseRange(s string) (cells, bool) {
	c := cells{EndCol: -1}
	ref := s
	if strings.HasPrefix(s, "'") {
		name, rest, ok := quotedSheet(s)
		if !ok {
			return c, false
		}
		c.Sheet = name
		if rest == "" {
			c.Named, c.StartRow = true, 1
			return c, true
		}
		if !strings.HasPrefix(rest, "!") {
			return c, false
		}
		ref = rest[1:]
	} else if i := strings.LastIndexByte(s, '!'); i >= 0 {
		c.Sheet, ref = s[:i], s[i+1:]
		if c.Sheet == "" {
			return c, false
		}
	}
	if ref == "" {
		if c.Sheet == "" {
			return c, false
		}
		c.Named, c.StartRow = true, 1
		return c, true
	}
	from, to, pair := strings.Cut(ref, ":")
	a, okA := parseRef(from)
	if !okA {
		if pair || strings.ContainsAny(s, "!'") {
			return c, false
		}
		// No cells: a sheet name or a named range.
		return cells{Sheet: s, Named: true, StartRow: 1, EndCol: -1}, true
	}
	b := a
	if pair {
		var okB bool
		if b, okB = parseRef(to); !okB || b.r1c1 != a.r1c1 {
			return c, false
		}
	}
	// Rows: both ends name one (A2:H9), neither does (A:H, the whole columns), or only the
	// start does (A2:H, down to the end). Columns likewise (2:9; A2:9 is refused). Where Sheets
	// could read a range differently (H:A2), it is refused rather than guessed.
	switch {
	case a.row > 0 && b.row > 0:
		c.StartRow, c.EndRow = min(a.row, b.row), max(a.row, b.row)
	case a.row == 0 && b.row == 0:
		c.StartRow = 1
	case a.row > 0 && b.row == 0 && b.col >= 0:
		c.StartRow = a.row
	default:
		return c, false
	}
	switch {
	case a.col >= 0 && b.col >= 0:
		c.StartCol, c.EndCol = min(a.col, b.col), max(a.col, b.col)
	case a.col < 0 && b.col < 0:
		c.StartCol = 0
	default:
		return c, false
	}
	return c, true
}

// quotedSheet reads a quoted sheet name (two single quotes inside stand for one) and returns it
// unquoted with the rest.
func quotedSheet(s string) (name, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), s[i+1:], b.Len() > 0
	}
	return "", "", false
}

// ref is one end of a range: col -1 when it names no column, row 0 when it names no row.
type ref struct {
	col, row int
	r1c1     bool
}

// parseRef reads A1 ("B7", "B", "7", "$B$7") or R1C1 ("R7C2") cell references.
func parseRef(s string) (ref, bool) {
	s = strings.ReplaceAll(s, "$", "")
	if r, ok := parseR1C1(s); ok {
		return r, true
	}
	i := 0
	col := -1
	for i < len(s) && isLetter(s[i]) {
		if i >= 3 {
			return ref{}, false // columns run to ZZZ
		}
		col = (col+1)*26 + int(upper(s[i])-'A')
		i++
	}
	row := 0
	if i < len(s) {
		n, err := strconv.Atoi(s[i:])
		if err != nil || n < 1 || s[i] == '+' || s[i] == '-' {
			return ref{}, false
		}
		row = n
	}
	if col < 0 && row == 0 {
		return ref{}, false
	}
	return ref{col: col, row: row}, true
}

// parseR1C1 reads R<row>C<col>.
func parseR1C1(s string) (ref, bool) {
	if len(s) < 4 || upper(s[0]) != 'R' {
		return ref{}, false
	}
	c := strings.IndexAny(s[1:], "Cc")
	if c < 1 {
		return ref{}, false
	}
	row, err1 := strconv.Atoi(s[1 : 1+c])
	col, err2 := strconv.Atoi(s[2+c:])
	if err1 != nil || err2 != nil || row < 1 || col < 1 || !digits(s[1:1+c]) || !digits(s[2+c:]) {
		return ref{}, false
	}
	return ref{col: col - 1, row: row, r1c1: true}, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// columnIndex turns a column letter ("A", "AB") into its 0-based index, -1 if it is not one.
func columnIndex(s string) int {
	r, ok := parseRef(s)
	if !ok || r.row != 0 || r.r1c1 {
		return -1
	}
	return r.col
}
