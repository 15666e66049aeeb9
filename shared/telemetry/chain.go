package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The causal chain of a runner's lifecycle (docs/api.md#tracing): the
// request that last renewed a lease stores its traceparent on the runner
// record; the offline transition is a span that links to it; the outbox
// event carries the transition's traceparent; the relay's producer span
// continues it into the delivery task, whose attempts are its children.
//
// The traceparent strings stored in Redis are the W3C header's value
// ("00-<trace id>-<span id>-<flags>"), built here without the global
// propagator so that they are the same whichever propagator main installed.

// Traceparent is the W3C traceparent of ctx's span, "" when ctx carries no
// valid span context (tracing off, or no span).
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	return "00-" + tid.String() + "-" + sid.String() + "-" + sc.TraceFlags().String()
}

// ParseTraceparent reads a stored traceparent; the zero SpanContext (not
// valid) for "" or anything malformed. The result is remote.
func ParseTraceparent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx)
}

// ContextWithTraceparent is ctx with the stored traceparent s as its remote
// parent; ctx unchanged when s is "" or malformed.
func ContextWithTraceparent(ctx context.Context, s string) context.Context {
	sc := ParseTraceparent(s)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// SpanTransition names the span of one runner's offline transition.
const SpanTransition = "runner offline"

// Outcomes of a transition span other than the transition itself
// (AttrTransitionOutcome; absent when the runner went offline).
const (
	TransitionLeaseAlive     = "lease_alive"     // a heartbeat won the race
	TransitionAlreadyOffline = "already_offline" // another replica or a deregistration got there first
	TransitionUnknown        = "unknown_runner"
	TransitionError          = "error"
)

// StartTransition starts the span of one runner's offline transition, a
// child of ctx's span (the sweep's, or the deregistration request's): its
// traceparent goes into the outbox event the transition writes. trigger
// says what took the runner offline (lease_expiry, deregistration,
// quarantine_release).
func StartTransition(ctx context.Context, tr trace.Tracer, runnerID, reason, trigger string) (context.Context, trace.Span) {
	return tr.Start(ctx, SpanTransition, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		AttrRunnerID.String(runnerID), AttrTransitionReason.String(reason), AttrTransitionTrigger.String(trigger)))
}

// TransitionFacts is what the transition script answered.
type TransitionFacts struct {
	Epoch         int64
	LeaseDeadline time.Time // when the lease ran out (or would have)
	At            time.Time // when the transition happened (Redis time)
	// Heartbeat is the stored traceparent of the request that last renewed
	// the lease ("" when none was stored).
	Heartbeat string
}

// EndTransition records facts on span and ends it: the lease epoch, the
// lateness (At minus LeaseDeadline, ms; negative for a deregistration before
// the deadline) and a link to the last renewal's span. outcome is "" when
// the runner went offline, else one of the Transition* outcomes (facts are
// then ignored, but for the link when known).
func EndTransition(span trace.Span, outcome string, f TransitionFacts) {
	if span.IsRecording() {
		if sc := ParseTraceparent(f.Heartbeat); sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{AttrLinkKind.String("last_heartbeat")}})
		}
		switch outcome {
		case "":
			span.SetAttributes(AttrLeaseEpoch.Int64(f.Epoch),
				AttrTransitionLatenessMs.Int64(f.At.Sub(f.LeaseDeadline).Milliseconds()))
		case TransitionError:
			span.SetAttributes(AttrTransitionOutcome.String(outcome))
			span.SetStatus(codes.Error, outcome)
		default:
			span.SetAttributes(AttrTransitionOutcome.String(outcome))
		}
	}
	span.End()
}
