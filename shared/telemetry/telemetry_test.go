package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

func TestOffBuildsNothing(t *testing.T) {
	for name, environ := range map[string]map[string]string{
		"no endpoint":   {},
		"sdk disabled":  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
		"exporter none": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.LoadTelemetry(environ, "yggdrasil-test")
			if err != nil {
				t.Fatal(err)
			}
			tel, err := telemetry.Setup(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tel.Enabled() {
				t.Fatal("enabled")
			}
			_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
			if span.IsRecording() {
				t.Fatal("a span records with tracing off")
			}
			tel.Install(logging.Discard())
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestExportUsesConfigOnly: spans go to the endpoint and with the headers
// shared/config read, even when the exporter's own variables say otherwise
// in the process environment.
func TestExportUsesConfigOnly(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/v1/traces" {
			got = append(got, r.Header.Clone())
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/from-env")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-from-env=1")

	cfg, err := config.LoadTelemetry(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%20def",
		"OTEL_TRACES_SAMPLER": "always_on",
	}, "yggdrasil-test")
	if err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "exported")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("collector got %d exports on /v1/traces, want 1", len(got))
	}
	if h := got[0]; h.Get("X-Api-Key") != "abc def" || h.Get("X-From-Env") != "" {
		t.Errorf("export headers %v: want config's x-api-key only", h)
	}
}
