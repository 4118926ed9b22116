package mask

import (
	"fmt"
	"hash"
	"io"
	"strconv"
)

const (
	maxEmbed = 8   // JSON documents embedded in strings, nested at most this deep
	wsKeep   = 256 // longer runs of whitespace are cut to this length
)

// Kinds of array value, set on a frame by its parent.
const (
	kindPlain   = iota
	kindRecords // the records array of Layout.Records
	kindNested  // an array of nested records (Layout.Nested) inside a record
)

// frame is what the walker knows about the value it is about to read.
type frame struct {
	act        int32 // rule governing the value, or -1
	fStart     int32 // field trie nodes matching the value's path: w.fnodes[fStart:fEnd]
	fEnd       int32
	rStart     int32 // row trie nodes matching the value's path: w.rnodes[rStart:rEnd]
	rEnd       int32
	depth      int32 // containers enclosing the value
	recPath    int32 // segments of Layout.Records matched by the value's path; -1 off the path
	st         int32 // 1 + segments of Layout.Status.Path matched by the value's path; 0 off it
	cp         int32 // 1 + segments of Layout.Capture matched by the value's path; 0 off it
	kind       uint8
	positional bool // a record that is an array whose elements are named by columns
	inherited  bool // act was inherited from an enclosing value
	structural bool // the value is under a Layout.Structural key
	rec        *recState
}

// recState is a record being read: how its row predicates fare, its id, and the counters to
// restore if row rules remove it.
type recState struct {
	top    bool
	seen   []bool // row rule i had a value in the record
	failed []bool // some value failed row rule i
	id     []byte
	hasID  bool
	start  int64

	counts           []int
	detects          [numScanners]int
	records, removed int
	nids             int
	idsCut           bool
}

// walker rewrites one body. It reads values with bounded recursion (depth is checked before
// every container), copies untouched input to out in spans (see token.go), and writes out to
// dst between records.
type walker struct {
	p    *Program
	in   *input
	top  input
	out  []byte
	span int64 // body offset of the first consumed byte not yet copied to out
	dst  io.Writer

	discard int // >0: reading a dropped or nulled value, write nothing
	hold    int // >0: out may not be written to dst (inside a record or an embedded document)
	plain   int // >0: copy as is, no rules and no detectors (a header row)
	embed   int // depth of JSON documents embedded in strings

	frames []frame // frames[d] is the frame of the value being read at depth d
	fnodes []*node
	rnodes []*node
	recs   []*recState
	nrec   int
	cols   []column

	counts  []int
	detects [numScanners]int
	changes int // leaves changed so far
	records int
	removed int
	ids     []string
	idsCut  bool
	failed  bool   // a value at Layout.Status.Path was not OK
	capture string // the first string at Layout.Capture

	keyBuf   []byte
	foldBuf  []byte
	strBuf   []byte
	tmp      []byte
	canon    []byte
	idx      []byte
	aliasBuf []byte
	mac      hash.Hash
	macKey   []byte // the key mac was made with
	sum      []byte
}

func (w *walker) reset() {
	w.in, w.dst = nil, nil
	w.top.r = nil
	w.out = w.out[:0]
	w.span = 0
	w.discard, w.hold, w.plain, w.embed = 0, 0, 0, 0
	w.fnodes, w.rnodes = w.fnodes[:0], w.rnodes[:0]
	w.nrec = 0
	w.cols = nil
	clear(w.counts)
	w.detects = [numScanners]int{}
	w.changes, w.records, w.removed = 0, 0, 0
	w.ids, w.idsCut = nil, false
	w.failed, w.capture = false, ""
}

