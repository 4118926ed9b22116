package proxy_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/veilproxy/veil/proxy"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/telemetry"
)

// fixedPolicy decides the same for every request.
type fixedPolicy struct{ d policy.Decision }

func (f fixedPolicy) Decide(context.Context, policy.Input) (policy.Decision, error) { return f.d, nil }
func (f fixedPolicy) Revision() string                                              { return "fixed" }

func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func TestSpansCarryTheDecision(t *testing.T) {
	tests := []struct {
		name     string
		policy   proxy.Decider
		upstream http.Handler
		target   string
		roles    string
		status   int
		decision string
		records  string
	}{
		{name: "allowed", target: "/api/customers?pageSize=3", roles: "cs_agent", status: 200, decision: "allow", records: "3"},
		{name: "denied", target: "/api/customers", roles: "contractor", status: 403, decision: "deny", records: "0"},
		{name: "limited", target: "/api/customers?pageSize=3", roles: "cs_agent", status: 429, decision: "limited", records: "0",
			policy: fixedPolicy{policy.Decision{Allow: true, Limits: []policy.Limit{{Name: "zero", Key: "user:u", Window: time.Hour, Records: 0}}}}},
		{name: "errored", target: "/api/customers", roles: "cs_agent", status: 502, decision: "error", records: "0",
			upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"data":[{"mobile":"13812345678"},]}`))
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			o := rigOptions{Tracer: tp, Upstream: tt.upstream}
			if tt.policy != nil {
				o.Policy = tt.policy
			}
			r := newRig(t, o)
			resp, body := r.do("GET", tt.target, "u", tt.roles, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			// The request span ends after the client has the whole body: wait for it.
			var root sdktrace.ReadOnlySpan
			names := map[string]bool{}
			for deadline := time.Now().Add(5 * time.Second); root == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				for _, s := range rec.Ended() {
					names[s.Name()] = true
					if s.Name() == "veil.request" {
						root = s
					}
				}
			}
			if root == nil {
				t.Fatalf("no veil.request span; spans: %v", names)
			}
			a := spanAttrs(root)
			for k, want := range map[string]string{
				"veil.user": "u", "veil.route": "livecrm", "veil.decision": tt.decision, "veil.records": tt.records,
				"http.request.method": "GET", "http.response.status_code": strconv.Itoa(tt.status),
			} {
				if a[k] != want {
					t.Errorf("%s = %q, want %q", k, a[k], want)
				}
			}
			for _, k := range []string{"veil.policy_revision", "veil.resource", "veil.action", "veil.fields_masked"} {
				if _, ok := a[k]; !ok {
					t.Errorf("attribute %s missing", k)
				}
			}
			for _, child := range []string{"veil.identity", "veil.policy"} {
				if !names[child] {
					t.Errorf("child span %s missing; spans: %v", child, names)
				}
			}
			if tt.decision == "allow" && (!names["veil.limit"] || !names["veil.rewrite"]) {
				t.Errorf("allowed request lacks limit/rewrite spans: %v", names)
			}
		})
	}
}

func TestTraceContextPropagatesUpstream(t *testing.T) {
	got := make(chan string, 1)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Traceparent")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":[]}`))
	})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	r := newRig(t, rigOptions{Tracer: tp, Upstream: up})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := r.do("GET", "/api/customers", "u", "cs_agent", nil, "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tp1 := <-got
	if !strings.HasPrefix(tp1, "00-"+traceID+"-") || strings.Contains(tp1, "00f067aa0ba902b7") {
		t.Fatalf("upstream traceparent = %q, want trace %s with Veil's own span id", tp1, traceID)
	}
}

func TestKeepProcessorAlwaysKeepsDenials(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(telemetry.NewKeepProcessor(sdktrace.NewSimpleSpanProcessor(exp), 0, 0)))
	r := newRig(t, rigOptions{Tracer: tp})
	for range 5 {
		r.do("GET", "/api/customers?pageSize=1", "u", "cs_agent", nil) // allowed: ratio 0 drops them
	}
	r.do("GET", "/api/customers", "u", "contractor", nil) // denied: always kept
	for deadline := time.Now().Add(5 * time.Second); len(exp.GetSpans()) < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let any wrongly kept allowed trace arrive too
	roots := 0
	for _, s := range exp.GetSpans() {
		if s.Name == "veil.request" {
			roots++
			for _, kv := range s.Attributes {
				if kv.Key == "veil.decision" && kv.Value.AsString() != "deny" {
					t.Errorf("exported a %s trace at ratio 0", kv.Value.AsString())
				}
			}
		}
	}
	if roots != 1 {
		t.Fatalf("exported %d request traces, want only the denied one", roots)
	}
	if n := len(exp.GetSpans()); n < 3 {
		t.Errorf("denied trace exported %d spans, want its children too", n)
	}
}
