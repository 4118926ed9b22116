package main

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/telemetry"
)

// newTracerProvider builds the configured exporter; the returned function flushes and stops it.
func newTracerProvider(ctx context.Context, c config.TracingConfig, o *buildOptions) (trace.TracerProvider, func(context.Context) error, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch c.Exporter {
	case "none", "":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case "file":
		f, ferr := os.OpenFile(o.path(c.Path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if ferr != nil {
			return nil, nil, ferr
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(f))
	case "otlp":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.Endpoint)}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case "otlp-http":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(c.Endpoint)}
		if c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, nil, fmt.Errorf("unknown exporter %q", c.Exporter)
	}
	if err != nil {
		return nil, nil, err
	}
	ratio := 1.0
	if c.SampleRatio != nil {
		ratio = *c.SampleRatio
	}
	res := resource.NewSchemaless(semconv.ServiceName("veil"), semconv.ServiceVersion(version))
	// Every request is recorded; the keep processor exports a ratio of allowed requests and
	// all denied, limited and failed ones once the request's decision is known.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(telemetry.NewKeepProcessor(sdktrace.NewBatchSpanProcessor(exp), ratio, 0)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	return tp, tp.Shutdown, nil
}
