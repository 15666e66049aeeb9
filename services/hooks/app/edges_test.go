package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func get(t *testing.T, method, url, key string) (*http.Response, wire.Problem) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var p wire.Problem
	if res.Header.Get("Content-Type") == problem.ContentType {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("problem body %q: %v", b, err)
		}
	}
	return res, p
}

func TestHooksHTTPEdges(t *testing.T) {
	srv, rdb := redistest.Start(t)
	cfg := testConfig()
	cfg.MetricsToken = "metrics-token-0123456789"
	inst := start(t, cfg, rdb, options{})
	base := "http://" + inst.addr
	for _, c := range []struct {
		method, path string
		status       int
		typ, allow   string
	}{
		{"DELETE", "/health", 405, problem.TypeMethodNotAllowed, "GET"},
		{"BREW", "/deliveries/archived/retry", 405, problem.TypeMethodNotAllowed, "POST"},
		{"GET", "/nope", 404, problem.TypeNotFound, ""},
		{"GET", "/deliveries/../health", 404, problem.TypeNotFound, ""},
		{"GET", "/deliveries/archived/%2e%2e/archived", 404, problem.TypeNotFound, ""},
		{"GET", "/metrics", 401, problem.TypeUnauthorized, ""},
	} {
		res, p := get(t, c.method, base+c.path, "")
		if res.StatusCode != c.status || p.Type != c.typ {
			t.Errorf("%s %s = %d %q, want %d %s", c.method, c.path, res.StatusCode, p.Type, c.status, c.typ)
		}
		if c.allow != "" && !strings.Contains(res.Header.Get("Allow"), c.allow) {
			t.Errorf("%s %s: Allow = %q", c.method, c.path, res.Header.Get("Allow"))
		}
	}
	if res, _ := get(t, "GET", base+"/metrics", cfg.MetricsToken); res.StatusCode != 200 {
		t.Errorf("/metrics with the token = %d", res.StatusCode)
	}
	srv.Stop()
	for range 3 {
		t0 := time.Now()
		res, _ := get(t, "GET", base+"/ready", "")
		if d := time.Since(t0); res.StatusCode != 503 || d > 250*time.Millisecond {
			t.Fatalf("/ready with Redis down = %d after %s, want 503 within 250 ms", res.StatusCode, d)
		}
	}
}

// A webhook URL carries its secret in the path and the query (Slack-style):
// no log line, at any level, may show either, through a retried 500 and a
// network error alike.
func TestWebhookURLPathAndQueryNeverLogged(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close() // nothing listens: connection refused, a net/http error quoting the URL
	const pathSecret, querySecret = "XOXB-PATH-SECRET", "QUERY-SECRET"
	urls := []string{
		recv.URL + "/services/T000/" + pathSecret + "?token=" + querySecret,
		"http://" + deadAddr + "/hooks/" + pathSecret + "?sig=" + querySecret,
	}
	cfg := testConfig(urls...)
	cfg.HookMaxRetries = 2
	var logs testkit.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mch := make(chan *metrics.Metrics, 1)
	run := testkit.Start(t, func(ctx context.Context) error {
		return run(ctx, cfg, store.Wrap(rdb), log, options{listener: ln, metrics: func(m *metrics.Metrics) { mch <- m }})
	})
	m := <-mch
	registerRunners(t, s, "r", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "r-0000", 0, ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() bool {
		return delivered(m) == 1 &&
			testutil.ToFloat64(m.Deliveries.WithLabelValues(metrics.OutcomeExhausted, "network")) == 1
	}, "one delivered after retries, one exhausted on network errors")
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "will retry") || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("the retries were not logged (the test would prove nothing):\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, pathSecret) || strings.Contains(line, querySecret) || strings.Contains(line, "/services/") || strings.Contains(line, "/hooks/") {
			t.Errorf("a log line carries the webhook URL's path or query: %s", line)
		}
	}
}
