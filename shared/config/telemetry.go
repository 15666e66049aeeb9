package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Telemetry configures OpenTelemetry tracing (shared/telemetry). It reads the
// standard OTEL_* variables, and only here: shared/telemetry hands every value
// to the SDK and the OTLP exporter as explicit options, which take precedence
// over what those libraries would read from the environment themselves.
//
// With no endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none,
// tracing is off: no exporter is built and nothing connects anywhere.
type Telemetry struct {
	// Endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, default none): the collector's
	// base URL, e.g. http://otel-collector:4318; /v1/traces is appended.
	Endpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// TracesEndpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, default none): the
	// full traces URL, used as is; wins over Endpoint.
	TracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	// Protocol (OTEL_EXPORTER_OTLP_PROTOCOL, or the _TRACES_ variant, default
	// http/protobuf): the only protocol supported; grpc is refused (see
	// docs/api.md#tracing).
	Protocol       string `env:"OTEL_EXPORTER_OTLP_PROTOCOL"`
	TracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`
	// Headers (OTEL_EXPORTER_OTLP_HEADERS, or the _TRACES_ variant, default
	// none): "k1=v1,k2=v2", values URL-encoded, sent with every export. They
	// often carry a vendor's API key: never logged, never in an error.
	Headers       string `env:"OTEL_EXPORTER_OTLP_HEADERS"`
	TracesHeaders string `env:"OTEL_EXPORTER_OTLP_TRACES_HEADERS"`
	// Certificate (OTEL_EXPORTER_OTLP_CERTIFICATE, or the _TRACES_ variant,
	// default none = system roots): PEM file of the CA that signs an https
	// collector's certificate.
	Certificate       string `env:"OTEL_EXPORTER_OTLP_CERTIFICATE"`
	TracesCertificate string `env:"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"`
	// Compression (OTEL_EXPORTER_OTLP_COMPRESSION, default none): none or gzip.
	Compression string `env:"OTEL_EXPORTER_OTLP_COMPRESSION"`
	// TimeoutMs (OTEL_EXPORTER_OTLP_TIMEOUT, default 10000): per export.
	TimeoutMs int64 `env:"OTEL_EXPORTER_OTLP_TIMEOUT"`
	// BatchDelayMs (OTEL_BSP_SCHEDULE_DELAY, default 5000): the longest a
	// finished span waits in the batch processor before it is exported.
	BatchDelayMs int64 `env:"OTEL_BSP_SCHEDULE_DELAY"`
	// Exporter (OTEL_TRACES_EXPORTER, default otlp): otlp or none.
	Exporter string `env:"OTEL_TRACES_EXPORTER"`
	// ServiceName (OTEL_SERVICE_NAME, default yggdrasil-<service>): the
	// service.name resource attribute.
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// ResourceAttributes (OTEL_RESOURCE_ATTRIBUTES, default none): extra
	// resource attributes, "k1=v1,k2=v2" (e.g. deployment.environment.name=prod).
	ResourceAttributes string `env:"OTEL_RESOURCE_ATTRIBUTES"`
	// Sampler (OTEL_TRACES_SAMPLER, default parentbased_traceidratio):
	// always_on, always_off, traceidratio, parentbased_always_on,
	// parentbased_always_off or parentbased_traceidratio.
	Sampler string `env:"OTEL_TRACES_SAMPLER"`
	// SamplerArg (OTEL_TRACES_SAMPLER_ARG, default 1.0): the ratio of the
	// *traceidratio samplers, 0..1.
	SamplerArg string `env:"OTEL_TRACES_SAMPLER_ARG"`
	// Disabled (OTEL_SDK_DISABLED, default false): true turns tracing off.
	Disabled bool `env:"OTEL_SDK_DISABLED"`
}

// Samplers accepted in OTEL_TRACES_SAMPLER.
const (
	SamplerAlwaysOn              = "always_on"
	SamplerAlwaysOff             = "always_off"
	SamplerTraceIDRatio          = "traceidratio"
	SamplerParentAlwaysOn        = "parentbased_always_on"
	SamplerParentAlwaysOff       = "parentbased_always_off"
	SamplerParentTraceIDRatio    = "parentbased_traceidratio"
	defaultTelemetrySamplerRatio = 1.0
)

// DefaultTelemetry returns the tracing defaults of a service named
// serviceName (yggdrasil-api, yggdrasil-sweeper, yggdrasil-hooks).
func DefaultTelemetry(serviceName string) Telemetry {
	return Telemetry{
		Protocol: "http/protobuf", Compression: "none", TimeoutMs: 10000, BatchDelayMs: 5000, Exporter: "otlp",
		ServiceName: serviceName, Sampler: SamplerParentTraceIDRatio,
	}
}

// LoadTelemetry reads the tracing configuration from environ over the
// defaults of serviceName and validates it, reporting every problem at once.
func LoadTelemetry(environ map[string]string, serviceName string) (Telemetry, error) {
	cfg := DefaultTelemetry(serviceName)
	if err := errors.Join(parse(&cfg, environ), cfg.Validate()); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Enabled reports whether traces are exported.
func (c Telemetry) Enabled() bool {
	return !c.Disabled && !strings.EqualFold(c.Exporter, "none") && c.TracesURL() != ""
}

// TracesURL is the URL spans are POSTed to ("" when none is configured).
func (c Telemetry) TracesURL() string {
	if c.TracesEndpoint != "" {
		return c.TracesEndpoint
	}
	if c.Endpoint == "" {
		return ""
	}
	return strings.TrimRight(c.Endpoint, "/") + "/v1/traces"
}

// ExportHeaders returns the headers sent with every export (the _TRACES_
// variable wins per key).
func (c Telemetry) ExportHeaders() map[string]string {
	out := map[string]string{}
	for _, s := range []string{c.Headers, c.TracesHeaders} {
		h, _ := parseKeyValues(s)
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// CAFile is the PEM file of the collector's CA ("" for the system roots).
func (c Telemetry) CAFile() string {
	if c.TracesCertificate != "" {
		return c.TracesCertificate
	}
	return c.Certificate
}

// Ratio is the sampling ratio of the *traceidratio samplers.
func (c Telemetry) Ratio() float64 {
	if c.SamplerArg == "" {
		return defaultTelemetrySamplerRatio
	}
	r, err := strconv.ParseFloat(c.SamplerArg, 64)
	if err != nil {
		return defaultTelemetrySamplerRatio
	}
	return r
}

// Resource returns the extra resource attributes of OTEL_RESOURCE_ATTRIBUTES.
func (c Telemetry) Resource() map[string]string {
	m, _ := parseKeyValues(c.ResourceAttributes)
	return m
}

func (c Telemetry) protocol() string {
	if c.TracesProtocol != "" {
		return c.TracesProtocol
	}
	return c.Protocol
}

// Validate reports every invalid value at once. It never quotes a header
// value: they may be credentials.
func (c Telemetry) Validate() error {
	var errs []error
	for name, u := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.Endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.TracesEndpoint} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: not an http(s) URL", name))
		} else if p.User != nil {
			errs = append(errs, fmt.Errorf("%s: credentials in the URL are not supported; use OTEL_EXPORTER_OTLP_HEADERS", name))
		}
	}
	switch p := c.protocol(); p {
	case "http/protobuf":
	case "grpc", "http/json":
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported; use http/protobuf (the collector's port 4318)", p))
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not http/protobuf", p))
	}
	for name, s := range map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": c.Headers, "OTEL_EXPORTER_OTLP_TRACES_HEADERS": c.TracesHeaders} {
		if _, err := parseKeyValues(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if _, err := parseKeyValues(c.ResourceAttributes); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err))
	}
	switch strings.ToLower(c.Compression) {
	case "none", "gzip":
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION: %q is not none or gzip", c.Compression))
	}
	if c.TimeoutMs < 1 {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT: %d is below 1 ms", c.TimeoutMs))
	}
	if c.BatchDelayMs < 1 {
		errs = append(errs, fmt.Errorf("OTEL_BSP_SCHEDULE_DELAY: %d is below 1 ms", c.BatchDelayMs))
	}
	switch strings.ToLower(c.Exporter) {
	case "otlp", "none":
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not otlp or none", c.Exporter))
	}
	switch c.Sampler {
	case SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio, SamplerParentAlwaysOn, SamplerParentAlwaysOff, SamplerParentTraceIDRatio:
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off, parentbased_traceidratio", c.Sampler))
	}
	if c.SamplerArg != "" {
		if r, err := strconv.ParseFloat(c.SamplerArg, 64); err != nil || r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio within 0..1", c.SamplerArg))
		}
	}
	return errors.Join(errs...)
}

// parseKeyValues reads the W3C-baggage-like "k1=v1,k2=v2" lists of the OTEL_*
// variables; values are URL-decoded. Errors never quote a value.
func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("item #%d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("item #%d (%s): the value is not URL-encoded", i+1, k)
		}
		out[k] = dv
	}
	return out, nil
}
