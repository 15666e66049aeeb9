package relay_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/delivery"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/relay"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// capture is an Enqueuer that keeps the tasks instead of queueing them.
type capture struct{ tasks chan *asynq.Task }

func (c capture) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	c.tasks <- t
	return &asynq.TaskInfo{}, nil
}

// TestTracedDelivery: an outbox event relayed from a real Redis gets a
// producer span (messaging send), the child of the event's traceparent; each delivery attempt is a client span, child of it, with
// the webhook id, event type, attempt, status and outcome; the receiver gets
// the attempt's traceparent; and no span holds the receiver's path, query or
// the body.
func TestTracedDelivery(t *testing.T) {
	const transitionTrace, transitionSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const transitionTP = "00-" + transitionTrace + "-" + transitionSpan + "-01"
	_, rdb := redistest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	var mu sync.Mutex
	var seen []string // traceparent of every request
	statuses := []int{http.StatusServiceUnavailable, http.StatusOK}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("traceparent"))
		w.WriteHeader(statuses[0])
		statuses = statuses[1:]
	}))
	t.Cleanup(recv.Close)
	hookURL := recv.URL + "/services/T000/secret-path?token=query-secret"

	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: store.OutboxKey(), Values: map[string]any{
		"type": "runner.offline", "ts": "1700000000000", "data": `{"runner":{"id":"r-traced"},"reason":"deregistered","leaseEpoch":1}`,
		"traceparent": transitionTP,
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	q := capture{tasks: make(chan *asynq.Task, 1)}
	rl := relay.New(relay.Config{
		URLs: []string{hookURL}, MaxRetry: 3, Timeout: 2 * time.Second, Retention: time.Minute, ClaimIdle: time.Minute,
		Block: 50 * time.Millisecond, TracerProvider: tp, Propagator: telemetry.Propagator(),
	}, store.NewOutboxReader(store.Wrap(rdb), "hooks", "test"), q, metrics.New("test_", 2*time.Second), logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	var task *asynq.Task
	select {
	case task = <-q.tasks:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay enqueued nothing within 5s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}

	h := delivery.NewHandler(&delivery.Signer{}, 2*time.Second, 1, metrics.New("test_", 2*time.Second), logging.Discard(),
		delivery.WithTracing(tp, telemetry.Propagator()))
	t.Cleanup(h.Close)
	var re *delivery.RetryableError
	if err := h.ProcessTask(context.Background(), task); !errors.As(err, &re) {
		t.Fatalf("first attempt (503): %v, want a retryable error", err)
	}
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatalf("second attempt (200): %v", err)
	}

	spans := exp.GetSpans()
	var producer tracetest.SpanStub
	var attempts []tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case relay.SpanName:
			producer = s
		case delivery.SpanName:
			attempts = append(attempts, s)
		}
	}
	if producer.SpanKind != trace.SpanKindProducer || len(attempts) != 2 {
		t.Fatalf("spans %v: want one producer span and two attempts", spanNames(spans))
	}
	// the producer continues the transition's trace: the event's traceparent is its parent
	if producer.Parent.TraceID().String() != transitionTrace || producer.Parent.SpanID().String() != transitionSpan ||
		!producer.Parent.IsRemote() {
		t.Errorf("producer parent %v, want the event's traceparent %s", producer.Parent, transitionTP)
	}
	pattrs := map[string]string{}
	for _, kv := range producer.Attributes {
		pattrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{
		"messaging.system": relay.MessagingSystem, "messaging.operation.type": "send",
		"messaging.destination.name": delivery.Queue, "messaging.message.id": producerEventID(producer),
	} {
		if pattrs[k] != v {
			t.Errorf("producer: %s = %q, want %q", k, pattrs[k], v)
		}
	}
	for i, want := range []struct {
		status  int64
		outcome string
		failed  bool
	}{
		// Outside an asynq worker the task has no retry budget, so a 503
		// is the last attempt: exhausted.
		{503, metrics.OutcomeExhausted, true},
		{200, metrics.OutcomeDelivered, false},
	} {
		s := attempts[i]
		if s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != producer.SpanContext.SpanID() ||
			s.SpanContext.TraceID() != producer.SpanContext.TraceID() {
			t.Errorf("attempt %d: kind %v parent %s trace %s; want a client child of the relay span", i, s.SpanKind, s.Parent.SpanID(), s.SpanContext.TraceID())
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		for k, v := range map[string]string{
			"http.request.method": "POST", "server.address": "127.0.0.1", "http.response.status_code": strconv.FormatInt(want.status, 10),
			"yggdrasil.webhook.id": "msg_" + producerEventID(producer), "yggdrasil.event.type": "runner.offline",
			"yggdrasil.delivery.attempt": "1", "yggdrasil.delivery.outcome": want.outcome,
			"yggdrasil.runner.id": "r-traced",
		} {
			if attrs[k] != v {
				t.Errorf("attempt %d: %s = %q, want %q", i, k, attrs[k], v)
			}
		}
		if failed := s.Status.Code == codes.Error; failed != want.failed {
			t.Errorf("attempt %d: status %v", i, s.Status)
		}
		wantHeader := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		mu.Lock()
		got := seen[i]
		mu.Unlock()
		if got != wantHeader {
			t.Errorf("attempt %d: receiver got traceparent %q, want %q", i, got, wantHeader)
		}
	}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			texts = append(texts, kv.Value.Emit())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
		}
		for _, txt := range texts {
			for _, secret := range []string{"secret-path", "query-secret", "deregistered", "T000"} {
				if strings.Contains(txt, secret) {
					t.Errorf("span %q holds %q: %q", s.Name, secret, txt)
				}
			}
		}
	}
}

func producerEventID(s tracetest.SpanStub) string {
	for _, kv := range s.Attributes {
		if kv.Key == telemetry.AttrEventID {
			return kv.Value.AsString()
		}
	}
	return ""
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
