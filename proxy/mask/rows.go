package mask

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// rowOp is a row predicate operator.
type rowOp uint8

const (
	opEq rowOp = iota
	opNeq
	opIn
	opNotIn
)

var rowOps = map[string]rowOp{"eq": opEq, "neq": opNeq, "in": opIn, "not_in": opNotIn}

// Kinds of rowValue.
const (
	valString = 's'
	valNumber = 'n' // s holds the canonical form, see appendCanonicalNumber
	valTrue   = 't'
	valFalse  = 'f'
	valNull   = 'z'
	valOther  = 'o' // an object or array in the response: equal to nothing
)

// rowValue is one JSON scalar a row predicate compares with.
type rowValue struct {
	kind byte
	s    string
}

// rowRule is a compiled RowRule.
type rowRule struct {
	field string
	op    rowOp
	vals  []rowValue
}

// negated reports whether the rule passes when no value matches (neq, not_in), which is
// also how a missing field fares.
func (r *rowRule) negated() bool { return r.op == opNeq || r.op == opNotIn }

func compileRow(r RowRule) (rowRule, error) {
	op, ok := rowOps[r.Op]
	if !ok {
		return rowRule{}, fmt.Errorf("row rule on %q: unknown op %q", r.Field, r.Op)
	}
	if strings.TrimSpace(r.Field) == "" {
		return rowRule{}, fmt.Errorf("row rule: empty field")
	}
	if !json.Valid(r.Value) {
		return rowRule{}, fmt.Errorf("row rule on %q: value is not JSON", r.Field)
	}
	d := json.NewDecoder(bytes.NewReader(r.Value))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return rowRule{}, fmt.Errorf("row rule on %q: %w", r.Field, err)
	}
	rr := rowRule{field: r.Field, op: op}
	if op == opIn || op == opNotIn {
		list, ok := v.([]any)
		if !ok {
			return rowRule{}, fmt.Errorf("row rule on %q: %s needs an array value", r.Field, r.Op)
		}
		for _, e := range list {
			rv, err := scalar(e)
			if err != nil {
				return rowRule{}, fmt.Errorf("row rule on %q: %w", r.Field, err)
			}
			rr.vals = append(rr.vals, rv)
		}
		return rr, nil
	}
	rv, err := scalar(v)
	if err != nil {
		return rowRule{}, fmt.Errorf("row rule on %q: %w", r.Field, err)
	}
	rr.vals = []rowValue{rv}
	return rr, nil
}

func scalar(v any) (rowValue, error) {
	switch v := v.(type) {
	case string:
		return rowValue{kind: valString, s: v}, nil
	case json.Number:
		return rowValue{kind: valNumber, s: string(appendCanonicalNumber(nil, []byte(v)))}, nil
	case bool:
		if v {
			return rowValue{kind: valTrue}, nil
		}
		return rowValue{kind: valFalse}, nil
	case nil:
		return rowValue{kind: valNull}, nil
	}
	return rowValue{}, fmt.Errorf("value %v is not a string, number, boolean or null", v)
}

// matches reports whether a value of the given kind and text (decoded string, canonical
// number) equals any of the rule's values.
func (r *rowRule) matches(kind byte, text []byte) bool {
	for _, v := range r.vals {
		if v.kind == kind && (kind != valString && kind != valNumber || v.s == string(text)) {
			return true
		}
	}
	return false
}

// appendCanonicalNumber appends a form of the JSON number literal lit that is the same for
// numerically equal literals: an optional "-", the significant digits without leading or
// trailing zeros, "e" and the exponent E such that the value is 0.digits × 10^E. Zero is "0".
// Exponents too large to hold are kept literally (x and the literal), equal only to themselves.
func appendCanonicalNumber(dst, lit []byte) []byte {
	base := len(dst)
	i := 0
	if i < len(lit) && lit[i] == '-' {
		dst = append(dst, '-')
		i++
	}
	ds := len(dst)
	var intLen int64
	point := false
	for ; i < len(lit) && lit[i] != 'e' && lit[i] != 'E'; i++ {
		c := lit[i]
		if c == '.' {
			point = true
			continue
		}
		if !point {
			intLen++
		}
		if c == '0' && len(dst) == ds {
			intLen--
			continue
		}
		dst = append(dst, c)
	}
	for len(dst) > ds && dst[len(dst)-1] == '0' {
		dst = dst[:len(dst)-1]
	}
	if len(dst) == ds {
		return append(dst[:base], '0')
	}
	var exp int64
	if i < len(lit) {
		e := lit[i+1:]
		neg := false
		if len(e) > 0 && (e[0] == '+' || e[0] == '-') {
			neg = e[0] == '-'
			e = e[1:]
		}
		e = bytes.TrimLeft(e, "0")
		if len(e) > 15 {
			return append(append(dst[:base], 'x'), lit...)
		}
		for _, c := range e {
			exp = exp*10 + int64(c-'0')
		}
		if neg {
			exp = -exp
		}
	}
	dst = append(dst, 'e')
	return strconv.AppendInt(dst, intLen+exp, 10)
}
