package httpapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// ScopeAPI is the instrumentation scope of the API's server spans.
const ScopeAPI = "github.com/yggdrasil-cp/yggdrasil/services/api"

// unmatchedRoute names requests no route matched, in metrics, logs and spans:
// the raw path would make every scanner's probe a new span name.
const unmatchedRoute = "unmatched"

// startSpan continues the caller's trace (W3C traceparent, tracestate,
// baggage) and starts the request's server span; the handlers get it through
// c.UserContext(). The name is the method until the route is known. Nil when
// tracing is off or for the probe routes (/health, /ready, /metrics), which
// load balancers and scrapers call every few seconds.
func (h *Handlers) startSpan(c *fiber.Ctx) trace.Span {
	if h.tracer == nil {
		return nil
	}
	switch c.Path() {
	case "/health", "/ready", "/metrics":
		return nil
	}
	ctx := h.prop.Extract(c.UserContext(), fiberCarrier{c})
	ctx, span := h.tracer.Start(ctx, spanMethod(c.Method()), trace.WithSpanKind(trace.SpanKindServer))
	c.SetUserContext(ctx)
	return span
}

// endSpan names the span "<METHOD> <route template>" and records what the
// request came to. Only ids and the HTTP facts: never a header other than
// the user agent, never a body, a token or a key, and not the raw path
// (url.path) either: the route and the validated ids say the same, while a
// raw path is whatever the client sent, a mistaken credential included.
func (h *Handlers) endSpan(c *fiber.Ctx, span trace.Span, route string, status int) {
	method := spanMethod(c.Method())
	span.SetName(method + " " + route)
	if span.IsRecording() {
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(method),
			semconv.HTTPResponseStatusCode(status),
			semconv.URLScheme("http"),
		)
		if route != unmatchedRoute {
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		if ua := c.Get(fiber.HeaderUserAgent); ua != "" {
			span.SetAttributes(semconv.UserAgentOriginal(ua))
		}
		if id, ok := c.Locals(localRunner).(string); ok && validate.ID(id) {
			span.SetAttributes(telemetry.AttrRunnerID.String(id))
		}
		if id, ok := c.Locals(localTask).(string); ok && validate.ID(id) {
			span.SetAttributes(telemetry.AttrTaskID.String(id))
		}
		if status >= 500 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// spanMethod is the method, or _OTHER for one outside the standard set (the
// semantic conventions' rule: a client must not mint span names).
func spanMethod(m string) string {
	switch m {
	case fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete,
		fiber.MethodHead, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace:
		return m
	}
	return "_OTHER"
}

// fiberCarrier reads and writes propagation headers on the fiber request
// without copying the whole header map.
type fiberCarrier struct{ c *fiber.Ctx }

var _ propagation.TextMapCarrier = fiberCarrier{}

func (f fiberCarrier) Get(key string) string { return f.c.Get(key) }
func (f fiberCarrier) Set(key, value string) { f.c.Set(key, value) }
func (f fiberCarrier) Keys() []string {
	var keys []string
	f.c.Request().Header.VisitAll(func(k, _ []byte) { keys = append(keys, string(k)) })
	return keys
}
