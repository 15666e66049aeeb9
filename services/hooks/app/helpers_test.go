package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// testSecret is the Standard Webhooks example secret (24 bytes).
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// testConfig is the default configuration with every interval short, so
// retries and claims happen within a test.
func testConfig(urls ...string) config.Hooks {
	cfg := config.DefaultHooks()
	cfg.HookURLs = urls
	cfg.HookSecret = testSecret
	cfg.HookEvents = []string{"runner.offline"}
	cfg.HookTimeoutMs = 2000
	cfg.HookBackoffBaseMs = 10
	cfg.HookBackoffMaxMs = 40
	cfg.HookPollIntervalMs = 10
	cfg.HookRetryCheckMs = 50
	cfg.HookClaimIdleMs = 300
	cfg.HookDedupRetentionMs = 10 * 60 * 1000
	cfg.HookShutdownTimeoutMs = 300
	cfg.HookMaxRetries = 5
	cfg.AdminAPIKeys = []string{"test-admin-key-0123456789"}
	return cfg
}

// instance is one running hooks service.
type instance struct {
	addr    string
	metrics *metrics.Metrics
	run     *testkit.Running
}

// start runs the service until stop (or the end of the test) and waits
// until it is ready.
func start(t testing.TB, cfg config.Hooks, rdb redis.UniversalClient, opt options) *instance {
	t.Helper()
	inst := startNoWait(t, cfg, rdb, opt)
	testkit.Eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get("http://" + inst.addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "service ready")
	return inst
}

// startNoWait runs the service without waiting for it to be ready.
func startNoWait(t testing.TB, cfg config.Hooks, rdb redis.UniversalClient, opt options) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opt.listener = ln
	inst := &instance{addr: ln.Addr().String()}
	mch := make(chan *metrics.Metrics, 1)
	opt.metrics = func(m *metrics.Metrics) { mch <- m }
	inst.run = testkit.Start(t, func(ctx context.Context) error { return run(ctx, cfg, store.Wrap(rdb), testLogger(), opt) })
	select {
	case inst.metrics = <-mch:
	case <-inst.run.Done():
		t.Fatalf("hooks did not start: %v", inst.run.Err())
	}
	return inst
}

// hit is one request a receiver got.
type hit struct {
	id, ts, sig string
	body        []byte
	at          time.Time
}

// receiver is an httptest server recording every request; respond decides
// the status of the n-th request (n from 1) for a webhook-id.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	perID   map[string]int
	respond func(n int, w http.ResponseWriter, r *http.Request) int
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request) int) *receiver {
	rc := &receiver{perID: map[string]int{}, respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hit{id: r.Header.Get("webhook-id"), ts: r.Header.Get("webhook-timestamp"), sig: r.Header.Get("webhook-signature"), body: body, at: time.Now()}
		rc.mu.Lock()
		rc.hits = append(rc.hits, h)
		rc.perID[h.id]++
		n := rc.perID[h.id]
		rc.mu.Unlock()
		status := http.StatusNoContent
		if rc.respond != nil {
			status = rc.respond(n, w, r)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) snapshot() ([]hit, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	per := make(map[string]int, len(rc.perID))
	for k, v := range rc.perID {
		per[k] = v
	}
	return append([]hit(nil), rc.hits...), per
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

// verify checks a Standard Webhooks signature independently of the library
// the service uses: HMAC-SHA256 over "id.timestamp.body" with the base64
// part of the secret, compared with every "v1," signature in the header.
func verify(secret string, h hit) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.id, h.ts, h.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(h.sig) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches %s", h.sig, want)
}

// registerRunners registers n runners with ids prefix-0..n-1.
func registerRunners(t testing.TB, s *store.Store, prefix string, n int, ttl time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
		if _, _, err := s.Register(context.Background(), store.RegisterParams{
			ID: ids[i], Name: "name-" + ids[i], Version: "1.0.0", Realm: "eu", Capacity: 1, TokenHash: "h", LeaseTTL: ttl,
			ActsForAnyRunner: true,
		}); err != nil {
			t.Fatalf("register %s: %v", ids[i], err)
		}
	}
	return ids
}

func outboxStats(t testing.TB, rdb redis.UniversalClient) store.OutboxStats {
	t.Helper()
	st, err := store.NewOutboxReader(store.Wrap(rdb), ConsumerGroup, "test-observer").Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testLogger() *slog.Logger {
	if os.Getenv("HOOKS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return logging.Discard()
}