// Rewrite reads the body from src and writes the rewritten body to dst, record by record: the
// envelope around the records array is copied through with bare-name field rules and the
// detectors applied, each record is read, filtered by row rules, masked and written on.
// Memory is bounded by the largest record (Limits.MaxRecordBytes), not by the document; a
// program that Masks nothing still reads and validates the whole body. On any error the
// output written so far is garbage; Stats then holds what was counted before the error.
//
// JSON is parsed strictly (RFC 8259): comments, trailing commas, NaN, Infinity, a leading
// BOM, ")]}'" guards, invalid UTF-8, control characters in strings, bad escapes, object keys
// holding an escaped NUL (parsers disagree on where such a key ends) and data after the
// document are ErrMalformed. Escaped lone surrogates are accepted and kept as written.
// Untouched bytes are copied exactly: number literals, key order, escapes and whitespace
// (runs of more than 256 whitespace bytes are cut to 256). Rewritten values are JSON strings.
//
// Every occurrence of a key is handled, duplicates included. A dropped member disappears
// with its comma. A record that row rules remove disappears from its array; a "@this"
// record that fails them is written as null and counted in Stats.Removed. Row predicates
// are evaluated on the original values, within their own record (not inside its nested
// records), and when a field occurs several times in a record every occurrence must pass.
// Values that no rule handles (an explicit keep handles its value) go through the
// detectors; so do object keys, and integer literals, which become strings when a detector
// masks them. A string whose content is a JSON object or array gets the whole plan applied
// inside it (its root stands where the string stands, so path rules continue into it) and is
// written back as a string.
//
// With Layout.Format FormatCSV the body is CSV, read with encoding/csv (strict quotes, ragged
// rows allowed) row by row. Rows before Layout.HeaderRow are copied after the detectors ran
// on them. The header names the columns: trimmed, case-insensitive, a UTF-8 BOM stripped (and
// written back at the start of the output); every field name in the plan, dotted or not, is
// matched against the whole header text. A dropped column disappears with its header cell,
// null empties a cell, a denied column in the header is a DeniedError, cells beyond the
// header are unnamed and only scanned. Row rules compare cells as text with string values,
// numerically with number values, case-insensitively with true and false, and an empty cell
// equals null. Invalid UTF-8 is ErrMalformed. Every output cell that starts with =, +, -, @, a
// tab or a carriage return gets a leading ' so spreadsheets do not run it as a formula,
// except plain numbers such as -12.5 or +86. Lines end in "\r\n" when the first line of the
// input did, "\n" otherwise. Stats.Records counts the data rows written.
func (prog *Program) Rewrite(dst io.Writer, src io.Reader) (Stats, error) {
	if prog.format == FormatCSV {
		return prog.rewriteCSV(dst, src)
	}
	w := prog.walker()
	defer prog.release(w)
	w.dst = dst
	w.top.reset(src, int(min(prog.lim.MaxRecordBytes, 1<<40))+tokenSlack)
	w.in = &w.top
	err := w.document()
	if err == nil {
		err = w.flush()
	}
	return w.stats(), err
}

func (w *walker) stats() Stats {
	s := Stats{Records: w.records, Removed: w.removed, IDs: w.ids, IDsCut: w.idsCut}
	if w.failed {
		s = Stats{Failed: true}
	}
	s.Captured = w.capture
	for i, n := range w.counts {
		if n > 0 {
			if s.Fields == nil {
				s.Fields = make(map[string]int)
			}
			s.Fields[w.p.rules[i].name] += n
		}
	}
	for i, n := range w.detects {
		if n > 0 {
			if s.Detects == nil {
				s.Detects = make(map[string]int)
			}
			s.Detects[scannerNames[i]] = n
		}
	}
	return s
}

func (w *walker) flush() error {
	if len(w.out) == 0 || w.dst == nil {
		return nil
	}
	_, err := w.dst.Write(w.out)
	w.out = w.out[:0]
	if err != nil {
		return fmt.Errorf("mask: write body: %w", err)
	}
	return nil
}

// maybeFlush writes the output to dst once enough has gathered, outside records. It is
// called only between members and elements, where no output position is held.
func (w *walker) maybeFlush() error {
	if w.hold > 0 || w.outPos() < flushAt {
		return nil
	}
	return w.flushNow()
}

func (w *walker) flushNow() error {
	w.sync()
	return w.flush()
}

