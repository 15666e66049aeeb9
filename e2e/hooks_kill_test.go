package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// asynq v0.26.0 recovers the task of a worker that died without a word only
// through its recoverer (recoverer.go, server.go): the task's lease is 30 s
// from the dequeue or the last extension (internal/rdb.LeaseDuration, extended
// every 5 s while the worker lives); the recoverer takes tasks whose lease
// lapsed at least 30 s ago (a clock-skew margin) and runs when the server
// starts and then every minute. None of the three figures is configurable, so
// the hooks configuration cannot shorten this, in tests or anywhere else.
// A killed worker's task thus becomes recoverable 55 to 60 s after the kill
// and is retried by the next recoverer pass of any live hooks process: at
// most 120 s after the kill.
//
// A process restarted at once after the kill runs its first pass too early
// and retries the task on its second pass, 60 s after it started; the retry
// then waits the first backoff step (HOOK_BACKOFF_BASE_MS, ±20%), asynq's
// whole-second retry schedule and the poll. The deadline below is that, with
// slack for a loaded 2-core machine.
const (
	asynqRecovererInterval = time.Minute
	workerRecoveryLimit    = asynqRecovererInterval + 25*time.Second
)

// TestHooksKilledMidDeliveryDeliversOnceAfterRestart SIGKILLs bin/hooks while
// the receiver holds the webhook request open, starts a new bin/hooks, and
// checks that the delivery arrives with the same webhook-id and a valid
// signature, and that the receiver answered 2xx exactly once for it.
func TestHooksKilledMidDeliveryDeliversOnceAfterRestart(t *testing.T) {
	t.Parallel()
	srv, rdb := redistest.Start(t)
	secret, key := newHookSecret(t)
	recv := newKillReceiver(t, key, true)
	webhookID := recordOffline(t, store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet)), "r-killed-worker")

	first := startHooks(t, "hooks #1", srv, recv.srv.URL, secret)
	select {
	case <-recv.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook never reached the receiver")
	}
	first.proc.signal(syscall.SIGKILL)
	if code := first.proc.wait(5 * time.Second); code != -1 {
		t.Fatalf("hooks #1 exited with %d, want killed by SIGKILL (-1)", code)
	}
	killedAt := time.Now()
	recv.releaseHeld()

	second := startHooks(t, "hooks #2", srv, recv.srv.URL, secret)
	restartedAt := time.Now()
	var deliveredAt time.Time
	testkit.EventuallyNil(t, workerRecoveryLimit, func() error {
		if !second.proc.running() {
			t.Fatalf("hooks #2 exited with %d", second.proc.code)
		}
		if at, ok := recv.delivered(webhookID); ok {
			deliveredAt = at
			return nil
		}
		return fmt.Errorf("attempts so far: %v", recv.summary())
	}, "the delivery after the kill (asynq lease recovery)")
	t.Logf("SIGKILL -> delivered: %s (restart -> delivered: %s; the asynq recoverer's minute)",
		deliveredAt.Sub(killedAt).Round(10*time.Millisecond), deliveredAt.Sub(restartedAt).Round(10*time.Millisecond))

	// Once the queue says completed and nothing else, no further attempt can
	// come: the receiver's record is final.
	second.waitSettled(t)
	got := recv.snapshot()
	if len(got) != 2 {
		t.Fatalf("attempts %v, want 2: the one interrupted by the kill and the one after recovery", recv.summary())
	}
	if got[0].Status != 0 {
		t.Errorf("the held attempt ended with status %d, want 0 (the worker's connection died with it)", got[0].Status)
	}
	checkDeliveredOnce(t, got, webhookID, "r-killed-worker")
}

