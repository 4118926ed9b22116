package jiandaoyun

import (
	"encoding/json"

	"github.com/veilproxy/veil/adapters"
)

// The JSON-body helpers are shared by the adapters that read request bodies.
type member = adapters.Member

func members(raw []byte) ([]member, error) { return adapters.Members(raw) }

func get(ms []member, name string) (json.RawMessage, bool, error) { return adapters.Lookup(ms, name) }

func isNull(v json.RawMessage) bool { return adapters.IsNull(v) }
