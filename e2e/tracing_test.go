package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// otlpSpan is one span as an OTLP/HTTP export delivered it.
type otlpSpan struct {
	Service, Name             string
	TraceID, SpanID, ParentID string
	Links                     []otlpLink
	// Texts is every attribute value of the span, its links, its events and
	// its resource, for the secrets scan.
	Texts []string
	Attrs map[string]string
}

type otlpLink struct{ TraceID, SpanID string }

// otlpReceiver is a collector's OTLP/HTTP traces endpoint: it decodes every
// protobuf export POSTed to /v1/traces.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans map[string]otlpSpan // by span id
	bad   []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{spans: map[string]otlpSpan{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		var req coltracepb.ExportTraceServiceRequest
		if err == nil && (r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf") {
			err = fmt.Errorf("%s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			o.mu.Lock()
			o.bad = append(o.bad, err.Error())
			o.mu.Unlock()
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		o.add(&req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func anyText(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case nil:
		return ""
	}
	return fmt.Sprint(v.GetValue())
}

func (o *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		var resTexts []string
		for _, kv := range rs.GetResource().GetAttributes() {
			resTexts = append(resTexts, anyText(kv.GetValue()))
			if kv.GetKey() == "service.name" {
				service = anyText(kv.GetValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := otlpSpan{
					Service: service, Name: sp.GetName(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()), Attrs: map[string]string{},
					Texts: append([]string{sp.GetName(), sp.GetStatus().GetMessage(), sp.GetTraceState()}, resTexts...),
				}
				for _, kv := range sp.GetAttributes() {
					s.Attrs[kv.GetKey()] = anyText(kv.GetValue())
					s.Texts = append(s.Texts, anyText(kv.GetValue()))
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, otlpLink{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
					for _, kv := range l.GetAttributes() {
						s.Texts = append(s.Texts, anyText(kv.GetValue()))
					}
				}
				for _, ev := range sp.GetEvents() {
					s.Texts = append(s.Texts, ev.GetName())
					for _, kv := range ev.GetAttributes() {
						s.Texts = append(s.Texts, anyText(kv.GetValue()))
					}
				}
				o.spans[s.SpanID] = s
			}
		}
	}
}

func (o *otlpReceiver) span(id string) (otlpSpan, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.spans[id]
	return s, ok
}

func (o *otlpReceiver) all() []otlpSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]otlpSpan, 0, len(o.spans))
	for _, s := range o.spans {
		out = append(out, s)
	}
	return out
}

// traceparentTransport sends the traceparent it holds with every request.
type traceparentTransport struct {
	mu sync.Mutex
	tp string
}

func (t *traceparentTransport) set(tp string) { t.mu.Lock(); t.tp = tp; t.mu.Unlock() }

func (t *traceparentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	tp := t.tp
	t.mu.Unlock()
	r = r.Clone(r.Context())
	if tp != "" {
		r.Header.Set("traceparent", tp)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// parseTraceparent splits a W3C traceparent into trace and span id.
func parseTraceparent(t *testing.T, tp string) (string, string) {
	t.Helper()
	p := strings.Split(tp, "-")
	if len(p) != 4 || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("traceparent %q is not W3C", tp)
	}
	return p[1], p[2]
}

// logLines are the JSON log lines of a process's output.
func logLines(out string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// findLog returns the first line whose fields include want.
func findLog(lines []map[string]any, want map[string]string) (map[string]any, bool) {
next:
	for _, l := range lines {
		for k, v := range want {
			if fmt.Sprint(l[k]) != v {
				continue next
			}
		}
		return l, true
	}
	return nil, false
}

// TestTraceFromLastHeartbeatToWebhook is the proof of docs/api.md#tracing:
// bin/api, bin/sweeper and bin/hooks export to an OTLP/HTTP receiver of the
// test's own; a runner registers and heartbeats under the test's
// traceparents, then stops; the runner.offline webhook's traceparent
// belongs to a trace that reaches the server span of the runner's last
// heartbeat through parents and links (webhook attempt -> relay producer ->
// offline transition -link-> heartbeat -> the test's span); no span holds a
// key, a token or a body; and the log lines of those steps carry the ids of
// those spans.
func TestTraceFromLastHeartbeatToWebhook(t *testing.T) {
	otlp := newOTLPReceiver(t)
	c := startCluster(t, clusterOpts{env: map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.srv.URL, "OTEL_BSP_SCHEDULE_DELAY": "100",
		"OTEL_TRACES_SAMPLER": "parentbased_always_on", "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
	}})
	tpt := &traceparentTransport{}
	cl := client.New(c.url, runnerKey, client.WithHTTPClient(&http.Client{Transport: tpt, Timeout: 10 * time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const bodyMarker = "body-marker-7f3a" // in the registration and the webhook bodies only
	reg, err := cl.Register(ctx, wire.RegisterRunnerPayload{Name: "traced", Version: "1.0.0", Capacity: 1,
		Labels: map[string]string{"marker": bodyMarker}})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.ID
	runnerCl := cl.WithCredential(reg.Token)
	testTrace := randomHex(t, 16)
	var lastSpan string // the test's span the last heartbeat continues
	for range 3 {
		lastSpan = randomHex(t, 8)
		tpt.set("00-" + testTrace + "-" + lastSpan + "-01")
		if _, err := runnerCl.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: id, LeaseEpoch: reg.LeaseEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	// ... and the runner falls silent: the sweeper takes it offline, the hooks deliver
	var hook receivedEvent
	testkit.Eventually(t, 15*time.Second, func() bool {
		var ok bool
		hook, ok = c.hooks.find(wire.EventRunnerOffline, id)
		return ok
	}, "the runner.offline webhook")
	if hook.Data.Reason != wire.ReasonLeaseExpired {
		t.Fatalf("webhook reason %q", hook.Data.Reason)
	}
	hookTrace, hookSpan := parseTraceparent(t, hook.Traceparent)

	// Walk from the webhook's span through parents and links until the
	// server span of the last heartbeat (the child of the test's lastSpan).
	var chain []otlpSpan
	var heartbeat otlpSpan
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		chain = chain[:0]
		seen := map[string]bool{}
		queue := []string{hookSpan}
		for len(queue) > 0 {
			sid := queue[0]
			queue = queue[1:]
			if seen[sid] {
				continue
			}
			seen[sid] = true
			s, ok := otlp.span(sid)
			if !ok {
				continue
			}
			chain = append(chain, s)
			if s.TraceID == testTrace && s.ParentID == lastSpan {
				heartbeat = s
				return nil
			}
			if s.ParentID != "" {
				queue = append(queue, s.ParentID)
			}
			for _, l := range s.Links {
				queue = append(queue, l.SpanID)
			}
		}
		names := make([]string, len(chain))
		for i, s := range chain {
			names[i] = s.Service + ":" + s.Name
		}
		return fmt.Errorf("from the webhook's span %s reached %v, not the last heartbeat", hookSpan, names)
	}, "a trace from the webhook back to the last heartbeat")
	byName := map[string]otlpSpan{}
	for _, s := range chain {
		byName[s.Service+":"+s.Name] = s
	}
	attempt, producer, transition := byName["yggdrasil-hooks:POST webhook"], byName["yggdrasil-hooks:send hooks"],
		byName["yggdrasil-sweeper:runner offline"]
	if attempt.TraceID != hookTrace || producer.TraceID != hookTrace || transition.TraceID != hookTrace ||
		attempt.ParentID != producer.SpanID || producer.ParentID != transition.SpanID {
		t.Errorf("chain %+v: want webhook attempt -> producer -> transition in the webhook's trace %s", chain, hookTrace)
	}
	if heartbeat.Name != "POST /runners/heartbeat" || heartbeat.Service != "yggdrasil-api" {
		t.Errorf("the chain ends at %s:%s, want the api's heartbeat span", heartbeat.Service, heartbeat.Name)
	}
	for k, v := range map[string]string{
		"yggdrasil.runner.id": id, "yggdrasil.lease.epoch": fmt.Sprint(reg.LeaseEpoch),
		"yggdrasil.transition.reason": wire.ReasonLeaseExpired, "yggdrasil.transition.trigger": "lease_expiry",
	} {
		if transition.Attrs[k] != v {
			t.Errorf("transition span: %s = %q, want %q", k, transition.Attrs[k], v)
		}
	}
	if _, ok := transition.Attrs["yggdrasil.transition.lateness_ms"]; !ok {
		t.Errorf("transition span has no lateness: %v", transition.Attrs)
	}
	if p := producer.Attrs; p["messaging.system"] != "asynq" || p["messaging.operation.type"] != "send" ||
		p["messaging.destination.name"] != "hooks" {
		t.Errorf("producer span attributes %v: want the messaging conventions' send to hooks", p)
	}

	// No span, of any service, holds a credential or a body.
	secrets := []string{runnerKey, operatorKey, reg.Token, bodyMarker, `"runner"`, `"leaseEpoch"`}
	for _, s := range otlp.all() {
		for _, txt := range s.Texts {
			for _, secret := range secrets {
				if strings.Contains(txt, secret) {
					t.Errorf("span %s:%s holds %q in %q", s.Service, s.Name, secret, txt)
				}
			}
		}
	}
	otlp.mu.Lock()
	if len(otlp.bad) > 0 {
		t.Errorf("undecodable exports: %v", otlp.bad)
	}
	otlp.mu.Unlock()

	// The log lines of those steps carry the same trace and span ids.
	for _, want := range []struct {
		p      *proc
		fields map[string]string
	}{
		{c.api, map[string]string{"msg": "request", "route": "/runners/heartbeat", "runner_id": id,
			"trace_id": testTrace, "span_id": heartbeat.SpanID}},
		{c.sweeper, map[string]string{"msg": "runner offline", "runner_id": id,
			"trace_id": hookTrace, "span_id": transition.SpanID}},
		{c.hooksP, map[string]string{"msg": "hooks: delivered", "runner_id": id,
			"trace_id": hookTrace, "span_id": attempt.SpanID}},
	} {
		if _, ok := findLog(logLines(want.p.out.String()), want.fields); !ok {
			t.Errorf("%s logged no line with %v", want.p.name, want.fields)
		}
	}
}
