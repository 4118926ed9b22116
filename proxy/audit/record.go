// Package audit writes the tamper-evident audit log: one JSON line per request, chained by
// SHA-256 hashes, batched and fsynced, and reads it back to verify and to answer "who read what".
package audit

import "time"

// Record is one audit line. Field order is the order of DESIGN.md's contract.
type Record struct {
	Time           time.Time         `json:"time"`
	RequestID      string            `json:"request_id"`
	TraceID        string            `json:"trace_id,omitempty"`
	User           string            `json:"user"`
	Roles          []string          `json:"roles"`
	ClientIP       string            `json:"client_ip"`
	Route          string            `json:"route"`
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	Query          string            `json:"query,omitempty"`
	System         string            `json:"system"`
	Resource       string            `json:"resource"`
	Action         string            `json:"action"`
	Export         bool              `json:"export"`
	Decision       string            `json:"decision"` // allow | deny | limited | error
	Reason         string            `json:"reason,omitempty"`
	Status         int               `json:"status"`
	Records        int               `json:"records"`
	IDs            []string          `json:"ids,omitempty"`             // ids of the records returned, bounded
	IDsCut         bool              `json:"ids_cut,omitempty"`         // more ids were returned than listed
	Fields         map[string]int    `json:"fields,omitempty"`          // field name -> values masked
	UpstreamFailed bool              `json:"upstream_failed,omitempty"` // HTTP 2xx whose body reports a failure (adapter's status marker); counts no records
	Limits         map[string]int64  `json:"limits,omitempty"`          // budget name -> records remaining
	PolicyRevision string            `json:"policy_revision"`
	Mode           string            `json:"mode,omitempty"`
	BytesIn        int64             `json:"bytes_in"`
	BytesOut       int64             `json:"bytes_out"`
	DurationMS     float64           `json:"duration_ms"`
	Extra          map[string]string `json:"extra,omitempty"` // event-specific detail (admin actions)
	Prev           string            `json:"prev"`
	Hash           string            `json:"hash"`
}

// Decisions recorded in Record.Decision.
const (
	DecisionAllow   = "allow"
	DecisionDeny    = "deny"
	DecisionLimited = "limited"
	DecisionError   = "error"
)
