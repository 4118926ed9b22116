package mask

import (
	"fmt"
	"strings"
)

// formats are the mask formats an Action may name.
var formats = map[string]bool{
	"phone": true, "id_card": true, "bank_card": true, "email": true,
	"name": true, "address": true, "generic": true,
}

// kindNames are the action names as written in a policy decision, by Kind.
var kindNames = [...]string{
	Keep: "keep", Mask: "mask", Redact: "redact", Hash: "hash", Drop: "drop", Null: "null", Deny: "deny",
}

// rank orders kinds from the least to the most restrictive. When rules of the same
// specificity collide, and when a value sits inside a value that another rule governs,
// the more restrictive action wins.
var rank = [...]int8{Keep: 0, Mask: 1, Hash: 2, Redact: 3, Null: 4, Drop: 5, Deny: 6}

// String returns the action as written in policy: "keep", "mask", "mask:phone", "deny".
func (a Action) String() string {
	if int(a.Kind) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", a.Kind)
	}
	if a.Kind == Mask && a.Format != "" {
		return "mask:" + a.Format
	}
	return kindNames[a.Kind]
}

// ParseAction parses "keep", "mask", "mask:phone", "redact", "hash", "drop", "null", "deny".
// Only mask takes a format; the formats are phone, id_card, bank_card, email, name, address
// and generic. Names are lower case, as the policy writes them.
func ParseAction(s string) (Action, error) {
	name, format, hasFormat := strings.Cut(s, ":")
	for k, n := range kindNames {
		if n != name {
			continue
		}
		a := Action{Kind: Kind(k)}
		if !hasFormat {
			return a, nil
		}
		if a.Kind != Mask {
			return Action{}, fmt.Errorf("mask: action %q: only mask takes a format", s)
		}
		if !formats[format] {
			return Action{}, fmt.Errorf("mask: action %q: unknown mask format %q", s, format)
		}
		a.Format = format
		return a, nil
	}
	return Action{}, fmt.Errorf("mask: unknown action %q", s)
}

// validate reports whether a is an action Compile accepts.
func (a Action) validate() error {
	if int(a.Kind) >= len(kindNames) {
		return fmt.Errorf("unknown action kind %d", a.Kind)
	}
	if a.Format != "" {
		if a.Kind != Mask {
			return fmt.Errorf("action %s: only mask takes a format", kindNames[a.Kind])
		}
		if !formats[a.Format] {
			return fmt.Errorf("unknown mask format %q", a.Format)
		}
	}
	return nil
}
