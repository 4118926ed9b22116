package policy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Errors Decide wraps; the proxy turns every Decide error into a deny.
var (
	// ErrUndefined is returned when the policy defines no data.veil.decision for the input.
	ErrUndefined = errors.New("policy: decision undefined")
	// ErrInvalid is wrapped when data.veil.decision is not a decision: not an object, an
	// unknown key, a value of the wrong type, an unknown field action, row op or detector,
	// a bad window, a negative number, a status that is not an HTTP error.
	ErrInvalid = errors.New("policy: invalid decision")
)

// Field actions a decision may name. "mask" may carry a format: "mask:phone".
var fieldActions = map[string]bool{
	"keep": true, "mask": true, "redact": true, "hash": true, "drop": true, "null": true, "deny": true,
}

// Mask formats the mask engine implements.
var maskFormats = map[string]bool{
	"phone": true, "id_card": true, "bank_card": true, "email": true, "name": true, "address": true, "generic": true,
}

// Row predicate operators.
var rowOps = map[string]bool{"eq": true, "neq": true, "in": true, "not_in": true}

// Content scanners the detect list may name.
var detectors = map[string]bool{"phone": true, "id_card": true, "bank_card": true, "email": true, "address": true}

// parseDecision reads data.veil.decision into a Decision, refusing anything that is not
// exactly a decision, and fills in the defaults: allow false, status 403 on a deny,
// mode enforce. Error messages name keys and policy-defined strings, never input values.
func parseDecision(v ast.Value) (Decision, error) {
	d, err := decision(v)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !d.Allow && d.Status == 0 {
		d.Status = http.StatusForbidden
	}
	if d.Mode == "" {
		d.Mode = ModeEnforce
	}
	return d, nil
}

// decision reads the keys of a decision object, validating each.
func decision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", ast.ValueName(v))
	}
	var d Decision
	err := obj.Iter(func(k, val *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("key %v is not a string", k)
		}
		var err error
		switch string(name) {
		case "allow":
			d.Allow, err = boolean(val.Value)
		case "status":
			d.Status, err = status(val.Value)
		case "reason":
			d.Reason, err = str(val.Value)
		case "fields":
			d.Fields, err = fields(val.Value)
		case "rows":
			d.Rows, err = rows(val.Value)
		case "detect":
			d.Detect, err = detect(val.Value)
		case "limits":
			d.Limits, err = limits(val.Value)
		case "max_page_size":
			d.MaxPageSize, err = count(val.Value)
		case "mode":
			d.Mode, err = mode(val.Value)
		default:
			return fmt.Errorf("unknown key %q", string(name))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", string(name), err)
		}
		return nil
	})
	return d, err
}

func boolean(v ast.Value) (bool, error) {
	b, ok := v.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%s, want a boolean", ast.ValueName(v))
	}
	return bool(b), nil
}

func str(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf("%s, want a string", ast.ValueName(v))
	}
	return string(s), nil
}

// nonEmpty is a string that is not "".
func nonEmpty(v ast.Value) (string, error) {
	s, err := str(v)
	if err == nil && s == "" {
		err = errors.New("empty string")
	}
	return s, err
}

// integer is a whole number that is not negative.
func integer(v ast.Value) (int64, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("%s, want a number", ast.ValueName(v))
	}
	i, ok := n.Int64()
	if !ok {
		return 0, errors.New("not a whole number")
	}
	if i < 0 {
		return 0, errors.New("negative")
	}
	return i, nil
}

// count is a non-negative integer that fits an int.
func count(v ast.Value) (int, error) {
	i, err := integer(v)
	if err != nil {
		return 0, err
	}
	if int64(int(i)) != i {
		return 0, errors.New("out of range")
	}
	return int(i), nil
}

// status is an HTTP error status, 400 to 599.
func status(v ast.Value) (int, error) {
	s, err := count(v)
	if err != nil {
		return 0, err
	}
	if s < 400 || s > 599 {
		return 0, errors.New("not an HTTP error status (400-599)")
	}
	return s, nil
}

func mode(v ast.Value) (string, error) {
	m, err := str(v)
	if err != nil {
		return "", err
	}
	if m != ModeEnforce && m != ModeMonitor {
		return "", fmt.Errorf("unknown mode %q", m)
	}
	return m, nil
}

// elements are the members of an array, or of a set (in sorted order).
func elements(v ast.Value) ([]*ast.Term, error) {
	var arr *ast.Array
	switch x := v.(type) {
	case *ast.Array:
		arr = x
	case ast.Set:
		arr = x.Sorted()
	default:
		return nil, fmt.Errorf("%s, want an array", ast.ValueName(v))
	}
	terms := make([]*ast.Term, 0, arr.Len())
	arr.Foreach(func(t *ast.Term) { terms = append(terms, t) })
	return terms, nil
}

