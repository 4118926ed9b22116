package salesforce

import (
	"encoding/json"

	"github.com/veilproxy/veil/adapters"
)

// The JSON-body helpers are shared by the adapters that read request bodies.
type member = adapters.Member

func members(raw []byte) ([]member, error) { return adapters.Members(raw) }

func get(ms []member, name string) (json.RawMessage, bool, error) { return adapters.Lookup(ms, name) }

func isNull(v json.RawMessage) bool { return adapters.IsNull(v) }

// str reads an optional string member.
func str(ms []member, name string) (string, error) {
	v, ok, err := get(ms, name)
	if err != nil {
		return "", &adapters.Error{Reason: err.Error()}
	}
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", &adapters.Error{Reason: name + " must be a string"}
	}
	return s, nil
}