// TestHooksKilledWithUnacknowledgedOutboxEntry SIGKILLs bin/hooks while its
// relay holds an outbox entry it has read and not acknowledged; the next
// bin/hooks claims it (HOOK_CLAIM_IDLE_MS) and delivers it once.
//
// The window between the relay's read and its acknowledgement lasts one
// enqueue round trip. To kill inside it deterministically, asynq's queue
// registry (asynq:queues) is made a string first: asynq's enqueue begins with
// an SADD to it, which then fails with WRONGTYPE before anything is written,
// so the relay keeps the entry pending and retries. The key is restored
// after the kill, before the new process starts.
func TestHooksKilledWithUnacknowledgedOutboxEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := redistest.Start(t)
	secret, key := newHookSecret(t)
	recv := newKillReceiver(t, key, false)
	webhookID := recordOffline(t, store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet)), "r-killed-relay")
	const asynqQueues = "asynq:queues" // asynq internal/base.AllQueues
	if err := rdb.Set(ctx, asynqQueues, "not a set", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// Its relay keeps failing, so it never stays ready: wait for the entry.
	first := startHooksNoWait(t, "hooks #1", srv, recv.srv.URL, secret)
	owner := "-" + strconv.Itoa(first.proc.cmd.Process.Pid) + "-" // consumer name host-pid-random
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if !first.proc.running() {
			t.Fatalf("hooks #1 exited with %d", first.proc.code)
		}
		p, err := rdb.XPending(ctx, store.OutboxKey(), "hooks").Result()
		if err != nil {
			return err
		}
		for consumer, n := range p.Consumers {
			if strings.Contains(consumer, owner) && n == 1 && p.Count == 1 {
				return nil
			}
		}
		return fmt.Errorf("pending %d, consumers %v", p.Count, p.Consumers)
	}, "the offline entry pending with hooks #1")
	first.proc.signal(syscall.SIGKILL)
	if code := first.proc.wait(5 * time.Second); code != -1 {
		t.Fatalf("hooks #1 exited with %d, want killed by SIGKILL (-1)", code)
	}
	killedAt := time.Now()
	if n := len(recv.snapshot()); n != 0 {
		t.Fatalf("the receiver got %d requests before the kill, want none", n)
	}
	if err := rdb.Del(ctx, asynqQueues).Err(); err != nil {
		t.Fatal(err)
	}

	second := startHooks(t, "hooks #2", srv, recv.srv.URL, secret)
	var deliveredAt time.Time
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if at, ok := recv.delivered(webhookID); ok {
			deliveredAt = at
			return nil
		}
		return fmt.Errorf("attempts so far: %v", recv.summary())
	}, "the claimed entry delivered")
	t.Logf("SIGKILL -> delivered: %s (HOOK_CLAIM_IDLE_MS=%s)", deliveredAt.Sub(killedAt).Round(10*time.Millisecond), claimIdleMs)
	second.waitSettled(t)
	if p, err := rdb.XPending(ctx, store.OutboxKey(), "hooks").Result(); err != nil || p.Count != 0 {
		t.Errorf("outbox pending after delivery: %+v, %v; want none", p, err)
	}
	got := recv.snapshot()
	if len(got) != 1 {
		t.Fatalf("attempts %v, want exactly 1", recv.summary())
	}
	checkDeliveredOnce(t, got, webhookID, "r-killed-relay")
}

// claimIdleMs is short so that the second process claims the dead relay's
// entry within a second; the dedup retention (24 h default) stays far above
// the 10 x claim idle that validation asks for.
const claimIdleMs = "500"

// hooksProc is one bin/hooks.
type hooksProc struct {
	proc *proc
	url  string
}

// startHooks runs bin/hooks against srv, delivering runner.offline to
// hookURL, and waits until it is ready (its relay reads the outbox).
func startHooks(t *testing.T, name string, srv *redistest.Server, hookURL, secret string) *hooksProc {
	t.Helper()
	h := startHooksNoWait(t, name, srv, hookURL, secret)
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if !h.proc.running() {
			t.Fatalf("%s exited with %d", name, h.proc.code)
		}
		resp, err := http.Get(h.url + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready: %s", resp.Status)
		}
		return nil
	}, "%s", name+" ready")
	return h
}

// startHooksNoWait is startHooks for a process that is not expected to
// become ready (its relay keeps failing).
func startHooksNoWait(t *testing.T, name string, srv *redistest.Server, hookURL, secret string) *hooksProc {
	t.Helper()
	port := freePort(t)
	h := &hooksProc{url: "http://127.0.0.1:" + strconv.Itoa(port)}
	h.proc = startProc(t, name, binary(t, "hooks"), map[string]string{
		"REDIS_URL": srv.URL(), "PORT": strconv.Itoa(port), "LOG_LEVEL": "info",
		"RUNNER_OFFLINE_HOOK": hookURL, "RUNNER_OFFLINE_HOOK_SECRET": secret, "HOOK_EVENTS": wire.EventRunnerOffline,
		"HOOK_BACKOFF_BASE_MS": "200", "HOOK_BACKOFF_MAX_MS": "1000", "HOOK_POLL_INTERVAL_MS": "50",
		"HOOK_RETRY_CHECK_MS": "100", "HOOK_CLAIM_IDLE_MS": claimIdleMs,
	})
	return h
}

// waitSettled waits until the service's own metrics show the delivery task
// completed, nothing else in the queue and nothing pending in the outbox.
func (h *hooksProc) waitSettled(t *testing.T) {
	t.Helper()
	want := map[string]float64{
		`yggdrasil_hooks_queue_tasks{state="completed"}`: 1,
		`yggdrasil_hooks_queue_tasks{state="active"}`:    0,
		`yggdrasil_hooks_queue_tasks{state="pending"}`:   0,
		`yggdrasil_hooks_queue_tasks{state="retry"}`:     0,
		`yggdrasil_hooks_queue_tasks{state="scheduled"}`: 0,
		`yggdrasil_hooks_queue_tasks{state="archived"}`:  0,
		`yggdrasil_hooks_outbox_pending`:                 0,
	}
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		got, err := scrape(h.url + "/metrics")
		if err != nil {
			return err
		}
		for series, v := range want {
			if g, ok := got[series]; !ok || g != v {
				return fmt.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
			}
		}
		return nil
	}, "the queue settled (one completed task, nothing else)")
}

