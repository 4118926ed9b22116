package proxy

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/veilproxy/veil/proxy/identity"
	"github.com/veilproxy/veil/proxy/policy"
)

// Explanation is what the proxy would decide for a request: the route, what the adapter says it
// accesses, the policy input and the decision.
type Explanation struct {
	Route    string
	Resource policy.Resource
	Input    policy.Input
	Decision policy.Decision
	Revision string
}

// Explain runs the request path up to the decision — routing, normalization, the adapter and
// one policy evaluation — for user u, without identity checks, budgets or the upstream. It is
// `veil explain` and shares every step with ServeHTTP.
func Explain(ctx context.Context, routes []Route, dec Decider, r *http.Request, u identity.User) (Explanation, error) {
	h := &Handler{d: Deps{Routes: routes, Policy: dec, Limits: Limits{MaxRequestBody: 10 << 20}}, tracer: noop.NewTracerProvider().Tracer("")}
	ex := &exchange{h: h, in: r, start: time.Now(), user: u}
	if err := ex.parse(); err != nil {
		return Explanation{}, err
	}
	if err := ex.readBody(); err != nil {
		return Explanation{}, err
	}
	if err := ex.describe(); err != nil {
		return Explanation{}, err
	}
	in := ex.input()
	d, err := dec.Decide(ctx, in)
	if err != nil {
		return Explanation{}, err
	}
	return Explanation{Route: ex.route.Name, Resource: in.Resource, Input: in, Decision: d, Revision: dec.Revision()}, nil
}
