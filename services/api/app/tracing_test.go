package app_test

import (
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// jsonLines decodes the JSON log lines a server wrote.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func attrOf(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestTracing: a heartbeat is one server span named by its route, with the
// status and the runner id, Redis commands as its children (the script by
// name, no arguments), the caller's traceparent continued, the trace id in
// the request log line; and no span anywhere holds a token, a key or a
// token hash.
func TestTracing(t *testing.T) {
	srv, rdb := redistest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	store.Wrap(rdb).Trace(tp)
	var logs testkit.SyncBuffer
	log, err := logging.NewTo(logging.Config{Level: logging.LevelInfo, Format: "json"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, srv, rdb, log, []app.Option{app.WithTracing(tp, nil)}, authCfg)

	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "traced-1"})
	const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	hb := mustJSON(wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch, Status: wire.RunnerIdle})
	if r := e.do("POST", "/runners/heartbeat", reg.Token, hb,
		"traceparent", "00-"+parentTrace+"-"+parentSpan+"-01", "tracestate", "vendor=opaque", "baggage", "tenant=blue"); r.status != 200 {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	// More traffic for the secrets check: a wrong token, an operator's
	// dispatch with an Idempotency-Key, a task update, an unknown route.
	if r := e.do("POST", "/runners/heartbeat", reg.Token+"x", hb); r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	d := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, `{"type":"echo","payload":{"secret-ish":"body"}}`, "Idempotency-Key", "idem-1")
	if d.status != 201 {
		t.Fatalf("dispatch: %d %s", d.status, d.body)
	}
	var task wire.RunnerTask
	if err := json.Unmarshal(d.body, &task); err != nil {
		t.Fatal(err)
	}
	if r := e.do("PATCH", "/runners/"+reg.ID+"/tasks/"+task.ID, reg.Token, `{"status":"running"}`); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/no/such/route/"+reg.Token, "", ""); r.status != 404 {
		t.Fatalf("unmatched: %d", r.status)
	}
	if r := e.do("GET", "/health", "", ""); r.status != 200 {
		t.Fatalf("health: %d", r.status)
	}

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	hbSpans := byName["POST /runners/heartbeat"]
	if len(hbSpans) != 2 {
		t.Fatalf("want 2 heartbeat server spans, got names %v", names(spans))
	}
	var server tracetest.SpanStub
	for _, s := range hbSpans {
		if v, _ := attrOf(s, "http.response.status_code"); v.AsInt64() == 200 {
			server = s
		}
	}
	if !server.SpanContext.IsValid() {
		t.Fatal("no heartbeat span with status 200")
	}
	if server.SpanKind != trace.SpanKindServer {
		t.Errorf("kind %v", server.SpanKind)
	}
	if got := server.SpanContext.TraceID().String(); got != parentTrace {
		t.Errorf("trace id %s, want the caller's %s", got, parentTrace)
	}
	if got := server.Parent.SpanID().String(); got != parentSpan || !server.Parent.IsRemote() {
		t.Errorf("parent %s (remote %v), want the caller's %s", got, server.Parent.IsRemote(), parentSpan)
	}
	for key, want := range map[attribute.Key]string{
		"http.request.method": "POST", "http.route": "/runners/heartbeat", "yggdrasil.runner.id": reg.ID,
	} {
		if v, ok := attrOf(server, key); !ok || v.Emit() != want {
			t.Errorf("%s = %q, want %q", key, v.Emit(), want)
		}
	}
	var children []string
	for _, s := range spans {
		if s.Parent.SpanID() == server.SpanContext.SpanID() {
			if s.SpanContext.TraceID() != server.SpanContext.TraceID() || s.SpanKind != trace.SpanKindClient {
				t.Errorf("child %s: trace %s kind %v", s.Name, s.SpanContext.TraceID(), s.SpanKind)
			}
			children = append(children, s.Name)
		}
	}
	if !contains(children, "EVALSHA heartbeat") {
		t.Errorf("heartbeat children %v, want EVALSHA heartbeat among them", children)
	}
	for _, s := range hbSpans {
		if s.SpanContext.SpanID() != server.SpanContext.SpanID() && s.Parent.IsValid() {
			t.Errorf("a heartbeat without traceparent must start a trace, got parent %s", s.Parent.SpanID())
		}
	}
	if u := byName["GET unmatched"]; len(u) != 1 {
		t.Errorf("unmatched route: spans %v", names(spans))
	} else if _, ok := attrOf(u[0], "http.route"); ok {
		t.Error("unmatched route has http.route")
	}
	if p := byName["PATCH /runners/:id/tasks/:tid"]; len(p) != 1 {
		t.Errorf("patch span missing: %v", names(spans))
	} else if v, _ := attrOf(p[0], "yggdrasil.task.id"); v.Emit() != task.ID {
		t.Errorf("patch task id %q, want %q", v.Emit(), task.ID)
	}
	if len(byName["GET /health"]) != 0 {
		t.Error("probe routes must not be traced")
	}

	// The request log line carries the trace id.
	found := false
	for _, l := range jsonLines(logs.String()) {
		if l["msg"] == "request" && l["route"] == "/runners/heartbeat" && l["trace_id"] == parentTrace {
			found = true
		}
	}
	if !found {
		t.Errorf("no request log line with trace_id %s", parentTrace)
	}

	// Never a secret in a span, wherever it would hide.
	secrets := map[string]string{"token": reg.Token, "token hash": auth.HashToken(reg.Token), "api key": apiKey, "operator key": opKey,
		"request body": "secret-ish"}
	for _, s := range spans {
		var texts []string
		texts = append(texts, s.Name, s.Status.Description)
		for _, kv := range s.Attributes {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, kv := range s.Resource.Attributes() {
			texts = append(texts, kv.Value.Emit())
		}
		for _, txt := range texts {
			for what, secret := range secrets {
				if strings.Contains(txt, secret) {
					t.Errorf("span %q holds the %s: %q", s.Name, what, txt)
				}
			}
			if strings.HasPrefix(txt, "db.statement") || strings.HasPrefix(txt, "db.query.text") {
				t.Errorf("span %q records a Redis statement: %q", s.Name, txt)
			}
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
