package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func histogram(t *testing.T, h *prometheus.HistogramVec, label string) (count uint64, sum float64) {
	t.Helper()
	var m dto.Metric
	if err := h.WithLabelValues(label).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func delivered(m *metrics.Metrics) float64 {
	return testutil.ToFloat64(m.Deliveries.WithLabelValues(metrics.OutcomeDelivered, "2xx"))
}

func TestOfflineRunnerGivesOneSignedDelivery(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	ctx := context.Background()
	recv := newReceiver(t, nil)
	cfg := testConfig(recv.URL + "/hook")
	// Two secrets, as during a rotation: the receiver may hold either.
	second := "whsec_" + strings.Repeat("QUJD", 8)
	cfg.HookSecret = testSecret + " " + second
	inst := start(t, cfg, rdb, options{})

	registerRunners(t, s, "r", 1, time.Minute)
	task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r-0000", Type: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Deregister(ctx, "r-0000", 0, "maintenance")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return recv.count() == 1 }, "one delivery")

	hits, _ := recv.snapshot()
	h := hits[0]
	for _, sec := range []string{testSecret, second} {
		if err := verify(sec, h); err != nil {
			t.Errorf("signature with secret %q...: %v", sec[:10], err)
		}
	}
	if !strings.HasPrefix(h.id, "msg_") {
		t.Errorf("webhook-id %q does not start with msg_", h.id)
	}
	if ts, err := strconv.ParseInt(h.ts, 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("webhook-timestamp %q is not the unix time of the attempt", h.ts)
	}
	var ev struct {
		Type      string               `json:"type"`
		Timestamp time.Time            `json:"timestamp"`
		Data      wire.RunnerEventData `json:"data"`
	}
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("body %s: %v", h.body, err)
	}
	if ev.Type != wire.EventRunnerOffline || ev.Timestamp.IsZero() {
		t.Errorf("type %q timestamp %v", ev.Type, ev.Timestamp)
	}
	want := wire.RunnerEventData{
		Runner:        wire.EventRunner{ID: "r-0000", Name: "name-r-0000", Version: "1.0.0", Realm: "eu"},
		Reason:        wire.ReasonDeregistered,
		FailedTaskIDs: []string{task.ID},
		LeaseEpoch:    tr.Epoch,
	}
	got := ev.Data
	got.LeaseExpiredAt = nil
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("event data (-want +got):\n%s", d)
	}
	testkit.Eventually(t, 2*time.Second, func() bool { return delivered(inst.metrics) == 1 }, "delivered counted")
	if n, _ := histogram(t, inst.metrics.Attempts, metrics.OutcomeDelivered); n != 1 {
		t.Errorf("attempts observations = %d, want 1", n)
	}
	// The registration was filtered out (HOOK_EVENTS=runner.offline), and
	// both entries are acknowledged and trimmed.
	testkit.Eventually(t, 2*time.Second, func() bool {
		st := outboxStats(t, rdb)
		return st.Pending == 0 && st.Length == 0
	}, "outbox drained")
	if got := testutil.ToFloat64(inst.metrics.RelayEvents.WithLabelValues(metrics.RelayFiltered)); got != 1 {
		t.Errorf("filtered = %v, want 1", got)
	}

	// The metrics endpoint serves the service's own registry.
	resp, err := http.Get("http://" + inst.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = fmt.Fprint(&sb, mustRead(t, resp))
	for _, name := range []string{"yggdrasil_hooks_deliveries_total", "yggdrasil_hooks_outbox_oldest_undelivered_seconds", "yggdrasil_hooks_queue_tasks", "yggdrasil_hooks_archived_deliveries", "yggdrasil_hooks_delivery_attempts", "yggdrasil_hooks_backlog_scrape_ok 1"} {
		if !strings.Contains(sb.String(), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func mustRead(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestServerErrorsRetriedWithOneWebhookID(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	inst := start(t, testConfig(recv.URL), rdb, options{})
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return delivered(inst.metrics) == 1 }, "delivered after retries")
	hits, per := recv.snapshot()
	if len(hits) != 4 || len(per) != 1 {
		t.Fatalf("got %d attempts over %d webhook-ids, want 4 over 1: %v", len(hits), len(per), per)
	}
	for _, h := range hits {
		if err := verify(testSecret, h); err != nil {
			t.Error(err)
		}
		if string(h.body) != string(hits[0].body) {
			t.Errorf("retry body differs:\n%s\n%s", h.body, hits[0].body)
		}
	}
	if got := testutil.ToFloat64(inst.metrics.Deliveries.WithLabelValues(metrics.OutcomeRetry, "5xx")); got != 3 {
		t.Errorf("retries counted = %v, want 3", got)
	}
	if n, sum := histogram(t, inst.metrics.Attempts, metrics.OutcomeDelivered); n != 1 || sum != 4 {
		t.Errorf("attempts histogram: %d observations summing to %v, want 1 of 4", n, sum)
	}
}

func TestRetryAfterAndExhaustion(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) int {
		w.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable
	})
	cfg := testConfig(recv.URL)
	cfg.HookMaxRetries = 1
	cfg.HookBackoffMaxMs = 3000 // caps Retry-After: the 1 s is honoured
	inst := start(t, cfg, rdb, options{})
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(inst.metrics.Deliveries.WithLabelValues(metrics.OutcomeExhausted, "5xx")) == 1
	}, "exhausted")
	hits, _ := recv.snapshot()
	if len(hits) != 2 {
		t.Fatalf("attempts = %d, want 2 (1 + HOOK_MAX_RETRIES)", len(hits))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < 900*time.Millisecond {
		t.Errorf("retry came %v after a Retry-After: 1", gap)
	}
	if n, sum := histogram(t, inst.metrics.Attempts, metrics.OutcomeExhausted); n != 1 || sum != 2 {
		t.Errorf("attempts histogram: %d observations summing to %v, want 1 of 2", n, sum)
	}
}

