package mask

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Defaults and caps for Limits.
const (
	defaultMaxDepth       = 512
	maxMaxDepth           = 10000
	defaultMaxRecordBytes = 16 << 20
	defaultMaxIDs         = 1000
)

// rule is one entry of Plan.Fields.
type rule struct {
	name   string // as written in the plan; Stats.Fields and DeniedError use it
	act    Action
	opaque bool // a keep from Layout.Opaque, not the plan: it holds outside embedded documents only
}

// node is a trie node of record-relative paths. The field trie holds Plan.Fields paths; the
// row trie holds row rule fields and Layout.ID.
type node struct {
	names []string         // folded segments of the children, by index of nodes
	nodes []*node          // the children
	kids  map[string]*node // the children by segment, once there are more than smallKids
	kidsF nameFilter       // the names of the children
	star  *node            // "*": any key or array index
	rule  int32            // field rule ending here, or -1
	rows  []int32          // row rules whose field ends here
	id    bool             // Layout.ID ends here
}

// smallKids is how many children a node searches linearly before it indexes them in a map.
const smallKids = 8

func newNode() *node { return &node{rule: -1} }

// kid returns the child named by the folded segment name, or nil.
func (n *node) kid(name []byte) *node {
	if n.kids != nil {
		return n.kids[string(name)]
	}
	for i, s := range n.names {
		if s == string(name) {
			return n.nodes[i]
		}
	}
	return nil
}

// insert adds the path segs below n and returns its last node.
func (n *node) insert(segs []string) *node {
	for _, s := range segs {
		if s == "*" {
			if n.star == nil {
				n.star = newNode()
			}
			n = n.star
			continue
		}
		k := n.kid([]byte(s))
		if k == nil {
			k = newNode()
			n.kidsF.add(s)
			n.names = append(n.names, s)
			n.nodes = append(n.nodes, k)
			if len(n.names) > smallKids {
				n.kids = make(map[string]*node, len(n.names))
				for i, name := range n.names {
					n.kids[name] = n.nodes[i]
				}
			}
		}
		n = k
	}
	return n
}

// nameFilter is a cheap pre-check of a set of names: bit (first byte & 31) of entry
// min(len, 63) is set for every name in the set.
type nameFilter [64]uint32

func (f *nameFilter) add(name string) {
	if name != "" {
		f[min(len(name), 63)] |= 1 << (name[0] & 31)
	}
}

func (f *nameFilter) mayHave(name []byte) bool {
	return len(name) > 0 && f[min(len(name), 63)]&(1<<(name[0]&31)) != 0
}

// column names one element of a positional record: fold is the folded name (nil when the
// element is unnamed), alias the folded alias or "".
type column struct {
	fold  []byte
	alias string
}

// recMode is where Layout.Records puts the records.
type recMode uint8

const (
	recNone recMode = iota // no records: everything is envelope
	recRoot                // the document is the records array
	recPath                // the records array sits at recPath
	recThis                // the document is one record
)

// Program is a Plan compiled against a Layout. It is immutable and safe for concurrent use.
type Program struct {
	format     Format
	rules      []rule           // sorted by name
	bare       map[string]int32 // folded field name (and folded full dotted name) -> rule
	bareF      nameFilter       // the keys of bare
	keyF       nameFilter       // bare, the raw keys of aliases and the nested keys: what may name a key
	fields     *node            // path rules; nil when the plan has none
	rowTrie    *node            // row fields and ID; nil when there are neither
	rows       []rowRule
	csvRows    map[string][]int32 // folded row field -> row rules, for CSV
	detect     scanSet
	aliases    map[string]string // folded raw key -> folded policy name
	nested     map[string]bool   // folded keys whose arrays hold nested records
	structural map[string]bool   // folded Layout.Structural keys
	columns    []column
	fromRow    bool // Layout.ColumnsFromFirstRecord
	mode       recMode
	recPath    []string
	stPath     []string // Layout.Status.Path split; nil when unset
	cpPath     []string // Layout.Capture split; nil when unset
	stOK       []byte
	idFold     string // folded Layout.ID, for CSV
	header     int
	hashKey    []byte
	lim        Limits
	masks      bool
	skip       bool // !masks: values nothing can reach are read by skip (tests turn it off to compare)
}

