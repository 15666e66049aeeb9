package logging_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

// TestLogLinesCarryTheSpan: in both formats, a line logged with a context
// holding a span has its trace_id and span_id; one logged without has none.
func TestLogLinesCarryTheSpan(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	for format, want := range map[string][]string{
		logging.FormatJSON:   {`"trace_id":"` + sc.TraceID().String() + `"`, `"span_id":"` + sc.SpanID().String() + `"`},
		logging.FormatSimple: {"trace_id=" + sc.TraceID().String(), "span_id=" + sc.SpanID().String()},
	} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := logging.NewTo(logging.Config{Format: format}, &buf)
			if err != nil {
				t.Fatal(err)
			}
			log.With("runner_id", "r1").InfoContext(ctx, "traced")
			log.Info("untraced")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("lines %q", lines)
			}
			for _, w := range want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("traced line %q lacks %s", lines[0], w)
				}
			}
			if strings.Contains(lines[1], "trace_id") || strings.Contains(lines[1], "span_id") {
				t.Errorf("untraced line %q has trace ids", lines[1])
			}
		})
	}
}
