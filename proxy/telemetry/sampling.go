// Package telemetry decides which request traces Veil exports: a ratio of allowed requests and
// every denied, limited or failed one.
package telemetry

import (
	"context"
	"encoding/binary"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DecisionKey is the span attribute holding the request's audit decision.
const DecisionKey = attribute.Key("veil.decision")

// KeepProcessor holds a request's spans until its local root span ends, then passes the whole
// trace to next when the root's decision is not "allow", or when the trace ID falls within
// ratio; otherwise it drops them. Head sampling cannot do this: the decision is known only at
// the end of the request. Use it with the AlwaysSample sampler.
type KeepProcessor struct {
	next      sdktrace.SpanProcessor
	threshold uint64
	maxTraces int

	mu      sync.Mutex
	pending map[trace.TraceID][]sdktrace.ReadOnlySpan
	order   []trace.TraceID
}

// NewKeepProcessor wraps next. ratio is the share of allowed requests kept (0..1). At most
// maxTraces unfinished traces are held; beyond that the oldest is passed on unfiltered
// (0 means 10000).
func NewKeepProcessor(next sdktrace.SpanProcessor, ratio float64, maxTraces int) *KeepProcessor {
	if maxTraces <= 0 {
		maxTraces = 10000
	}
	var threshold uint64
	switch {
	case ratio >= 1:
		threshold = ^uint64(0)
	case ratio > 0:
		threshold = uint64(ratio * (1 << 63) * 2)
	}
	return &KeepProcessor{next: next, threshold: threshold, maxTraces: maxTraces, pending: map[trace.TraceID][]sdktrace.ReadOnlySpan{}}
}

// OnStart implements sdktrace.SpanProcessor.
func (p *KeepProcessor) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	p.next.OnStart(ctx, s)
}

// OnEnd implements sdktrace.SpanProcessor.
func (p *KeepProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	tid := s.SpanContext().TraceID()
	localRoot := !s.Parent().IsValid() || s.Parent().IsRemote()
	p.mu.Lock()
	if !localRoot {
		if _, ok := p.pending[tid]; !ok {
			p.order = append(p.order, tid)
		}
		p.pending[tid] = append(p.pending[tid], s)
		var evicted []sdktrace.ReadOnlySpan
		if len(p.pending) > p.maxTraces {
			evicted = p.evictOldest()
		}
		p.mu.Unlock()
		for _, e := range evicted {
			p.next.OnEnd(e)
		}
		return
	}
	children := p.pending[tid]
	delete(p.pending, tid)
	if len(p.order) > 2*len(p.pending)+1024 {
		p.compact()
	}
	p.mu.Unlock()
	if !p.keep(s) {
		return
	}
	for _, c := range children {
		p.next.OnEnd(c)
	}
	p.next.OnEnd(s)
}

func (p *KeepProcessor) evictOldest() []sdktrace.ReadOnlySpan {
	for len(p.order) > 0 {
		tid := p.order[0]
		p.order = p.order[1:]
		if spans, ok := p.pending[tid]; ok {
			delete(p.pending, tid)
			return spans
		}
	}
	return nil
}

// compact drops finished traces from the eviction order.
func (p *KeepProcessor) compact() {
	live := p.order[:0]
	for _, tid := range p.order {
		if _, ok := p.pending[tid]; ok {
			live = append(live, tid)
		}
	}
	p.order = live
}

func (p *KeepProcessor) keep(s sdktrace.ReadOnlySpan) bool {
	for _, kv := range s.Attributes() {
		if kv.Key == DecisionKey && kv.Value.AsString() != "allow" {
			return true
		}
	}
	tid := s.SpanContext().TraceID()
	return binary.BigEndian.Uint64(tid[8:]) < p.threshold || p.threshold == ^uint64(0)
}

// Shutdown implements sdktrace.SpanProcessor.
func (p *KeepProcessor) Shutdown(ctx context.Context) error { return p.next.Shutdown(ctx) }

// ForceFlush implements sdktrace.SpanProcessor.
func (p *KeepProcessor) ForceFlush(ctx context.Context) error { return p.next.ForceFlush(ctx) }
