package app_test

import (
	"regexp"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestHeartbeatExemplar: an OpenMetrics scrape shows the trace id of a
// traced heartbeat as the exemplar of its heartbeat_duration_seconds bucket
// (so a slow bucket opens its trace); the plain-text scrape, which cannot
// carry exemplars, still parses without them.
func TestHeartbeatExemplar(t *testing.T) {
	srv, rdb := redistest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	e := startWith(t, srv, rdb, logging.Discard(), []app.Option{app.WithTracing(tp, nil)}, authCfg)

	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "ex-1"})
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	hb := mustJSON(wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch, Status: wire.RunnerIdle})
	if r := e.do("POST", "/runners/heartbeat", reg.Token, hb, "traceparent", "00-"+traceID+"-b7ad6b7169203331-01"); r.status != 200 {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}

	om := e.do("GET", "/metrics", "", "", "Accept", "application/openmetrics-text;version=1.0.0")
	if ct := om.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q: OpenMetrics was not negotiated", ct)
	}
	line := regexp.MustCompile(`(?m)^yggdrasil_heartbeat_duration_seconds_bucket\{le="[^"]+"\} 1 # \{([^}]*)\} [0-9.e-]+`)
	m := line.FindStringSubmatch(string(om.body))
	if m == nil {
		t.Fatalf("no heartbeat bucket with an exemplar in the OpenMetrics scrape:\n%s", grepLines(string(om.body), "heartbeat_duration"))
	}
	if !strings.Contains(m[1], `trace_id="`+traceID+`"`) {
		t.Errorf("exemplar labels {%s}, want trace_id=%q", m[1], traceID)
	}
	var spanID string
	for _, s := range exp.GetSpans() {
		if s.Name == "POST /runners/heartbeat" {
			spanID = s.SpanContext.SpanID().String()
		}
	}
	if !strings.Contains(m[1], `span_id="`+spanID+`"`) {
		t.Errorf("exemplar labels {%s}, want the heartbeat's server span %s", m[1], spanID)
	}

	plain := e.do("GET", "/metrics", "", "")
	if strings.Contains(string(plain.body), traceID) {
		t.Error("the plain-text scrape carries an exemplar")
	}
}

func grepLines(body, sub string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
