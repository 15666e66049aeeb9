package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

const (
	apiKey = "api-key-0123456789abcdef"
	opKey  = "operator-key-0123456789abcdef"
)

// env is one API server on 127.0.0.1 over a private redis-server.
type env struct {
	t     testing.TB
	redis *redistest.Server
	rdb   *redis.Client
	base  string
	cfg   config.API
	http  *http.Client
	srv   *app.Server
}

// authCfg turns auth on with one API key and one operator key.
func authCfg(c *config.API) {
	c.APIKeys = []string{apiKey}
	c.AdminAPIKeys = []string{opKey}
}

func start(t testing.TB, mods ...func(*config.API)) *env {
	t.Helper()
	srv, rdb := redistest.Start(t)
	return startOn(t, srv, rdb, mods...)
}

// startOn starts one more API replica over an existing redis.
func startOn(t testing.TB, srv *redistest.Server, rdb *redis.Client, mods ...func(*config.API)) *env {
	t.Helper()
	return startWith(t, srv, rdb, logging.Discard(), nil, mods...)
}

// startWith is startOn with a logger and New's options (tracing).
func startWith(t testing.TB, srv *redistest.Server, rdb *redis.Client, log *slog.Logger, opts []app.Option, mods ...func(*config.API)) *env {
	t.Helper()
	cfg := config.DefaultAPI()
	cfg.LongPollMaxMs = 5000
	cfg.MetricsCacheMs = 1
	for _, m := range mods {
		m(&cfg)
	}
	s, err := app.New(cfg, store.Wrap(rdb), log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The test's own transport, so that its keep-alive connections close
	// with the test (after the server stopped) instead of idling in
	// http.DefaultTransport, where goleak sees them.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	testkit.Serve(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	e := &env{t: t, redis: srv, rdb: rdb, base: "http://" + ln.Addr().String(), cfg: cfg,
		http: &http.Client{Timeout: 20 * time.Second, Transport: tr}, srv: s}
	return e
}

// client is the typed client over the env's transport, with the client's
// default 30 s timeout.
func (e *env) client(cred string) *client.Client {
	return client.New(e.base, cred, client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: e.http.Transport}))
}

// resp is a raw answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) problem(t testing.TB) wire.Problem {
	t.Helper()
	var p wire.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	return p
}

func (e *env) do(method, path, cred, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) register(cred string, p wire.RegisterRunnerPayload) wire.RegisterRunnerResponse {
	e.t.Helper()
	if p.Name == "" {
		p.Name = "runner"
	}
	if p.Version == "" {
		p.Version = "1.0.0"
	}
	out, err := e.client(cred).Register(context.Background(), p)
	if err != nil {
		e.t.Fatalf("register: %v", err)
	}
	return out
}

// snapshot dumps every key with its value and TTL presence, to prove that a
// rejected request changed nothing.
func snapshot(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "=" + v + "\n")
	}
	return b.String()
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
