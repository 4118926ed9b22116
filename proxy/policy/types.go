// Package policy evaluates the Rego policy (data.veil.decision) with embedded OPA and returns
// a typed Decision; anything it cannot decide is a deny.
package policy

import "time"

// Input is the document every policy sees as input.
type Input struct {
	User     User     `json:"user"`
	Request  Request  `json:"request"`
	Route    string   `json:"route"`
	Resource Resource `json:"resource"`
}

// User is the caller as identity established it.
type User struct {
	ID         string         `json:"id"`
	Roles      []string       `json:"roles"`
	Department string         `json:"department"`
	Email      string         `json:"email,omitempty"`
	Claims     map[string]any `json:"claims"`
	// Restricted is set while spike containment holds the user (export spikes issue).
	Restricted bool `json:"restricted"`
}

// Request is the HTTP request as policy sees it: normalized path, lower-case header names,
// never the authorization or cookie headers.
type Request struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Query    map[string][]string `json:"query"`
	Headers  map[string][]string `json:"headers"`
	ClientIP string              `json:"client_ip"`
	Time     time.Time           `json:"time"`
}

// Resource is what the adapter says the request accesses.
type Resource struct {
	System   string   `json:"system"`
	Type     string   `json:"type"`
	Action   string   `json:"action"`
	ID       *string  `json:"id"`
	PageSize int      `json:"page_size"`
	Fields   []string `json:"fields"`
	Export   bool     `json:"export"`
}

// Decision is data.veil.decision, typed. The zero value denies.
type Decision struct {
	Allow  bool   `json:"allow"`
	Status int    `json:"status"` // HTTP status of a deny; 0 means 403
	Reason string `json:"reason"`
	// Fields maps field names or record-relative paths to actions: "keep", "mask",
	// "mask:phone", "redact", "hash", "drop", "null", "deny".
	Fields map[string]string `json:"fields"`
	Rows   []Row             `json:"rows"`
	Detect []string          `json:"detect"`
	Limits []Limit           `json:"limits"`
	// MaxPageSize caps the page size the adapter reports; 0 means no cap.
	MaxPageSize int `json:"max_page_size"`
	// Mode is "enforce" (default) or "monitor" (compute, audit and trace, but do not rewrite).
	Mode string `json:"mode"`
	// Revision is the revision of the policy that made the decision (Engine.Revision at
	// evaluation time), for the audit record and the decision cache key.
	Revision string `json:"-"`
}

// Row is a row predicate: {"field": "owner_id", "op": "eq", "value": "alice"}.
type Row struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	Value any    `json:"value"`
}

// Limit is one export budget: Records (and optionally Requests) per Window for Key.
type Limit struct {
	Name     string        `json:"name"`
	Key      string        `json:"key"`
	Window   time.Duration `json:"-"` // parsed from the decision's "window": "1h"
	Records  int64         `json:"records"`
	Requests int64         `json:"requests"`
}

// Modes of a decision.
const (
	ModeEnforce = "enforce"
	ModeMonitor = "monitor"
)