// document reads the whole body.
func (w *walker) document() error {
	if len(w.frames) < w.p.lim.MaxDepth+2 {
		w.frames = make([]frame, w.p.lim.MaxDepth+2)
	}
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	f := &w.frames[0]
	*f = frame{act: -1, recPath: -1}
	if w.p.stPath != nil {
		f.st = 1
	}
	if w.p.cpPath != nil {
		f.cp = 1
	}
	w.cols = w.p.columns
	switch w.p.mode {
	case recThis:
		mark := w.outPos()
		kept, err := w.record(f, -1, c, true, c == '{')
		if err != nil {
			return err
		}
		if !kept {
			w.truncate(mark)
			w.out = append(w.out, wordNull...)
		}
	case recRoot:
		if c == '[' {
			f.kind = kindRecords
		}
		err = w.value(f, c)
	case recPath:
		f.recPath = 0
		err = w.value(f, c)
	default:
		err = w.value(f, c)
	}
	if err != nil {
		return err
	}
	switch _, err := w.next(); err {
	case io.EOF:
		w.sync()
		return nil
	case nil:
		return w.malformed("data after the document")
	default:
		return err
	}
}

// value reads one value whose first byte is c.
func (w *walker) value(f *frame, c byte) error {
	switch c {
	case '{':
		w.status(f, nil, true)
		return w.object(f)
	case '[':
		w.status(f, nil, true)
		return w.array(f)
	case '"':
		return w.stringValue(f)
	case 't':
		return w.literal(f, wordTrue, valTrue)
	case 'f':
		return w.literal(f, wordFalse, valFalse)
	case 'n':
		return w.literal(f, wordNull, valNull)
	}
	if c == '-' || isDigit(c) {
		return w.number(f)
	}
	return w.malformed(fmt.Sprintf("unexpected character %q", c))
}

// object reads an object. A dropped member is cut from the output together with the comma
// before it (or, for the first member, the comma after it: the first member kept after
// dropped ones loses its comma).
func (w *walker) object(f *frame) error {
	if int(f.depth) >= w.p.lim.MaxDepth {
		return w.tooDeep()
	}
	if f.rEnd > f.rStart {
		w.rowLeaf(f, valOther, nil)
	}
	w.in.pos++
	cut := w.outPos() // where the output of a dropped member starts
	comma := -1       // output position of the comma before the member
	first := true     // no member written yet
	more := false
	fMark, rMark := len(w.fnodes), len(w.rnodes)
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
		start := w.in.offset()
		dec, ascii, ok := w.shortStr()
		if !ok {
			if dec, ascii, err = w.key(); err != nil {
				return err
			}
		}
		cf := &w.frames[f.depth+1]
		own := int32(-1)
		var drop bool
		if ascii && !w.mayName(f, dec) {
			if w.p.skip && f.recPath < 0 && f.st == 0 && f.cp == 0 {
				// Nothing can reach the member's value (inert would say so of its frame):
				// read it without one. A program that skips drops nothing, so no comma
				// needs cutting.
				first = false
				if err := w.skipMember(f.depth + 1); err != nil {
					return err
				}
				goto next
			}
			w.unnamed(f, cf) // no rule, alias, nested key or path can name it
		} else {
			w.foldBuf = appendFold(w.foldBuf[:0], dec)
			alias := w.alias(w.foldBuf)
			if own, err = w.child(f, cf, w.foldBuf, alias, true); err != nil {
				return err
			}
			if f.rec != nil && w.p.nested != nil && (w.p.nested[string(w.foldBuf)] || w.p.nested[alias]) {
				cf.kind = kindNested
			}
		}
		w.follow(f, cf, dec)
		drop = cf.act >= 0 && w.p.rules[cf.act].act.Kind == Drop
		if drop {
			w.truncate(cut)
			w.startDiscard()
		} else {
			if first && comma >= 0 {
				w.cutByte(comma)
			}
			first = false
			if w.p.detect != 0 && len(dec) >= 6 {
				w.scanKey(start, dec)
			}
		}
		if c = w.peek(); c <= ' ' {
			if c, err = w.next(); err != nil {
				return w.eofErr(err)
			}
		}
		if c != ':' {
			return w.malformed("expected ':'")
		}
		w.in.pos++
		if c = w.peek(); c <= ' ' {
			if c, err = w.next(); err != nil {
				return w.eofErr(err)
			}
		}
		if drop {
			err = w.value(cf, c)
			w.endDiscard()
			if err != nil {
				return err
			}
			w.changes++
			w.count(own, cf)
		} else if err := w.item(cf, own, c); err != nil {
			return err
		}
		w.fnodes, w.rnodes = w.fnodes[:fMark], w.rnodes[:rMark]
	next:
		if err := w.maybeFlush(); err != nil {
			return err
		}
		if c, comma, more, err = w.separator('}'); err != nil || !more {
			return err
		}
		cut = comma
	}
}

