package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Member is one name/value pair of a JSON object, as written.
type Member struct {
	Name  string
	Value json.RawMessage
}

// Members reads raw as one JSON object and returns its members in order, duplicates included.
// Anything else (an array, trailing data, invalid JSON) is an error. Adapters that read a
// request body (Jiandaoyun, Kingdee, Zoho, Salesforce composite) use it.
func Members(raw []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var ms []Member
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
		ms = append(ms, Member{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return ms, nil
}

// Lookup returns the value of the member called name. Names are compared case-insensitively,
// and two members that compare equal are an error: the upstream and Veil could each read a
// different one.
func Lookup(ms []Member, name string) (json.RawMessage, bool, error) {
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

// IsNull reports whether v is absent or the JSON literal null.
func IsNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}
