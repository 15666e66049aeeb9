package app_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// A body over the limit gets a 413 problem, never a reset connection: 18
// clients send 2 MiB to a 1 MiB limit at once, with a Content-Length and
// chunked.
func TestOversizedBodiesGet413NotAReset(t *testing.T) {
	e := start(t, authCfg, func(c *config.API) { c.BodyLimitBytes = 1 << 20 })
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "r1"})
	big := bytes.Repeat([]byte("a"), 2<<20)
	for _, chunked := range []bool{false, true} {
		var wg sync.WaitGroup
		errs := make(chan string, 18)
		for range 18 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body io.Reader = bytes.NewReader(big)
				if chunked {
					body = io.MultiReader(bytes.NewReader(big)) // no length: sent chunked
				}
				req, _ := http.NewRequest("POST", e.base+"/runners/heartbeat", body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+reg.Token)
				res, err := e.http.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode != 413 || res.Header.Get("Content-Type") != problem.ContentType ||
					!strings.Contains(string(b), problem.TypePayloadTooLarge) {
					errs <- res.Status + " " + res.Header.Get("Content-Type") + " " + string(b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Errorf("chunked=%v: %s", chunked, msg)
		}
	}
	// A chunked body within the limit is read as usual.
	req, _ := http.NewRequest("POST", e.base+"/runners/heartbeat", io.MultiReader(strings.NewReader(`{"runnerId":"r1"}`)))
	req.Header.Set("Authorization", "Bearer "+reg.Token)
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("chunked heartbeat within the limit = %d", res.StatusCode)
	}
}

func TestUnknownMethodIs405ProblemWithAllow(t *testing.T) {
	e := start(t)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/health", "GET"},
		{"PUT", "/runners/heartbeat", "POST"},
		{"BREW", "/health", "GET"},
	} {
		r := e.do(c.method, c.path, "", "")
		if r.status != 405 || r.header.Get("Content-Type") != problem.ContentType || r.problem(t).Type != problem.TypeMethodNotAllowed {
			t.Errorf("%s %s = %d %s %s", c.method, c.path, r.status, r.header.Get("Content-Type"), r.body)
			continue
		}
		if !strings.Contains(r.header.Get("Allow"), c.allow) {
			t.Errorf("%s %s: Allow = %q, want it to name %s", c.method, c.path, r.header.Get("Allow"), c.allow)
		}
	}
}

func TestMetricsTokenGuardsMetrics(t *testing.T) {
	const token = "metrics-token-0123456789"
	e := start(t, func(c *config.API) { c.MetricsToken = token })
	if r := e.do("GET", "/metrics", "", ""); r.status != 401 || r.problem(t).Type != problem.TypeUnauthorized {
		t.Fatalf("/metrics without the token = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/metrics", "wrong-token-0123456789", ""); r.status != 401 {
		t.Fatalf("/metrics with a wrong token = %d", r.status)
	}
	if r := e.do("GET", "/metrics", token, ""); r.status != 200 || !strings.Contains(string(r.body), "yggdrasil_") {
		t.Fatalf("/metrics with the token = %d %.200s", r.status, r.body)
	}
	// Unset: open as before.
	open := start(t)
	if r := open.do("GET", "/metrics", "", ""); r.status != 200 {
		t.Fatalf("/metrics without METRICS_TOKEN = %d", r.status)
	}
}