// array reads an array. A record that row rules remove is cut from the output the way a
// dropped member is.
func (w *walker) array(f *frame) error {
	if int(f.depth) >= w.p.lim.MaxDepth {
		return w.tooDeep()
	}
	if f.rEnd > f.rStart {
		w.rowLeaf(f, valOther, nil)
	}
	w.in.pos++
	cut := w.outPos()
	comma := -1
	first := true
	fMark, rMark := len(w.fnodes), len(w.rnodes)
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if c == ']' {
		w.in.pos++
		return nil
	}
	if f.kind == kindRecords {
		w.cols = w.p.columns
	}
	for i := 0; ; i++ {
		switch {
		case f.kind == kindRecords && i == 0 && w.p.fromRow:
			err = w.header(f, c)
			first = false
		default:
			ef := &w.frames[f.depth+1]
			own, cerr := w.element(f, ef, i)
			if cerr != nil {
				return cerr
			}
			w.follow(f, ef, nil)
			if f.kind == kindPlain {
				err = w.item(ef, own, c)
				first = false
				break
			}
			var kept bool
			kept, err = w.record(ef, own, c, f.kind == kindRecords, true)
			if err != nil {
				break
			}
			if !kept {
				w.truncate(cut)
			} else {
				if first && comma >= 0 {
					w.cutByte(comma)
				}
				first = false
			}
		}
		if err != nil {
			return err
		}
		w.fnodes, w.rnodes = w.fnodes[:fMark], w.rnodes[:rMark]
		if err := w.maybeFlush(); err != nil {
			return err
		}
		var more bool
		if c, comma, more, err = w.separator(']'); err != nil || !more {
			return err
		}
		cut = comma
	}
}

// follow carries the records and status paths from f into its child cf, the member keyed
// dec or, with dec nil, an element (which only a "*" segment matches).
func (w *walker) follow(f, cf *frame, dec []byte) {
	if f.recPath >= 0 {
		if seg := w.p.recPath[f.recPath]; seg == "*" || dec != nil && string(dec) == seg {
			if int(f.recPath)+1 == len(w.p.recPath) {
				cf.kind = kindRecords
			} else {
				cf.recPath = f.recPath + 1
			}
		}
	}
	if f.st > 0 && int(f.st) <= len(w.p.stPath) {
		if seg := w.p.stPath[f.st-1]; seg == "*" || dec != nil && string(dec) == seg {
			cf.st = f.st + 1
		}
	}
	if f.cp > 0 && int(f.cp) <= len(w.p.cpPath) {
		if seg := w.p.cpPath[f.cp-1]; seg == "*" || dec != nil && string(dec) == seg {
			cf.cp = f.cp + 1
		}
	}
}

// maxCapture bounds Stats.Captured.
const maxCapture = 4096

// captureString keeps s, the decoded string at the value of f, when f is at Layout.Capture
// and nothing was captured yet.
func (w *walker) captureString(f *frame, s []byte) {
	if f.cp > 0 && int(f.cp) == len(w.p.cpPath)+1 && w.capture == "" && len(s) <= maxCapture && w.embed == 0 {
		w.capture = string(s)
	}
}

