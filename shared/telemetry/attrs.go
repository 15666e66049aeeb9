package telemetry

import (
	"context"
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
	AttrLeaseEpoch      = attribute.Key("yggdrasil.lease.epoch")
	// AttrTransitionReason is the offline reason the event carries
	// (lease_expired, deregistered); AttrTransitionTrigger what took the
	// runner offline (lease_expiry, deregistration, quarantine_release).
	AttrTransitionReason  = attribute.Key("yggdrasil.transition.reason")
	AttrTransitionTrigger = attribute.Key("yggdrasil.transition.trigger")
	// AttrTransitionLatenessMs is the transition time minus the lease
	// deadline, in ms (Redis time on both sides).
	AttrTransitionLatenessMs = attribute.Key("yggdrasil.transition.lateness_ms")
	AttrTransitionOutcome    = attribute.Key("yggdrasil.transition.outcome")
	// AttrLinkKind says what a link points at (last_heartbeat).
	AttrLinkKind = attribute.Key("yggdrasil.link.kind")
)

// Transition triggers (AttrTransitionTrigger).
const (
	TriggerLeaseExpiry       = "lease_expiry"
	TriggerDeregistration    = "deregistration"
	TriggerQuarantineRelease = "quarantine_release"
)

// TraceID returns the trace id of the span in ctx, "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// redactedEndpoint is a URL fit for a log line: scheme, host and path only.
func redactedEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
