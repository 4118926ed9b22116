package proxy

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. docs/operations.md lists them.
type Metrics struct {
	Requests        *prometheus.CounterVec   // veil_requests_total{route,decision}
	RequestSeconds  *prometheus.HistogramVec // veil_request_duration_seconds{route,decision}
	PolicySeconds   prometheus.Histogram     // veil_policy_eval_seconds
	UpstreamSeconds *prometheus.HistogramVec // veil_upstream_seconds{route}
	RewriteSeconds  *prometheus.HistogramVec // veil_rewrite_seconds{route}
	Records         *prometheus.CounterVec   // veil_records_total{route,resource,action}
	UserRecords     *prometheus.CounterVec   // veil_user_records_total{user,resource}; nil when per-user metrics are off
	FieldsMasked    *prometheus.CounterVec   // veil_fields_masked_total{field}
	Detections      *prometheus.CounterVec   // veil_detections_total{detector}
	LimitRejections *prometheus.CounterVec   // veil_limit_rejections_total{limit}
	StoreErrors     prometheus.Counter       // veil_limit_store_errors_total
	FailOpen        *prometheus.CounterVec   // veil_limit_fail_open_total{route}
	AuditErrors     prometheus.Counter       // veil_audit_errors_total
	PolicyReloads   *prometheus.CounterVec   // veil_policy_reloads_total{result}
	StreamAborts    *prometheus.CounterVec   // veil_stream_aborts_total{route}
}

// NewMetrics registers the proxy's metrics with reg. perUser adds the per-user record counter,
// whose cardinality grows with the number of staff (docs/operations.md).
func NewMetrics(reg prometheus.Registerer, version string, perUser bool) *Metrics {
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_requests_total", Help: "Requests by route and decision (allow, deny, limited, error).",
		}, []string{"route", "decision"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_request_duration_seconds", Help: "Time from request to the end of the response.", Buckets: latency,
		}, []string{"route", "decision"}),
		PolicySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "veil_policy_eval_seconds", Help: "Time to evaluate data.veil.decision.", Buckets: latency,
		}),
		UpstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_upstream_seconds", Help: "Time until the upstream's response headers arrived.", Buckets: latency,
		}, []string{"route"}),
		RewriteSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_rewrite_seconds", Help: "Time to decode, mask and encode a response body.", Buckets: latency,
		}, []string{"route"}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_records_total", Help: "Records returned to clients.",
		}, []string{"route", "resource", "action"}),
		FieldsMasked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_fields_masked_total", Help: "Field values masked, hashed, dropped, nulled or redacted, by rule name.",
		}, []string{"field"}),
		Detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_detections_total", Help: "Sensitive values found and masked in free text, by detector.",
		}, []string{"detector"}),
		LimitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_limit_rejections_total", Help: "Requests refused with 429 because a budget was spent.",
		}, []string{"limit"}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_limit_store_errors_total", Help: "Budget store (Redis) errors.",
		}),
		FailOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_limit_fail_open_total", Help: "Requests let through without a budget check because the store failed and on_store_error is allow.",
		}, []string{"route"}),
		AuditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_audit_errors_total", Help: "Audit records that could not be written.",
		}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_policy_reloads_total", Help: "Policy loads by result (success, error).",
		}, []string{"result"}),
		StreamAborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_stream_aborts_total", Help: "Streamed responses cut off because the body turned out bad after the first bytes were sent.",
		}, []string{"route"}),
	}
	cs := []prometheus.Collector{m.Requests, m.RequestSeconds, m.PolicySeconds, m.UpstreamSeconds, m.RewriteSeconds,
		m.Records, m.FieldsMasked, m.Detections, m.LimitRejections, m.StoreErrors, m.FailOpen, m.AuditErrors, m.PolicyReloads, m.StreamAborts}
	if perUser {
		m.UserRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_user_records_total", Help: "Records returned, per user and resource.",
		}, []string{"user", "resource"})
		cs = append(cs, m.UserRecords)
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "veil_build_info", Help: "Veil's version and Go version; always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	cs = append(cs, build)
	for _, c := range cs {
		reg.MustRegister(c)
	}
	return m
}
