// Package telemetry sets up OpenTelemetry tracing for a Yggdrasil process:
// one TracerProvider exporting over OTLP http/protobuf, the W3C trace-context
// and baggage propagators, and the helpers the services share (attribute
// keys, the trace id for log lines, Redis command spans).
//
// With tracing off (no endpoint, OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none)
// Setup builds nothing and connects nowhere: the process keeps OpenTelemetry's
// no-op API.
//
// It must never read the environment (shared/config does and hands the values
// over as explicit options, which win over what the SDK and the exporter
// would read themselves), and never put a secret in a span: no header, no
// token, no key, no request body, no Redis argument.
package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

// Telemetry is the tracing of one process. The zero value and nil are off.
type Telemetry struct {
	tp  *sdktrace.TracerProvider // nil when off
	cfg config.Telemetry
}

// Propagator is what every service extracts and injects: W3C traceparent /
// tracestate and W3C baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup builds the TracerProvider cfg describes, or nothing when tracing is
// off. It does not connect: the exporter dials on its first export.
func Setup(ctx context.Context, cfg config.Telemetry) (*Telemetry, error) {
	if !cfg.Enabled() {
		return &Telemetry{cfg: cfg}, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := cfg.CAFile(); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("telemetry: OTEL_EXPORTER_OTLP_CERTIFICATE: no PEM certificate in the file")
		}
		tlsCfg.RootCAs = pool
	}
	compression := otlptracehttp.NoCompression
	if cfg.Compression == "gzip" {
		compression = otlptracehttp.GzipCompression
	}
	// Every option the exporter would otherwise take from OTEL_EXPORTER_OTLP_*
	// is passed explicitly (explicit options win), so the values in force are
	// the ones shared/config read and validated.
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(cfg.TracesURL()),
		otlptracehttp.WithHeaders(cfg.ExportHeaders()),
		otlptracehttp.WithCompression(compression),
		otlptracehttp.WithTimeout(time.Duration(cfg.TimeoutMs) * time.Millisecond),
	}
	if strings.HasPrefix(cfg.TracesURL(), "https://") {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(Sampler(cfg)),
		sdktrace.WithRawSpanLimits(spanLimits()),
		sdktrace.WithBatcher(exp,
			sdktrace.WithMaxQueueSize(sdktrace.DefaultMaxQueueSize),
			sdktrace.WithMaxExportBatchSize(sdktrace.DefaultMaxExportBatchSize),
			sdktrace.WithBatchTimeout(time.Duration(cfg.BatchDelayMs)*time.Millisecond),
			sdktrace.WithExportTimeout(time.Duration(cfg.TimeoutMs)*time.Millisecond),
		),
	)
	return &Telemetry{tp: tp, cfg: cfg}, nil
}

// spanLimits are the SDK defaults, set explicitly so that OTEL_SPAN_* and
// OTEL_ATTRIBUTE_* are not read behind shared/config's back; string values
// are capped, which the default does not do.
func spanLimits() sdktrace.SpanLimits {
	return sdktrace.SpanLimits{
		AttributeValueLengthLimit:   1024,
		AttributeValueDepthLimit:    sdktrace.DefaultAttributeValueDepthLimit,
		AttributeCountLimit:         sdktrace.DefaultAttributeCountLimit,
		EventCountLimit:             sdktrace.DefaultEventCountLimit,
		LinkCountLimit:              sdktrace.DefaultLinkCountLimit,
		AttributePerEventCountLimit: sdktrace.DefaultAttributePerEventCountLimit,
		AttributePerLinkCountLimit:  sdktrace.DefaultAttributePerLinkCountLimit,
	}
}

// Sampler is the sampler cfg names.
func Sampler(cfg config.Telemetry) sdktrace.Sampler {
	switch cfg.Sampler {
	case config.SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case config.SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case config.SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(cfg.Ratio())
	case config.SamplerParentAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case config.SamplerParentAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))
}

// newResource describes the process without resource.Default, which would
// read OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME itself.
func newResource(ctx context.Context, cfg config.Telemetry) (*resource.Resource, error) {
	extra := cfg.Resource()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]attribute.KeyValue, 0, len(keys)+1)
	for _, k := range keys {
		attrs = append(attrs, attribute.String(k, extra[k]))
	}
	attrs = append(attrs, semconv.ServiceName(cfg.ServiceName)) // after: OTEL_SERVICE_NAME wins, as the spec says
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL), resource.WithTelemetrySDK(),
		resource.WithHost(), resource.WithAttributes(attrs...))
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil // a partial resource (a detector failed) is still worth exporting
}

// Enabled reports whether spans are exported.
func (t *Telemetry) Enabled() bool { return t != nil && t.tp != nil }

// TracerProvider is the provider to instrument with: the SDK's, or a no-op
// one when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.tp
}

// Install makes t the process's global provider and propagator, and routes
// the SDK's errors (a collector that does not answer) to log. Only a
// process's main calls it; with tracing off it changes nothing.
func (t *Telemetry) Install(log *slog.Logger) {
	if !t.Enabled() {
		return
	}
	otel.SetTracerProvider(t.tp)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: span export failed", "err", err)
	}))
	log.Info("tracing on", "endpoint", redactedEndpoint(t.cfg.TracesURL()), "service", t.cfg.ServiceName,
		"sampler", t.cfg.Sampler, "ratio", t.cfg.Ratio())
}

// Shutdown flushes the spans still queued and stops the exporter, within
// ctx. Nil-safe and a no-op when tracing is off.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
