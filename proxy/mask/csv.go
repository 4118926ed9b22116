package mask

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// csvReadAhead is how far encoding/csv may read beyond the record it returns.
const csvReadAhead = 4096

// csvColumn is what the plan does to one CSV column.
type csvColumn struct {
	act  int32 // rule governing the column, or -1: detectors run on its cells
	drop bool
	rows []int32
	id   bool
}

// csvSource counts the bytes encoding/csv reads and stops a record that grows past the limit.
type csvSource struct {
	r     io.Reader
	n     int64
	limit int64
}

func (s *csvSource) Read(p []byte) (int, error) {
	if s.n > s.limit {
		return 0, fmt.Errorf("mask: offset %d: CSV record over the size limit: %w", s.n, ErrTooLarge)
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

// rewriteCSV is Rewrite for CSV bodies; see Rewrite for the rules.
func (prog *Program) rewriteCSV(dst io.Writer, src io.Reader) (Stats, error) {
	w := prog.walker()
	defer prog.release(w)
	w.top.reset(nil, 0)
	w.top.eof = true
	w.in = &w.top
	if len(w.frames) < prog.lim.MaxDepth+2 {
		w.frames = make([]frame, prog.lim.MaxDepth+2)
	}

	br := bufio.NewReaderSize(src, windowSize)
	bom := false
	if b, _ := br.Peek(3); string(b) == "\ufeff" {
		_, _ = br.Discard(3)
		bom = true
	}
	crlf := false
	if b, _ := br.Peek(br.Size()); len(b) > 0 {
		if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
			crlf = true
		}
	}
	srcCount := &csvSource{r: br, limit: prog.lim.MaxRecordBytes + 2*csvReadAhead}
	r := csv.NewReader(srcCount)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true

	bw := bufio.NewWriterSize(dst, windowSize)
	if bom {
		_, _ = bw.WriteString("\ufeff")
	}
	cw := csv.NewWriter(bw)
	cw.UseCRLF = crlf

	var cols []csvColumn
	var out []string
	var last int64
	for row := 1; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return w.stats(), fmt.Errorf("mask: CSV line %d, column %d: %v: %w", pe.Line, pe.Column, pe.Err, ErrMalformed)
			}
			return w.stats(), err
		}
		off := r.InputOffset()
		if off-last > prog.lim.MaxRecordBytes {
			return w.stats(), fmt.Errorf("mask: offset %d: CSV record over %d bytes: %w", last, prog.lim.MaxRecordBytes, ErrTooLarge)
		}
		last = off
		srcCount.limit = off + prog.lim.MaxRecordBytes + 2*csvReadAhead
		for j, cell := range rec {
			if !utf8.ValidString(cell) {
				return w.stats(), fmt.Errorf("mask: CSV line %d, field %d: invalid UTF-8: %w", row, j+1, ErrMalformed)
			}
		}
		out = out[:0]
		switch {
		case row < prog.header:
			for _, cell := range rec {
				if out, err = w.csvText(out, cell); err != nil {
					return w.stats(), err
				}
			}
		case row == prog.header:
			if cols, err = prog.csvColumns(rec); err != nil {
				return w.stats(), err
			}
			for j, cell := range rec {
				if cols[j].drop {
					continue
				}
				if out, err = w.csvText(out, cell); err != nil {
					return w.stats(), err
				}
			}
		default:
			keep, err := w.csvRow(cols, rec)
			if err != nil {
				return w.stats(), err
			}
			if !keep {
				w.removed++
				continue
			}
			if out, err = w.csvCells(out, cols, rec); err != nil {
				return w.stats(), err
			}
		}
		for i, cell := range out {
			out[i] = neutralize(cell)
		}
		if err := cw.Write(out); err != nil {
			return w.stats(), fmt.Errorf("mask: write body: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return w.stats(), fmt.Errorf("mask: write body: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return w.stats(), fmt.Errorf("mask: write body: %w", err)
	}
	return w.stats(), nil
}

