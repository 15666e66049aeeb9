package delivery

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// Scope is the instrumentation scope of the delivery spans.
const Scope = "github.com/yggdrasil-cp/yggdrasil/services/hooks/delivery"

// SpanName names every attempt's span: the method and a fixed target, since
// the receiver's URL may hold a credential in its path (Slack-style hooks).
const SpanName = "POST webhook"

// startSpan starts the client span of one attempt, as a child of the relay
// span that enqueued the delivery when the task carries its context. It
// records the receiver's host and port, never its path or query.
func (h *Handler) startSpan(ctx context.Context, p Payload, attempt int) (context.Context, trace.Span) {
	if len(p.Trace) > 0 {
		ctx = h.prop.Extract(ctx, propagation.MapCarrier(p.Trace))
	}
	ctx, span := h.tracer.Start(ctx, SpanName, trace.WithSpanKind(trace.SpanKindClient))
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetAttributes(
		semconv.HTTPRequestMethodPost,
		telemetry.AttrWebhookID.String(p.WebhookID()),
		telemetry.AttrEventID.String(p.EventID),
		telemetry.AttrEventType.String(p.EventType),
		telemetry.AttrDeliveryAttempt.Int(attempt),
	)
	if p.RunnerID != "" {
		span.SetAttributes(telemetry.AttrRunnerID.String(p.RunnerID))
	}
	if u, err := url.Parse(p.URL); err == nil {
		span.SetAttributes(semconv.URLScheme(u.Scheme), semconv.ServerAddress(u.Hostname()))
		port, _ := strconv.Atoi(u.Port())
		if port == 0 && u.Scheme == "https" {
			port = 443
		} else if port == 0 {
			port = 80
		}
		span.SetAttributes(semconv.ServerPort(port))
	}
	return ctx, span
}

// endSpan records the answer and the outcome. A failure is described by its
// class only (the status code, timeout, transport): a transport error's text
// quotes the whole URL.
func endSpan(span trace.Span, status int, sendErr error, outcome string) {
	if span.IsRecording() {
		if status > 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		span.SetAttributes(telemetry.AttrDeliveryOutcome.String(outcome))
		if outcome != metrics.OutcomeDelivered {
			class := strconv.Itoa(status)
			if sendErr != nil {
				class = "transport"
				var ne net.Error
				if errors.Is(sendErr, context.DeadlineExceeded) || (errors.As(sendErr, &ne) && ne.Timeout()) {
					class = "timeout"
				}
			}
			span.SetAttributes(semconv.ErrorTypeKey.String(class))
			span.SetStatus(codes.Error, outcome)
		}
	}
	span.End()
}