// scrape reads a Prometheus text page into series -> value.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// newHookSecret returns a fresh Standard Webhooks secret and its key.
func newHookSecret(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// recordOffline registers a runner and deregisters it through the store,
// which records its runner.offline event in the outbox, and returns the
// webhook-id that event must be delivered with.
func recordOffline(t *testing.T, st *store.Store, runnerID string) string {
	t.Helper()
	ctx := context.Background()
	if _, _, err := st.Register(ctx, store.RegisterParams{
		ID: runnerID, Name: runnerID, Version: "1.0.0", Realm: "e2e", Capacity: 1, TokenHash: "h", LeaseTTL: time.Minute,
	}); err != nil {
		t.Fatalf("register %s: %v", runnerID, err)
	}
	if _, err := st.Deregister(ctx, runnerID, 0, "e2e kill test"); err != nil {
		t.Fatalf("deregister %s: %v", runnerID, err)
	}
	entries, err := st.Redis().XRange(ctx, store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Values["type"] == wire.EventRunnerOffline {
			return "msg_" + e.ID
		}
	}
	t.Fatalf("no %s entry in the outbox: %v", wire.EventRunnerOffline, entries)
	return ""
}

// attempt is one request the receiver got.
type attempt struct {
	ID     string
	At     time.Time
	SigErr error // nil when the signature verified with the receiver's key
	Type   string
	Runner string
	Status int // the status answered; 0 when the worker was gone first
}

func (a attempt) String() string {
	return fmt.Sprintf("{%s status=%d sigErr=%v}", a.ID, a.Status, a.SigErr)
}

// killReceiver is a webhook endpoint that verifies every request with its
// own HMAC. With hold, it keeps the first request open until releaseHeld
// (the test calls it once the worker is dead) and then records how that
// request ended; every other request gets 204.
type killReceiver struct {
	srv      *httptest.Server
	key      []byte
	hold     bool
	held     chan struct{}
	release  chan struct{}
	relOnce  sync.Once
	mu       sync.Mutex
	n        int
	attempts []attempt
}

func newKillReceiver(t *testing.T, key []byte, hold bool) *killReceiver {
	h := &killReceiver{key: key, hold: hold, held: make(chan struct{}), release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.releaseHeld()
		h.srv.Close()
	})
	return h
}

func (h *killReceiver) releaseHeld() { h.relOnce.Do(func() { close(h.release) }) }

func (h *killReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	a := attempt{ID: r.Header.Get("webhook-id"), At: time.Now()}
	if err == nil {
		a.SigErr = verifyWebhook(h.key, a.ID, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body)
		var ev wire.Event
		var data wire.RunnerEventData
		if err := json.Unmarshal(body, &ev); err == nil {
			_ = json.Unmarshal(ev.Data, &data)
		}
		a.Type, a.Runner = ev.Type, data.Runner.ID
	}
	h.mu.Lock()
	h.n++
	first := h.n == 1
	h.mu.Unlock()
	switch {
	case err != nil: // the body did not arrive whole: the worker died sending it
	case h.hold && first:
		close(h.held)
		<-h.release
		// The worker is dead: its connection closes and the request's
		// context ends. No answer can reach anyone.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
			a.Status = http.StatusServiceUnavailable // never expected: the killed worker's connection stayed open
			w.WriteHeader(a.Status)
		}
	default:
		a.Status = http.StatusNoContent
	}
	h.mu.Lock()
	h.attempts = append(h.attempts, a)
	h.mu.Unlock()
	if a.Status == http.StatusNoContent {
		w.WriteHeader(a.Status)
	}
}

// delivered reports when the receiver first answered 2xx for id.
func (h *killReceiver) delivered(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.attempts {
		if a.ID == id && a.Status/100 == 2 {
			return a.At, true
		}
	}
	return time.Time{}, false
}

func (h *killReceiver) snapshot() []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]attempt(nil), h.attempts...)
}

func (h *killReceiver) summary() string { return fmt.Sprint(h.snapshot()) }

// verifyWebhook checks a Standard Webhooks signature with its own HMAC, not
// the service's signing code.
func verifyWebhook(key []byte, id, ts, header string, body []byte) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %w", ts, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %s off", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q verifies", header)
}

// checkDeliveredOnce asserts that every attempt was the expected event, with
// one webhook-id and a valid signature, and that exactly one got a 2xx.
func checkDeliveredOnce(t *testing.T, got []attempt, webhookID, runnerID string) {
	t.Helper()
	ok := 0
	for i, a := range got {
		if a.ID != webhookID {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, a.ID, webhookID)
		}
		if a.SigErr != nil {
			t.Errorf("attempt %d: signature: %v", i+1, a.SigErr)
		}
		if a.Type != wire.EventRunnerOffline || a.Runner != runnerID {
			t.Errorf("attempt %d: %s of runner %q, want %s of %s", i+1, a.Type, a.Runner, wire.EventRunnerOffline, runnerID)
		}
		if a.Status/100 == 2 {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%s answered 2xx %d times, want exactly once: %v", webhookID, ok, got)
	}
}