// Compile checks plan p against layout l once and returns the Program that applies it. Field
// names are matched case-insensitively on decoded keys, after Layout.Aliases. A bare name
// ("phone") matches that key at any depth, in records and in the envelope; a dotted name
// ("Owner.Phone", "items.*.mobile") is a path from the record root, "*" matching any one key
// or array index, and matches inside records only (from the top-level record root and from
// the root of every nested record). In CSV every name, dotted or not, is matched against the
// whole header text.
//
// Precedence, when several rules match one key: a path rule wins over a bare name ("Owner.Phone":
// keep beats "phone": mask at that key); among rules of the same kind the most restrictive
// action wins (keep < mask < hash < redact < null < drop < deny), so case variants of one name
// in the plan resolve to the stricter action. A value inside a value another rule governs
// gets the more restrictive of the two actions, so an inner keep never loosens an outer mask.
// A value governed by keep is exempt from the detectors; values no rule governs are scanned.
//
// Compile fails on unknown actions, formats, detectors and row operators, on a hash action
// without Plan.HashKey, on empty names or path segments, and on limits out of range.
func Compile(p Plan, l Layout, lim Limits) (*Program, error) {
	prog := &Program{format: l.Format, hashKey: slices.Clone(p.HashKey)}
	if l.Format != FormatJSON && l.Format != FormatCSV {
		return nil, fmt.Errorf("mask: compile: unknown format %d", l.Format)
	}
	var err error
	if prog.lim, err = normalizeLimits(lim); err != nil {
		return nil, err
	}
	fields := p.Fields
	if len(l.Opaque) > 0 {
		fields = make(map[string]Action, len(p.Fields)+len(l.Opaque))
		for _, n := range l.Opaque {
			fields[n] = Action{Kind: Keep}
		}
		maps.Copy(fields, p.Fields)
	}
	if err := prog.compileFields(fields); err != nil {
		return nil, err
	}
	for i := range prog.rules {
		r := &prog.rules[i]
		if _, planned := p.Fields[r.name]; !planned && slices.Contains(l.Opaque, r.name) {
			r.opaque = true
		}
	}
	if prog.detect, err = scanSetOf(p.Detect); err != nil {
		return nil, fmt.Errorf("mask: compile: %w", err)
	}
	if err := prog.compileLayout(l); err != nil {
		return nil, err
	}
	if err := prog.compileRows(p.Rows, l); err != nil {
		return nil, err
	}
	prog.masks = prog.detect != 0 || len(prog.rows) > 0
	for _, r := range prog.rules {
		if r.act.Kind != Keep {
			prog.masks = true
		}
	}
	prog.skip = !prog.masks
	return prog, nil
}

func normalizeLimits(lim Limits) (Limits, error) {
	switch {
	case lim.MaxDepth < 0 || lim.MaxDepth > maxMaxDepth:
		return lim, fmt.Errorf("mask: compile: MaxDepth %d not in 0..%d", lim.MaxDepth, maxMaxDepth)
	case lim.MaxRecordBytes < 0:
		return lim, fmt.Errorf("mask: compile: negative MaxRecordBytes %d", lim.MaxRecordBytes)
	case lim.MaxIDs < 0:
		return lim, fmt.Errorf("mask: compile: negative MaxIDs %d", lim.MaxIDs)
	}
	if lim.MaxDepth == 0 {
		lim.MaxDepth = defaultMaxDepth
	}
	if lim.MaxRecordBytes == 0 {
		lim.MaxRecordBytes = defaultMaxRecordBytes
	}
	if lim.MaxIDs == 0 {
		lim.MaxIDs = defaultMaxIDs
	}
	return lim, nil
}

func (prog *Program) compileFields(fields map[string]Action) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a := fields[n]
		if err := a.validate(); err != nil {
			return fmt.Errorf("mask: compile: field %q: %w", n, err)
		}
		if a.Kind == Hash && len(prog.hashKey) == 0 {
			return fmt.Errorf("mask: compile: field %q: hash needs a hash key", n)
		}
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("mask: compile: empty field name")
		}
		idx := int32(len(prog.rules))
		prog.rules = append(prog.rules, rule{name: n, act: a})
		if prog.bare == nil {
			prog.bare = make(map[string]int32)
		}
		f := fold(n)
		prog.bareF.add(f)
		prog.keyF.add(f)
		if old, ok := prog.bare[f]; ok {
			idx2 := prog.pick(old, idx)
			prog.bare[f] = idx2
		} else {
			prog.bare[f] = idx
		}
		if !strings.Contains(n, ".") {
			continue
		}
		segs, err := splitPath(n)
		if err != nil {
			return fmt.Errorf("mask: compile: field %q: %w", n, err)
		}
		if prog.fields == nil {
			prog.fields = newNode()
		}
		end := prog.fields.insert(segs)
		if end.rule < 0 {
			end.rule = idx
		} else {
			end.rule = prog.pick(end.rule, idx)
		}
	}
	return nil
}

// splitPath splits a dotted name into folded segments.
func splitPath(p string) ([]string, error) {
	segs := strings.Split(p, ".")
	for i, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("empty segment in path %q", p)
		}
		segs[i] = fold(s)
	}
	return segs, nil
}