// fields reads the field → action map.
func fields(v ast.Value) (map[string]string, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s, want an object", ast.ValueName(v))
	}
	out := make(map[string]string, obj.Len())
	err := obj.Iter(func(k, val *ast.Term) error {
		name, err := nonEmpty(k.Value)
		if err != nil {
			return fmt.Errorf("field name: %w", err)
		}
		action, err := str(val.Value)
		if err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		if err := validAction(action); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		out[name] = action
		return nil
	})
	return out, err
}

// validAction reports whether action is a field action a decision may name: keep, mask,
// mask:<format> (phone, id_card, bank_card, email, name, address, generic), redact, hash,
// drop, null or deny.
func validAction(action string) error {
	name, format, hasFormat := strings.Cut(action, ":")
	if !fieldActions[name] {
		return fmt.Errorf("unknown field action %q", action)
	}
	if hasFormat && (name != "mask" || !maskFormats[format]) {
		return fmt.Errorf("unknown field action %q", action)
	}
	return nil
}

// rows reads the row predicates.
func rows(v ast.Value) ([]Row, error) { return each(v, row) }

// each reads every element of an array or set with read; an error names the element.
func each[T any](v ast.Value, read func(ast.Value) (T, error)) ([]T, error) {
	terms, err := elements(v)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(terms))
	for i, t := range terms {
		e, err := read(t.Value)
		if err != nil {
			return nil, fmt.Errorf("%d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func row(v ast.Value) (Row, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Row{}, fmt.Errorf("%s, want an object", ast.ValueName(v))
	}
	var r Row
	var hasValue bool
	var value ast.Value
	err := obj.Iter(func(k, val *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("key %v is not a string", k)
		}
		var err error
		switch string(name) {
		case "field":
			r.Field, err = nonEmpty(val.Value)
		case "op":
			r.Op, err = str(val.Value)
			if err == nil && !rowOps[r.Op] {
				err = fmt.Errorf("unknown row op %q", r.Op)
			}
		case "value":
			hasValue, value = true, val.Value
		default:
			err = fmt.Errorf("unknown key %q", string(name))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", string(name), err)
		}
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	switch {
	case r.Field == "":
		return Row{}, errors.New("field missing")
	case r.Op == "":
		return Row{}, errors.New("op missing")
	case !hasValue:
		return Row{}, errors.New("value missing")
	}
	if r.Op == "in" || r.Op == "not_in" {
		terms, err := elements(value)
		if err != nil {
			return Row{}, fmt.Errorf("value: %w", err)
		}
		value = ast.NewArray(terms...)
	}
	r.Value, err = ast.JSON(value)
	if err != nil {
		return Row{}, fmt.Errorf("value: %w", err)
	}
	return r, nil
}

// detect reads the list of content scanners.
func detect(v ast.Value) ([]string, error) {
	terms, err := elements(v)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(terms))
	for _, t := range terms {
		name, err := str(t.Value)
		if err != nil {
			return nil, err
		}
		if !detectors[name] {
			return nil, fmt.Errorf("unknown detector %q", name)
		}
		out = append(out, name)
	}
	return out, nil
}

// limits reads the budgets.
func limits(v ast.Value) ([]Limit, error) { return each(v, limit) }

func limit(v ast.Value) (Limit, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Limit{}, fmt.Errorf("%s, want an object", ast.ValueName(v))
	}
	var l Limit
	var hasRecords bool
	err := obj.Iter(func(k, val *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("key %v is not a string", k)
		}
		var err error
		switch string(name) {
		case "name":
			l.Name, err = nonEmpty(val.Value)
		case "key":
			l.Key, err = nonEmpty(val.Value)
		case "window":
			var s string
			if s, err = str(val.Value); err == nil {
				l.Window, err = parseWindow(s)
			}
		case "records":
			hasRecords = true
			l.Records, err = integer(val.Value)
		case "requests":
			l.Requests, err = integer(val.Value)
		default:
			err = fmt.Errorf("unknown key %q", string(name))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", string(name), err)
		}
		return nil
	})
	if err != nil {
		return Limit{}, err
	}
	switch {
	case l.Name == "":
		return Limit{}, errors.New("name missing")
	case l.Key == "":
		return Limit{}, errors.New("key missing")
	case l.Window == 0:
		return Limit{}, errors.New("window missing")
	case !hasRecords:
		return Limit{}, errors.New("records missing")
	}
	return l, nil
}

// parseWindow parses a limit window: a positive Go duration ("30m", "1h", "1h30m") or a
// whole number of days ("7d").
func parseWindow(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(maxDays) {
			return 0, fmt.Errorf("window %q: want a duration such as 30m, 1h, 24h or 7d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("window %q: want a duration such as 30m, 1h, 24h or 7d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("window %q is not positive", s)
	}
	return d, nil
}

// maxDays is the longest window in days a time.Duration holds.
const maxDays = int64(1<<63-1) / int64(24*time.Hour)
