package logging

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// traceHandler adds trace_id and span_id to every record logged with a
// context that carries a valid span context (log.InfoContext(ctx, ...)), in
// whichever format the wrapped handler writes: a log line written while a
// span is active can then be found from the trace, and the trace from the
// line. Records logged without a context, or with one carrying no span,
// pass through untouched and cost one context lookup.
type traceHandler struct{ h slog.Handler }

// WithTrace wraps h so that records logged under a span carry trace_id and
// span_id. New, Open and NewTo apply it already.
func WithTrace(h slog.Handler) slog.Handler {
	if _, ok := h.(traceHandler); ok {
		return h
	}
	return traceHandler{h: h}
}

func (t traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return t.h.Enabled(ctx, l) }

func (t traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone() // the caller's record may share its attribute array
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return t.h.Handle(ctx, r)
}

func (t traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h: t.h.WithAttrs(as)}
}
func (t traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h: t.h.WithGroup(name)}
}