func (prog *Program) compileLayout(l Layout) error {
	if len(l.Aliases) > 0 {
		prog.aliases = make(map[string]string, len(l.Aliases))
		for raw, name := range l.Aliases {
			prog.aliases[fold(raw)] = fold(name)
			prog.keyF.add(fold(raw))
		}
	}
	for _, n := range l.Nested {
		if prog.nested == nil {
			prog.nested = make(map[string]bool)
		}
		prog.nested[fold(n)] = true
		prog.keyF.add(fold(n))
	}
	for _, n := range l.Structural {
		if prog.structural == nil {
			prog.structural = make(map[string]bool)
		}
		prog.structural[fold(n)] = true
		prog.keyF.add(fold(n))
	}
	for _, c := range l.Columns {
		prog.columns = append(prog.columns, prog.column(c))
	}
	prog.fromRow = l.ColumnsFromFirstRecord
	switch {
	case l.Records == "@this":
		prog.mode = recThis
	case !l.HasRecords && l.Records == "":
		prog.mode = recNone
	case l.Records == "":
		prog.mode = recRoot
	default:
		prog.mode = recPath
		prog.recPath = strings.Split(l.Records, ".")
		for _, s := range prog.recPath {
			if s == "" {
				return fmt.Errorf("mask: compile: empty segment in records path %q", l.Records)
			}
		}
	}
	if l.Capture != "" {
		prog.cpPath = strings.Split(l.Capture, ".")
		if slices.Contains(prog.cpPath, "") {
			return fmt.Errorf("mask: compile: empty segment in capture path %q", l.Capture)
		}
	}
	if l.Status.Path != "" {
		prog.stPath = strings.Split(l.Status.Path, ".")
		if slices.Contains(prog.stPath, "") {
			return fmt.Errorf("mask: compile: empty segment in status path %q", l.Status.Path)
		}
		prog.stOK = []byte(l.Status.OK)
	}
	if l.HeaderRow < 0 {
		return fmt.Errorf("mask: compile: negative HeaderRow %d", l.HeaderRow)
	}
	prog.header = max(l.HeaderRow, 1)
	if l.ID != "" {
		prog.idFold = fold(l.ID)
		segs, err := splitPath(l.ID)
		if err != nil {
			return fmt.Errorf("mask: compile: id: %w", err)
		}
		if prog.rowTrie == nil {
			prog.rowTrie = newNode()
		}
		prog.rowTrie.insert(segs).id = true
	}
	return nil
}

// column names a positional element.
func (prog *Program) column(name string) column {
	f := appendFold(nil, []byte(strings.TrimSpace(name)))
	if len(f) == 0 {
		return column{}
	}
	return column{fold: f, alias: prog.aliases[string(f)]}
}

func (prog *Program) compileRows(rows []RowRule, l Layout) error {
	for i, r := range rows {
		rr, err := compileRow(r)
		if err != nil {
			return fmt.Errorf("mask: compile: %w", err)
		}
		prog.rows = append(prog.rows, rr)
		if l.Format == FormatCSV {
			if prog.csvRows == nil {
				prog.csvRows = make(map[string][]int32)
			}
			f := fold(strings.TrimSpace(r.Field))
			prog.csvRows[f] = append(prog.csvRows[f], int32(i))
			continue
		}
		segs, err := splitPath(strings.TrimSpace(r.Field))
		if err != nil {
			return fmt.Errorf("mask: compile: row rule: %w", err)
		}
		if prog.rowTrie == nil {
			prog.rowTrie = newNode()
		}
		end := prog.rowTrie.insert(segs)
		end.rows = append(end.rows, int32(i))
	}
	return nil
}

// bareRule returns the rule of the folded bare name, or -1.
func (prog *Program) bareRule(name []byte) int32 {
	if !prog.bareF.mayHave(name) {
		return -1
	}
	if r, ok := prog.bare[string(name)]; ok {
		return r
	}
	return -1
}

// pick returns the rule of a and b with the more restrictive action, a on a tie. Either may
// be -1.
func (prog *Program) pick(a, b int32) int32 {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	case rank[prog.rules[b].act.Kind] > rank[prog.rules[a].act.Kind]:
		return b
	}
	return a
}

// Masks reports whether the plan can change a body: false when every field rule is keep and
// there are no row rules and no detectors. Callers may then skip rewriting, but Rewrite still
// validates the body.
func (prog *Program) Masks() bool { return prog.masks }

// walkers holds idle walkers for every Program: a Program is often compiled for one
// response, so a pool of its own would never be reused.
var walkers sync.Pool // *walker

// walker returns a pooled walker fitted to prog, reset for a new body.
func (prog *Program) walker() *walker {
	w, _ := walkers.Get().(*walker)
	if w == nil {
		w = new(walker)
	}
	w.p = prog
	w.counts = fit(w.counts, len(prog.rules))
	if len(prog.hashKey) > 0 && (w.mac == nil || !bytes.Equal(w.macKey, prog.hashKey)) {
		w.mac, w.macKey = hmac.New(sha256.New, prog.hashKey), prog.hashKey
	}
	return w
}

// fit returns s with length n, all zero, reusing its array when it is large enough.
func fit[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// release returns w to the pool unless it grew large buffers.
func (prog *Program) release(w *walker) {
	if cap(w.out) > 1<<20 || cap(w.top.buf) > 1<<20 {
		return
	}
	w.reset()
	w.p = nil
	walkers.Put(w)
}