// csvColumns resolves the header row: which rule governs each column.
func (prog *Program) csvColumns(header []string) ([]csvColumn, error) {
	cols := make([]csvColumn, len(header))
	for j, h := range header {
		if j == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		c := prog.column(h)
		col := csvColumn{act: -1}
		if c.fold == nil {
			cols[j] = col
			continue
		}
		own := int32(-1)
		if r, ok := prog.bare[string(c.fold)]; ok {
			own = r
		}
		if r, ok := prog.bare[c.alias]; ok && c.alias != "" {
			own = prog.pick(own, r)
		}
		if own >= 0 {
			switch prog.rules[own].act.Kind {
			case Deny:
				return nil, &DeniedError{Field: prog.rules[own].name}
			case Drop:
				col.drop = true
				col.act = own
			default:
				col.act = own
			}
		}
		col.rows = append(col.rows, prog.csvRows[string(c.fold)]...)
		if c.alias != "" && c.alias != string(c.fold) {
			col.rows = append(col.rows, prog.csvRows[c.alias]...)
		}
		col.id = prog.idFold != "" && (prog.idFold == string(c.fold) || prog.idFold == c.alias)
		cols[j] = col
	}
	return cols, nil
}

// csvRow evaluates the row rules on a data row.
func (w *walker) csvRow(cols []csvColumn, rec []string) (bool, error) {
	p := w.p
	if len(p.rows) == 0 {
		return true, nil
	}
	rs := w.pushRec(true)
	defer func() { w.nrec-- }()
	for j, col := range cols {
		if j >= len(rec) {
			break
		}
		for _, ri := range col.rows {
			r := &p.rows[ri]
			rs.seen[ri] = true
			if w.csvMatches(r, rec[j]) == r.negated() {
				rs.failed[ri] = true
			}
		}
	}
	return w.pass(rs), nil
}

func (w *walker) csvMatches(r *rowRule, cell string) bool {
	for _, v := range r.vals {
		switch v.kind {
		case valString:
			if cell == v.s {
				return true
			}
		case valNumber:
			t := []byte(strings.TrimSpace(cell))
			if validNumber(t) && string(appendCanonicalNumber(w.canon[:0], t)) == v.s {
				return true
			}
		case valTrue:
			if strings.EqualFold(strings.TrimSpace(cell), "true") {
				return true
			}
		case valFalse:
			if strings.EqualFold(strings.TrimSpace(cell), "false") {
				return true
			}
		case valNull:
			if cell == "" {
				return true
			}
		}
	}
	return false
}

// csvCells rewrites the cells of a data row that passed the row rules.
func (w *walker) csvCells(out []string, cols []csvColumn, rec []string) ([]string, error) {
	p := w.p
	var err error
	hasID := false
	for j, cell := range rec {
		if j >= len(cols) || cols[j].act < 0 {
			if out, err = w.csvText(out, cell); err != nil {
				return nil, err
			}
		} else if !cols[j].drop {
			a := p.rules[cols[j].act].act
			v := cell
			switch a.Kind {
			case Mask:
				v = string(appendMask(w.tmp[:0], a.Format, []byte(cell)))
			case Redact:
				v = "***"
			case Hash:
				v = string(w.appendHash(w.tmp[:0], []byte(cell)))
			case Null:
				v = ""
			}
			if v != cell {
				w.counts[cols[j].act]++
			}
			out = append(out, v)
		} else if cell != "" {
			w.counts[cols[j].act]++
		}
		if j < len(cols) && cols[j].id && !hasID {
			hasID = true
			if len(w.ids) < p.lim.MaxIDs {
				w.ids = append(w.ids, cell)
			} else {
				w.idsCut = true
			}
		}
	}
	w.records++
	return out, nil
}

// csvText appends cell after the detectors (and, for a JSON document, the whole plan) ran on it.
func (w *walker) csvText(out []string, cell string) ([]string, error) {
	if !w.p.masks {
		return append(out, cell), nil
	}
	text, changed, err := w.freeText(&frame{act: -1, recPath: -1}, []byte(cell))
	if err != nil {
		return nil, err
	}
	if changed {
		cell = string(text)
	}
	return append(out, cell), nil
}

// neutralize prefixes a cell a spreadsheet would run as a formula with "'".
func neutralize(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		if !plainNumber(s) {
			return "'" + s
		}
	}
	return s
}

// plainNumber reports whether s is a decimal number with an optional sign: -12.5, +86, 1e3.
func plainNumber(s string) bool {
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	digits := 0
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			digits++
		case c == '.' && !dot:
			dot = true
		case (c == 'e' || c == 'E') && digits > 0 && i+1 < len(s):
			t := s[i+1:]
			if t[0] == '+' || t[0] == '-' {
				t = t[1:]
			}
			return allDigits([]byte(t))
		default:
			return false
		}
	}
	return digits > 0
}
