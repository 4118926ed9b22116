// Package adapters holds what every upstream adapter shares: the request it reads, the
// Description of what that request accesses, and the Adapter interface.
package adapters

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/veilproxy/veil/proxy/mask"
)

// Actions a request can perform on a resource.
const (
	ActionList   = "list"
	ActionRead   = "read"
	ActionExport = "export"
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
	ActionOther  = "other"
)

// Request is the normalized view of a client request that an adapter reads. The proxy builds it
// once, after path normalization, so adapters, policy and the upstream see the same request.
type Request struct {
	Method string      // effective method; HEAD is presented as GET
	Path   string      // normalized path, no query
	Query  url.Values  // decoded query parameters
	Header http.Header // request headers (identity and credential headers already removed)
	Body   []byte      // request body, read in full (bounded) before forwarding; nil when empty
}

// Description says what a request accesses. It becomes input.resource in the policy input.
type Description struct {
	System   string   // adapter name: "generic", "salesforce", ...
	Type     string   // resource type, e.g. "customers"; "" when no resource matched
	Action   string   // one of the Action constants
	ID       string   // record id for read/update/delete, "" otherwise
	PageSize int      // records the request asks for, 0 when unknown
	Fields   []string // fields the request names (e.g. a SOQL select list), nil when unknown
	Export   bool     // the request is a bulk export

	// PageSizeParam is the query parameter that carries PageSize, so the proxy can cap it
	// when a policy asks; "" when the page size cannot be rewritten.
	PageSizeParam string

	// State is the adapter's own note from Describe to Layout (e.g. which configured resource
	// matched); the proxy carries it and never reads it.
	State any
}

// Adapter knows one upstream API. It never serves HTTP and never evaluates policy.
type Adapter interface {
	// Describe says what req accesses. An error means the request cannot be understood and
	// is refused (400).
	Describe(req *Request) (Description, error)
	// Layout says where the records are in the response to a described request and how its
	// fields are named.
	Layout(d Description, status int, header http.Header) mask.Layout
}

// Learner is an Adapter that learns from responses: after a successful response whose
// layout named a Capture, the proxy calls Learn with the request's description and the
// captured string (the upstream's text, before masking). Learn must be safe for concurrent
// use and cheap; what it learns may only refine later descriptions (Salesforce learns which
// object a query locator pages through).
type Learner interface {
	Learn(d Description, captured string)
}

// Param returns the single value of a query parameter the adapter reads. A parameter given more
// than once is an error: the upstream and the policy could each take a different copy
// (parameter pollution). So is the parameter under another case ("PageSize" for "pageSize"):
// upstreams that read parameter names case-insensitively (ASP.NET, many PHP and Java apps)
// take it for the same one.
func (r *Request) Param(name string) (string, error) {
	vs := r.Query[name]
	for k := range r.Query {
		if k != name && strings.EqualFold(k, name) {
			return "", &Error{Reason: "query parameter " + name + " given more than once"}
		}
	}
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", &Error{Reason: "query parameter " + name + " given more than once"}
	}
}

// Error is a request an adapter cannot describe; Reason is safe to show the client.
type Error struct{ Reason string }

func (e *Error) Error() string { return "adapter: " + e.Reason }
