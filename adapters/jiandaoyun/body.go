package jiandaoyun

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// member is one name/value pair of a JSON object, as written.
type member struct {
	Name  string
	Value json.RawMessage
}

// members reads raw as one JSON object and returns its members in order. Anything else (an
// array, trailing data, invalid JSON) is an error.
func members(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return ms, nil
}

// get returns the value of the member called name. Names are compared case-insensitively,
// and two members that compare equal are an error: the upstream and Veil could each read a
// different one.
func get(ms []member, name string) (json.RawMessage, bool, error) {
	var v json.RawMessage
	found := false
	for _, m := range ms {
		if strings.EqualFold(m.Name, name) {
			if found {
				return nil, false, errors.New(name + " given more than once")
			}
			v, found = m.Value, true
		}
	}
	return v, found, nil
}

// isNull reports whether v is absent or the JSON literal null.
func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}
