package delivery_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/delivery"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestDeliveryLatencyExemplar: a traced delivery attempt leaves its trace id
// as the exemplar of its delivery_duration_seconds bucket in an OpenMetrics
// scrape; the buckets end at the hook timeout.
func TestDeliveryLatencyExemplar(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	m := metrics.New("ex_", 3*time.Second)
	h := delivery.NewHandler(&delivery.Signer{}, 3*time.Second, 1, m, logging.Discard(), delivery.WithTracing(tp, telemetry.Propagator()))
	t.Cleanup(h.Close)
	task, err := delivery.NewTask(wire.Event{ID: "1-0", Type: wire.EventRunnerOffline, Timestamp: time.Now(), Data: []byte(`{}`)}, recv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatalf("delivery: %v", err)
	}
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("the attempt made no span")
	}
	traceID := spans[0].SpanContext.TraceID().String() // the attempt's trace

	scrape := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(scrape.Close)
	req, _ := http.NewRequest("GET", scrape.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	body := string(b)
	ex := regexp.MustCompile(`(?m)^ex_hooks_delivery_duration_seconds_bucket\{le="[^"]+"\} 1 # \{([^}]*)\}`).FindStringSubmatch(body)
	if ex == nil {
		t.Fatalf("no delivery latency bucket with an exemplar:\n%s", body)
	}
	if !strings.Contains(ex[1], `trace_id="`+traceID+`"`) {
		t.Errorf("exemplar {%s}, want trace_id=%q", ex[1], traceID)
	}
	if !strings.Contains(body, `ex_hooks_delivery_duration_seconds_bucket{le="3.0"}`) || strings.Contains(body, `ex_hooks_delivery_duration_seconds_bucket{le="5.0"}`) {
		t.Errorf("buckets do not end at the 3 s hook timeout:\n%s", body)
	}
}
