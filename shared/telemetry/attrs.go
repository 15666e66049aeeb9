package telemetry

import (
	"context"
	"log/slog"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of Yggdrasil's own span attributes. Values are ids and
// names, never credentials.
const (
	AttrRunnerID        = attribute.Key("yggdrasil.runner.id")
	AttrTaskID          = attribute.Key("yggdrasil.task.id")
	AttrWebhookID       = attribute.Key("yggdrasil.webhook.id")
	AttrEventType       = attribute.Key("yggdrasil.event.type")
	AttrEventID         = attribute.Key("yggdrasil.event.id")
	AttrDeliveryAttempt = attribute.Key("yggdrasil.delivery.attempt")
	AttrDeliveryOutcome = attribute.Key("yggdrasil.delivery.outcome")
)

// TraceID returns the trace id of the span in ctx, "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// LogAttr is the slog attribute trace_id of ctx's span, and false when ctx
// carries none.
func LogAttr(ctx context.Context) (slog.Attr, bool) {
	id := TraceID(ctx)
	if id == "" {
		return slog.Attr{}, false
	}
	return slog.String("trace_id", id), true
}

// redactedEndpoint is a URL fit for a log line: scheme, host and path only.
func redactedEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
