package mask

import "fmt"

// inert reports whether nothing in the plan or the layout can reach the value of frame f or
// anything inside it: the program changes nothing, and the value is not on the records or
// status path, holds no id or nested records, and no path rule continues into it. Such a
// value is read by skip.
func (w *walker) inert(f *frame) bool {
	return w.p.skip && f.fEnd == f.fStart && f.rEnd == f.rStart && f.recPath < 0 &&
		f.kind == kindPlain && f.st == 0 && f.cp == 0 && (f.rec == nil || w.p.nested == nil)
}

// skip reads one value whose first byte is c, at nesting depth depth, without frames: it
// is validated exactly as value would validate it and copied through as it is (whitespace
// runs cut as everywhere).
func (w *walker) skip(c byte, depth int32) error {
	switch c {
	case '{':
		return w.skipObject(depth)
	case '[':
		return w.skipArray(depth)
	case '"':
		if _, _, ok := w.shortStr(); !ok {
			_, _, _, err := w.str()
			return err
		}
		return nil
	case 't':
		return w.scanWord(wordTrue)
	case 'f':
		return w.scanWord(wordFalse)
	case 'n':
		return w.scanWord(wordNull)
	}
	if c == '-' || isDigit(c) {
		_, err := w.scanNumber()
		return err
	}
	return w.malformed(fmt.Sprintf("unexpected character %q", c))
}

// skipMember reads the ':' and the value of a member whose key was read, the value at
// nesting depth depth, as skip reads values.
func (w *walker) skipMember(depth int32) error {
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if c != ':' {
		return w.malformed("expected ':'")
	}
	w.in.pos++
	if c, err = w.next(); err != nil {
		return w.eofErr(err)
	}
	return w.skip(c, depth)
}

func (w *walker) skipObject(depth int32) error {
	if int(depth) >= w.p.lim.MaxDepth {
		return w.tooDeep()
	}
	w.in.pos++
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if c == '}' {
		w.in.pos++
		return nil
	}
	for {
		if c != '"' {
			return w.malformed("expected a string key")
		}
		if _, _, ok := w.shortStr(); !ok {
			if _, _, err := w.key(); err != nil {
				return err
			}
		}
		if err := w.skipMember(depth + 1); err != nil {
			return err
		}
		if err := w.maybeFlush(); err != nil {
			return err
		}
		var more bool
		if c, _, more, err = w.separator('}'); err != nil || !more {
			return err
		}
	}
}

func (w *walker) skipArray(depth int32) error {
	if int(depth) >= w.p.lim.MaxDepth {
		return w.tooDeep()
	}
	w.in.pos++
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if c == ']' {
		w.in.pos++
		return nil
	}
	for {
		if err := w.skip(c, depth+1); err != nil {
			return err
		}
		if err := w.maybeFlush(); err != nil {
			return err
		}
		var more bool
		if c, _, more, err = w.separator(']'); err != nil || !more {
			return err
		}
	}
}