// status notes a value at Layout.Status.Path: text is a literal as written or a string's
// decoded text; a container is never OK.
func (w *walker) status(f *frame, text []byte, container bool) {
	if f.st > 0 && int(f.st) == len(w.p.stPath)+1 && (container || string(text) != string(w.p.stOK)) {
		w.failed = true
	}
}

// item reads a member's or element's value under frame cf, applying null and drop (an
// element cannot be removed, so drop writes null there) and counting the value for its
// own rule when it changed.
func (w *walker) item(cf *frame, own int32, c byte) error {
	if w.inert(cf) {
		return w.skip(c, cf.depth)
	}
	before := w.changes
	if cf.act >= 0 {
		if k := w.p.rules[cf.act].act.Kind; k == Null || k == Drop {
			w.sync()
			if w.discard == 0 {
				w.out = append(w.out, wordNull...)
			}
			w.startDiscard()
			err := w.value(cf, c)
			w.endDiscard()
			if err != nil {
				return err
			}
			if c != 'n' {
				w.changes++
			}
			if w.changes != before {
				w.count(own, cf)
			}
			return nil
		}
	}
	if err := w.value(cf, c); err != nil {
		return err
	}
	if w.changes != before {
		w.count(own, cf)
	}
	return nil
}

// count credits a changed value to its own rule when that rule is the one governing it.
func (w *walker) count(own int32, cf *frame) {
	if own >= 0 && own == cf.act && w.discard == 0 {
		w.counts[own]++
	}
}

func (w *walker) alias(folded []byte) string {
	if w.p.aliases == nil {
		return ""
	}
	return w.p.aliases[string(folded)]
}

// mayName reports whether the ASCII key k may be named by a bare rule, an alias, a nested
// records key or a child of the frame's trie nodes. False is certain; true may be wrong.
func (w *walker) mayName(f *frame, k []byte) bool {
	if w.p.keyF.mayHave(k) {
		return true
	}
	for _, n := range w.fnodes[f.fStart:f.fEnd] {
		if n.star != nil || n.kidsF.mayHave(k) {
			return true
		}
	}
	for _, n := range w.rnodes[f.rStart:f.rEnd] {
		if n.star != nil || n.kidsF.mayHave(k) {
			return true
		}
	}
	return false
}

// unnamed sets cf to the frame of a value inside f that no rule names: it inherits f's action.
func (w *walker) unnamed(f, cf *frame) {
	*cf = frame{
		act: f.act, inherited: f.act >= 0, depth: f.depth + 1, recPath: -1, rec: f.rec,
		fStart: int32(len(w.fnodes)), fEnd: int32(len(w.fnodes)),
		rStart: int32(len(w.rnodes)), rEnd: int32(len(w.rnodes)),
	}
}

// element sets ef to the frame of element i of the array f and returns the rule naming it.
func (w *walker) element(f, ef *frame, i int) (int32, error) {
	if f.positional {
		if i < len(w.cols) && w.cols[i].fold != nil {
			return w.child(f, ef, w.cols[i].fold, w.cols[i].alias, true)
		}
		w.unnamed(f, ef)
		return -1, nil
	}
	if f.fEnd == f.fStart && f.rEnd == f.rStart {
		w.unnamed(f, ef)
		return -1, nil
	}
	w.idx = strconv.AppendInt(w.idx[:0], int64(i), 10)
	return w.child(f, ef, w.idx, "", false)
}

