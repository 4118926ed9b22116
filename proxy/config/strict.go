package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// DecodeStrict decodes n into v (a pointer) and reports every key that v's type does not
// declare, each with its line. yaml.v3's KnownFields does not reach into nodes decoded through
// yaml.Node, so adapters decode their options with this too.
func DecodeStrict(n *yaml.Node, v any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	var errs Errors
	checkKeys(n, reflect.TypeOf(v), "", &errs)
	if len(errs) > 0 {
		return errs
	}
	if err := n.Decode(v); err != nil {
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	if e, ok := err.(*Error); ok {
		return e
	}
	if te, ok := err.(*yaml.TypeError); ok {
		var errs Errors
		for _, m := range te.Errors {
			errs = append(errs, parseYAMLMsg(m))
		}
		return errs
	}
	return parseYAMLMsg(err.Error())
}

// parseYAMLMsg turns "line 12: cannot unmarshal ..." into an Error with Line set.
func parseYAMLMsg(m string) *Error {
	m = strings.TrimPrefix(m, "yaml: ")
	if rest, ok := strings.CutPrefix(m, "line "); ok {
		if num, msg, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(num); err == nil {
				return &Error{Line: l, Msg: msg}
			}
		}
	}
	return &Error{Msg: m}
}

func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, errs)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		*errs = append(*errs, &Error{Line: n.Line, Path: path, Msg: "YAML aliases are not supported"})
		return
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch with its line
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, &Error{Line: k.Line, Path: p, Msg: "duplicate key"})
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, &Error{Line: k.Line, Path: p, Msg: "unknown key"})
				continue
			}
			checkKeys(val, ft, p, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), errs)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lineOf finds the line of a dotted path such as "routes[1].upstream" in the document; 0 when
// the key is absent (the error then names the nearest parent that exists).
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next, line = n.Content[i+1], n.Content[i].Line
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// Locate places errors from DecodeStrict in their file, under the key path prefix
// ("routes[0].generic"); other errors are returned as they are.
func Locate(err error, file, prefix string) error {
	var es Errors
	var e *Error
	switch {
	case errors.As(err, &es):
	case errors.As(err, &e):
		es = Errors{e}
	default:
		return err
	}
	for _, e := range es {
		e.File = file
		if e.Path != "" {
			e.Path = prefix + "." + e.Path
		} else {
			e.Path = prefix
		}
	}
	return es
}