func TestClientErrorArchivedAndReplayed(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	target := newReceiver(t, nil)
	redirect := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusOK })
	redirect.Config.Handler = http.RedirectHandler(target.URL, http.StatusFound)
	cfg := testConfig(recv.URL, redirect.URL)
	inst := start(t, cfg, rdb, options{})
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(inst.metrics.Deliveries.WithLabelValues(metrics.OutcomeFailed, "4xx")) == 1 &&
			testutil.ToFloat64(inst.metrics.Deliveries.WithLabelValues(metrics.OutcomeFailed, "3xx")) == 1
	}, "two permanent failures")
	if target.count() != 0 {
		t.Errorf("redirect was followed")
	}

	base := "http://" + inst.addr + "/deliveries/archived"
	call := func(method, url, key string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp, []byte(mustRead(t, resp))
	}
	if resp, body := call("GET", base, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no key: %d", resp.StatusCode)
	} else {
		var p problem.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Type != problem.TypeUnauthorized || p.Status != 401 ||
			resp.Header.Get("Content-Type") != problem.ContentType {
			t.Errorf("no key: %s %s (%v), want a problem of type %s", resp.Header.Get("Content-Type"), body, err, problem.TypeUnauthorized)
		}
	}
	if resp, _ := call("GET", base, "wrong-key-0123456789"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", resp.StatusCode)
	}
	key := cfg.AdminAPIKeys[0]
	var list wire.ArchivedList
	testkit.Eventually(t, 5*time.Second, func() bool {
		resp, body := call("GET", base, key)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		_ = json.Unmarshal(body, &list)
		return list.Total == 2 && len(list.Items) == 2
	}, "two archived deliveries")
	var id string
	for _, d := range list.Items {
		if d.URL == recv.URL {
			id = d.ID
			if d.Attempts != 1 || d.EventType != wire.EventRunnerOffline || !strings.HasPrefix(d.WebhookID, "msg_") {
				t.Errorf("archived entry %+v", d)
			}
		}
	}
	if resp, _ := call("POST", base+"/nope/retry", key); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}
	if resp, body := call("POST", base+"/"+id+"/retry", key); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %d %s", resp.StatusCode, body)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return delivered(inst.metrics) == 1 }, "replayed delivery")
	hits, per := recv.snapshot()
	if len(hits) != 2 || len(per) != 1 {
		t.Fatalf("receiver got %d requests over %d ids, want 2 over 1", len(hits), len(per))
	}
	if resp, body := call("POST", base+"/retry", key); resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"retried":1`) {
		t.Errorf("retry all: %d %s", resp.StatusCode, body)
	}
}

func TestStoppedMidDeliveryDeliversAfterRestart(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	release := make(chan struct{})
	var once sync.Once
	recv := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) int {
		if n == 1 { // hold the first attempt until the client gives up
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	defer once.Do(func() { close(release) })
	cfg := testConfig(recv.URL)
	first := start(t, cfg, rdb, options{})
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return recv.count() == 1 }, "delivery in flight")
	began := time.Now()
	if err := first.run.Stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("shutdown took %v with HOOK_SHUTDOWN_TIMEOUT_MS=300", d)
	}
	once.Do(func() { close(release) })

	second := start(t, cfg, rdb, options{})
	testkit.Eventually(t, 10*time.Second, func() bool { return delivered(second.metrics) == 1 }, "delivered after restart")
	_, per := recv.snapshot()
	if len(per) != 1 {
		t.Fatalf("webhook-ids: %v", per)
	}
}

func TestRelayCrashBeforeAckDoesNotDoubleDeliver(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, nil)
	cfg := testConfig(recv.URL)
	crash := errors.New("simulated crash")
	// Every event is in the outbox before the relay starts, so its first
	// batch enqueues the five deliveries and then "crashes" before the ack.
	ids := registerRunners(t, s, "r", 5, time.Minute)
	for _, id := range ids {
		if _, err := s.Deregister(context.Background(), id, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	first := startNoWait(t, cfg, rdb, options{beforeAck: func([]string) error { return crash }})
	select {
	case <-first.run.Done():
		if err := first.run.Err(); !errors.Is(err, crash) {
			t.Fatalf("first run returned %v, want the simulated crash", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not reach the ack")
	}
	if st := outboxStats(t, rdb); st.Pending != 10 {
		t.Fatalf("the crash should leave all 10 entries pending: %+v", st)
	}
	// The second run delivers the tasks the first one enqueued within
	// milliseconds, and claims the entries only once they have been idle for
	// HOOK_CLAIM_IDLE_MS: by then the tasks are finished, and the dedup
	// retention keeps their ids taken, so the re-enqueue conflicts.
	second := start(t, cfg, rdb, options{})
	testkit.Eventually(t, 10*time.Second, func() bool {
		st := outboxStats(t, rdb)
		return st.Pending == 0 && st.Lag == 0
	}, "outbox drained")
	testkit.Eventually(t, 10*time.Second, func() bool { return recv.count() >= 5 }, "five deliveries")
	testkit.Eventually(t, 5*time.Second, func() bool { return queueIdle(t, rdb) }, "queue idle")
	time.Sleep(3 * time.Duration(cfg.HookClaimIdleMs) * time.Millisecond) // room for a duplicate to show up
	_, per := recv.snapshot()
	if len(per) != 5 {
		t.Fatalf("webhook-ids: %d, want 5", len(per))
	}
	for id, n := range per {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	dups := testutil.ToFloat64(second.metrics.RelayEvents.WithLabelValues(metrics.RelayDuplicate))
	enq := testutil.ToFloat64(second.metrics.RelayEvents.WithLabelValues(metrics.RelayEnqueued))
	if dups != 5 || enq != 0 {
		t.Errorf("second relay: %v duplicates, %v enqueued; want the re-read entries recognised as duplicates", dups, enq)
	}
}

// queueIdle reports whether no delivery is pending, active or waiting to retry.
func queueIdle(t *testing.T, rdb redis.UniversalClient) bool {
	t.Helper()
	ins := asynq.NewInspectorFromRedisClient(rdb)
	defer ins.Close()
	qs, err := ins.Queues()
	if err != nil {
		return false
	}
	if !slices.Contains(qs, "hooks") {
		return true
	}
	qi, err := ins.GetQueueInfo("hooks")
	if err != nil {
		return false
	}
	return qi.Pending == 0 && qi.Active == 0 && qi.Retry == 0 && qi.Scheduled == 0
}

func TestThousandRunnersOffline(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, nil)
	inst := start(t, testConfig(recv.URL), rdb, options{})
	const n = 1000
	ids := registerRunners(t, s, "r", n, 100*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // every lease has expired
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := s.ExpireLease(context.Background(), ids[i]); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, func() bool { return recv.count() >= n }, "1000 deliveries")
	testkit.Eventually(t, 5*time.Second, func() bool { return queueIdle(t, rdb) }, "queue idle")
	hits, per := recv.snapshot()
	if len(hits) != n || len(per) != n {
		t.Fatalf("%d requests over %d webhook-ids, want %d and %d", len(hits), len(per), n, n)
	}
	runners := map[string]bool{}
	for _, h := range hits {
		var ev wire.Event
		var d wire.RunnerEventData
		if err := json.Unmarshal(h.body, &ev); err != nil || json.Unmarshal(ev.Data, &d) != nil {
			t.Fatalf("body %s", h.body)
		}
		if d.Reason != wire.ReasonLeaseExpired || d.LeaseExpiredAt == nil {
			t.Errorf("event %+v", d)
		}
		runners[d.Runner.ID] = true
	}
	if len(runners) != n {
		t.Errorf("%d distinct runners, want %d", len(runners), n)
	}
	if got := delivered(inst.metrics); got != n {
		t.Errorf("delivered counter = %v", got)
	}
}

func TestMalformedEntryAckedAndSkipped(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, nil)
	inst := start(t, testConfig(recv.URL), rdb, options{})
	ctx := context.Background()
	// Hand-made entries: no data, and data that is not JSON.
	for _, vals := range [][]string{{"type", "runner.offline"}, {"type", "runner.offline", "ts", "1", "data", "{nope"}} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: store.OutboxKey(), Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(ctx, "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return delivered(inst.metrics) == 1 }, "the real event delivered")
	if got := testutil.ToFloat64(inst.metrics.RelayEvents.WithLabelValues(metrics.RelayMalformed)); got != 2 {
		t.Errorf("malformed = %v, want 2", got)
	}
	testkit.Eventually(t, 2*time.Second, func() bool { st := outboxStats(t, rdb); return st.Pending == 0 && st.Length == 0 }, "outbox drained")
}

func TestHooksOffStillDrains(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.HookEvents = []string{"*"}
	inst := start(t, cfg, rdb, options{})
	registerRunners(t, s, "r", 3, time.Minute)
	testkit.Eventually(t, 5*time.Second, func() bool {
		st := outboxStats(t, rdb)
		return st.Pending == 0 && st.Length == 0 && st.Lag == 0
	}, "drained")
	if got := testutil.ToFloat64(inst.metrics.RelayEvents.WithLabelValues(metrics.RelayHooksOff)); got != 3 {
		t.Errorf("hooks_off = %v, want 3", got)
	}
}

func TestRedisRestartRecovers(t *testing.T) {
	srv, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, nil)
	inst := start(t, testConfig(recv.URL), rdb, options{})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The stream and group are gone with the old Redis: the relay recreates them.
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, _, err := s.Register(context.Background(), store.RegisterParams{ID: "r-0000", Name: "n", TokenHash: "h", LeaseTTL: time.Minute, ActsForAnyRunner: true})
		return err == nil
	}, "re-registered after restart")
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() bool { return delivered(inst.metrics) == 1 }, "delivered after a Redis restart")
}
