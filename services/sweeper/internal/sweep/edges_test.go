package sweep

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func raw(t *testing.T, h testHTTP, method, path, key string) (*http.Response, wire.Problem) {
	t.Helper()
	req, err := http.NewRequest(method, h.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	// Never follow a redirect: a 307 must show as one.
	c := *h.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var p wire.Problem
	if res.Header.Get("Content-Type") == problem.ContentType {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s %s: problem body %q: %v", method, path, b, err)
		}
	}
	return res, p
}

func TestSweeperHTTPEdges(t *testing.T) {
	srv, rdb := redistest.Start(t)
	cfg := testConfig()
	cfg.MetricsToken = "metrics-token-0123456789"
	svc, err := New(cfg, store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	h := httpServer(t, svc)

	for _, c := range []struct {
		method, path string
		status       int
		typ, allow   string
	}{
		{"DELETE", "/health", 405, problem.TypeMethodNotAllowed, "GET"},
		{"BREW", "/quarantine/release", 405, problem.TypeMethodNotAllowed, "POST"},
		{"GET", "/nope", 404, problem.TypeNotFound, ""},
		{"GET", "/quarantine/../health", 404, problem.TypeNotFound, ""},
		{"GET", "//health", 404, problem.TypeNotFound, ""},
		{"GET", "/metrics", 401, problem.TypeUnauthorized, ""},
	} {
		res, p := raw(t, h, c.method, c.path, "")
		if res.StatusCode != c.status || p.Type != c.typ {
			t.Errorf("%s %s = %d %q, want %d %s", c.method, c.path, res.StatusCode, p.Type, c.status, c.typ)
		}
		if c.allow != "" && !strings.Contains(res.Header.Get("Allow"), c.allow) {
			t.Errorf("%s %s: Allow = %q", c.method, c.path, res.Header.Get("Allow"))
		}
	}
	if res, _ := raw(t, h, "GET", "/metrics", cfg.MetricsToken); res.StatusCode != 200 {
		t.Errorf("/metrics with the token = %d", res.StatusCode)
	}

	// /ready answers 503 within 250 ms while Redis is down.
	srv.Stop()
	for range 3 {
		t0 := time.Now()
		res, p := raw(t, h, "GET", "/ready", "")
		if d := time.Since(t0); res.StatusCode != 503 || p.Type != problem.TypeRedisUnavailable || d > 250*time.Millisecond {
			t.Fatalf("/ready with Redis down = %d %s after %s", res.StatusCode, p.Type, d)
		}
	}
}
