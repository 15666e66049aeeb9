package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// Exemplar is the exemplar label set of ctx's span for a Prometheus
// histogram (prometheus.ExemplarObserver): {trace_id, span_id} of a sampled
// span, nil when ctx carries none or an unsampled one (whose trace no
// backend has, so a link to it would lead nowhere). A map[string]string is
// what prometheus.Labels is, so this package needs no Prometheus import.
func Exemplar(ctx context.Context) map[string]string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return map[string]string{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}
}