// child sets cf to the frame of the value named name (folded; alias is the folded alias or
// "") inside f, and returns the rule the name itself matches (-1 for none). Path rules from the active
// trie nodes win over bare names; bare names are looked up only for keys and positional
// columns. A deny rule is an error.
func (w *walker) child(f, cf *frame, name []byte, alias string, bare bool) (int32, error) {
	*cf = frame{act: f.act, depth: f.depth + 1, recPath: -1, rec: f.rec}
	p := w.p
	own := int32(-1)
	cf.fStart = int32(len(w.fnodes))
	if f.fEnd > f.fStart && w.plain == 0 {
		w.fnodes = w.appendKids(w.fnodes, w.fnodes[f.fStart:f.fEnd], name, alias)
		for _, n := range w.fnodes[cf.fStart:] {
			if n.rule >= 0 {
				own = p.pick(own, n.rule)
			}
		}
	}
	cf.fEnd = int32(len(w.fnodes))
	if own < 0 && bare && w.plain == 0 && p.bare != nil {
		own = p.bareRule(name)
		if alias != "" {
			own = p.pick(own, p.bareRule([]byte(alias)))
		}
		if own >= 0 && w.embed > 0 && p.rules[own].opaque {
			own = -1 // an id key in JSON someone wrote into a text field is text
		}
	}
	cf.rStart = int32(len(w.rnodes))
	if f.rEnd > f.rStart {
		w.rnodes = w.appendKids(w.rnodes, w.rnodes[f.rStart:f.rEnd], name, alias)
	}
	cf.rEnd = int32(len(w.rnodes))
	if own >= 0 {
		if p.rules[own].act.Kind == Deny {
			return own, &DeniedError{Field: p.rules[own].name}
		}
		if f.act < 0 || rank[p.rules[own].act.Kind] > rank[p.rules[f.act].act.Kind] {
			cf.act = own
		}
	}
	cf.inherited = cf.act >= 0 && cf.act != own
	cf.structural = own < 0 && bare && p.structural != nil && (p.structural[string(name)] || alias != "" && p.structural[alias])
	return own, nil
}

// appendKids appends to dst the children of nodes that the folded name or alias (or "*")
// leads to.
func (w *walker) appendKids(dst, nodes []*node, name []byte, alias string) []*node {
	for _, n := range nodes {
		if n.kidsF.mayHave(name) {
			if k := n.kid(name); k != nil {
				dst = append(dst, k)
			}
		}
		if alias != "" && alias != string(name) {
			w.aliasBuf = append(w.aliasBuf[:0], alias...)
			if k := n.kid(w.aliasBuf); k != nil {
				dst = append(dst, k)
			}
		}
		if n.star != nil {
			dst = append(dst, n.star)
		}
	}
	return dst
}

// record reads one record whose element frame is rf, which it turns into the record's frame.
// top marks a record of the records array
// (or the "@this" document), which is size-limited, may carry an id and holds output until
// it ends. It reports whether the record passed the row rules; a record that did not has had
// its counters rolled back, and the caller removes its output.
func (w *walker) record(rf *frame, own int32, c byte, top, count bool) (bool, error) {
	p := w.p
	rs := w.pushRec(top)
	defer func() { w.nrec-- }()
	if len(p.rows) > 0 {
		w.save(rs)
	}
	if top {
		w.hold++
		rs.start = w.in.offset()
		w.in.limit = rs.start + p.lim.MaxRecordBytes
	}
	rf.rec = rs
	rf.kind = kindPlain
	rf.recPath = -1
	if p.fields != nil {
		w.fnodes = append(w.fnodes, p.fields)
		rf.fEnd = int32(len(w.fnodes))
	}
	rf.rStart = int32(len(w.rnodes))
	if p.rowTrie != nil {
		w.rnodes = append(w.rnodes, p.rowTrie)
	}
	rf.rEnd = int32(len(w.rnodes))
	rf.positional = top && c == '[' && len(w.cols) > 0
	err := w.item(rf, own, c)
	if top {
		w.hold--
		w.in.limit = -1
		if err == nil && w.in.offset()-rs.start > p.lim.MaxRecordBytes {
			err = fmt.Errorf("mask: offset %d: record over %d bytes: %w", rs.start, p.lim.MaxRecordBytes, ErrTooLarge)
		}
	}
	if err != nil {
		return false, err
	}
	if !w.pass(rs) {
		w.restore(rs)
		if w.discard == 0 {
			w.removed++
		}
		return false, nil
	}
	if count && w.discard == 0 {
		w.records++
		if top && rs.hasID {
			if len(w.ids) < p.lim.MaxIDs {
				w.ids = append(w.ids, string(rs.id))
			} else {
				w.idsCut = true
			}
		}
	}
	return true, nil
}

