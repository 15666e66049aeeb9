package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTelemetryConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ map[string]string
		enabled bool
		url     string
		ratio   float64
		errs    []string
	}{
		{name: "default is off", environ: map[string]string{}, ratio: 1},
		{name: "base endpoint", environ: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, enabled: true,
			url: "http://c:4318/v1/traces", ratio: 1},
		{name: "traces endpoint wins", environ: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:443/custom", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, enabled: true,
			url: "https://t:443/custom", ratio: 0.25},
		{name: "disabled", environ: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
			url: "http://c:4318/v1/traces", ratio: 1},
		{name: "every problem at once", environ: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "sometimes",
			"OTEL_TRACES_SAMPLER_ARG": "2", "OTEL_EXPORTER_OTLP_HEADERS": "api-key", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
		}, enabled: true, url: "c:4318/v1/traces", ratio: 2, errs: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
			"OTEL_TRACES_SAMPLER:", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadTelemetry(tc.environ, "yggdrasil-api")
			for _, e := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), e) {
					t.Errorf("error %v does not name %s", err, e)
				}
			}
			if len(tc.errs) == 0 && err != nil {
				t.Fatal(err)
			}
			got := []any{cfg.Enabled(), cfg.TracesURL(), cfg.Ratio(), cfg.ServiceName}
			want := []any{tc.enabled, tc.url, tc.ratio, "yggdrasil-api"}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestTelemetryHeadersStayOutOfErrors(t *testing.T) {
	cfg, err := LoadTelemetry(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
		"OTEL_EXPORTER_OTLP_HEADERS":  "authorization=Bearer%20s3cr3t,x-bad=%zz-s3cr3t",
	}, "x")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v: want one that does not quote the value", err)
	}
	cfg.Headers = "authorization=Bearer%20s3cr3t"
	cfg.TracesHeaders = "x-tenant=blue"
	if d := cmp.Diff(map[string]string{"authorization": "Bearer s3cr3t", "x-tenant": "blue"}, cfg.ExportHeaders()); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}