func (w *walker) pushRec(top bool) *recState {
	if w.nrec == len(w.recs) {
		w.recs = append(w.recs, new(recState))
	}
	rs := w.recs[w.nrec]
	w.nrec++
	rs.seen = fit(rs.seen, len(w.p.rows))
	rs.failed = fit(rs.failed, len(w.p.rows))
	if len(rs.counts) != len(w.p.rules) {
		rs.counts = fit(rs.counts, len(w.p.rules))
	}
	rs.top, rs.hasID, rs.id = top, false, rs.id[:0]
	return rs
}

// save records the counters a removed record must not change.
func (w *walker) save(rs *recState) {
	copy(rs.counts, w.counts)
	rs.detects = w.detects
	rs.records, rs.removed = w.records, w.removed
	rs.nids, rs.idsCut = len(w.ids), w.idsCut
}

func (w *walker) restore(rs *recState) {
	copy(w.counts, rs.counts)
	w.detects = rs.detects
	w.records, w.removed = rs.records, rs.removed
	w.ids, w.idsCut = w.ids[:rs.nids], rs.idsCut
}

// pass reports whether the record passed every row rule. A rule with no value in the record
// fails eq and in and passes neq and not_in.
func (w *walker) pass(rs *recState) bool {
	for i := range w.p.rows {
		if rs.failed[i] || (!rs.seen[i] && !w.p.rows[i].negated()) {
			return false
		}
	}
	return true
}

// rowLeaf evaluates the row rules and the id whose path ends at the value f: kind and text
// are the value (text is the decoded string or the number literal).
func (w *walker) rowLeaf(f *frame, kind byte, text []byte) {
	w.rowValue(f.rec, w.rnodes[f.rStart:f.rEnd], kind, text)
}

// rowValue evaluates the row rules and the id at nodes for a value of record rs.
func (w *walker) rowValue(rs *recState, nodes []*node, kind byte, text []byte) {
	if rs == nil {
		return
	}
	canon := false
	for _, n := range nodes {
		for _, ri := range n.rows {
			r := &w.p.rows[ri]
			t := text
			if kind == valNumber {
				if !canon {
					w.canon = appendCanonicalNumber(w.canon[:0], text)
					canon = true
				}
				t = w.canon
			}
			rs.seen[ri] = true
			if r.matches(kind, t) == r.negated() {
				rs.failed[ri] = true
			}
		}
		if n.id && rs.top && !rs.hasID && kind != valNull && kind != valOther {
			rs.id = append(rs.id[:0], text...)
			rs.hasID = true
		}
	}
}

// header reads the header row of a ColumnsFromFirstRecord records array, keeping it as is,
// and names the columns after its strings.
func (w *walker) header(f *frame, c byte) error {
	w.plain++
	defer func() { w.plain-- }()
	hf := &w.frames[f.depth+1]
	w.unnamed(f, hf)
	if c != '[' {
		w.cols = nil
		return w.value(hf, c)
	}
	if int(hf.depth) >= w.p.lim.MaxDepth {
		return w.tooDeep()
	}
	var cols []column
	w.in.pos++
	ef := &w.frames[hf.depth+1]
	w.unnamed(hf, ef)
	c, err := w.next()
	if err != nil {
		return w.eofErr(err)
	}
	if c == ']' {
		w.in.pos++
		w.cols = cols
		return nil
	}
	for {
		if c == '"' {
			raw, esc, _, err := w.str()
			if err != nil {
				return err
			}
			cols = append(cols, w.p.column(string(w.unescape(raw, esc))))
		} else {
			cols = append(cols, column{})
			if err := w.value(ef, c); err != nil {
				return err
			}
		}
		var more bool
		if c, _, more, err = w.separator(']'); err != nil {
			return err
		}
		if !more {
			w.cols = cols
			return nil
		}
	}
}
