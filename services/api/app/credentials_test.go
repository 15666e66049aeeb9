package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func strictRunnerAuth(c *config.API) { c.RunnerAuth = []string{config.RunnerAuthToken} }

// Registering the id of a live runner needs that runner's credential: its
// token, or an API key where RUNNER_AUTH lets keys act for runners. Anyone
// else gets 409 runner-live and changes nothing; an offline or unknown
// runner is anyone's (any key that may register) to register.
func TestReRegistrationCannotHijackALiveRunner(t *testing.T) {
	body := func(id string) string { return `{"runnerId":"` + id + `","name":"n","version":"1.0.0"}` }
	heartbeat := func(e *env, cred, id string) int {
		return e.do("POST", "/runners/heartbeat", cred, `{"runnerId":"`+id+`"}`).status
	}
	refused := func(t *testing.T, e *env, cred, id string) {
		t.Helper()
		before := snapshot(t, e.rdb)
		r := e.do("POST", "/runners/register", cred, body(id))
		if r.status != 409 || r.problem(t).Type != problem.TypeRunnerLive {
			t.Fatalf("register live %s = %d %s, want 409 runner-live", id, r.status, r.body)
		}
		if after := snapshot(t, e.rdb); after != before {
			t.Fatal("a refused registration changed the state")
		}
	}
	registered := func(t *testing.T, e *env, cred, id string) wire.RegisterRunnerResponse {
		t.Helper()
		r := e.do("POST", "/runners/register", cred, body(id))
		if r.status != 201 {
			t.Fatalf("register %s = %d %s, want 201", id, r.status, r.body)
		}
		var out wire.RegisterRunnerResponse
		mustDecode(t, r.body, &out)
		if out.ID != id || out.Token == "" {
			t.Fatalf("registered %+v", out)
		}
		return out
	}

	t.Run("default", func(t *testing.T) {
		e := start(t, authCfg)
		live := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "live"})
		refused(t, e, opKey, "live") // an operator key is not the runner's credential
		if heartbeat(e, live.Token, "live") != 200 {
			t.Fatal("the live runner's token stopped working after a refused registration")
		}
		again := registered(t, e, live.Token, "live") // its own token
		if heartbeat(e, live.Token, "live") != 401 || heartbeat(e, again.Token, "live") != 200 {
			t.Fatal("re-registering with the token did not rotate it")
		}
		registered(t, e, apiKey, "live") // an API key acts for any runner here
		registered(t, e, opKey, "unknown-by-operator")
		registered(t, e, apiKey, "unknown-by-key")
	})

	t.Run("RUNNER_AUTH=token", func(t *testing.T) {
		e := start(t, authCfg, strictRunnerAuth)
		live := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "live"})
		other := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "other"})
		refused(t, e, apiKey, "live")
		refused(t, e, opKey, "live")
		if r := e.do("POST", "/runners/register", other.Token, body("live")); r.status != 403 {
			t.Fatalf("another runner's token = %d, want 403", r.status)
		}
		if r := e.do("POST", "/runners/register", live.Token, `{"name":"n","version":"1.0.0"}`); r.status != 403 {
			t.Fatalf("a token registering a new runner = %d, want 403", r.status)
		}
		again := registered(t, e, live.Token, "live")
		// offline: any key that may register
		if r := e.do("POST", "/runners/offline", again.Token, `{"runnerId":"live"}`); r.status != 200 {
			t.Fatalf("offline = %d %s", r.status, r.body)
		}
		back := registered(t, e, apiKey, "live")
		if heartbeat(e, back.Token, "live") != 200 {
			t.Fatal("heartbeat after re-registration")
		}
		registered(t, e, apiKey, "unknown")
	})

	t.Run("unreachable is live", func(t *testing.T) {
		e := start(t, authCfg, strictRunnerAuth)
		q := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "q"})
		quarantine(t, e, "q")
		refused(t, e, apiKey, "q")
		registered(t, e, q.Token, "q")
	})
}

// quarantine makes runner id unreachable the way the sweeper does: its
// lease runs out and the mass-expiry gate holds it.
func quarantine(t *testing.T, e *env, id string) {
	t.Helper()
	ctx := context.Background()
	now, err := e.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	e.rdb.PExpireAt(ctx, store.LeaseKey(id), now.Add(10*time.Millisecond))
	e.rdb.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: float64(now.Add(10 * time.Millisecond).UnixMilli()), Member: id})
	st := store.New(store.Wrap(e.rdb), store.OptionsFrom(e.cfg.Fleet))
	testkit.Eventually(t, 5*time.Second, func() bool {
		d, err := st.SweepDue(ctx, 10, store.MassExpiryPolicy{Percent: 1, Min: 1, Window: time.Minute})
		return err == nil && len(d.Quarantined) == 1
	}, "runner %s quarantined", id)
}

// Dispatch to a runner that reported draining, or that is offline, is 409
// with a problem type that says which.
func TestDispatchRefusesDrainingAndOfflineRunners(t *testing.T) {
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "d"})
	dispatch := func() resp { return e.do("POST", "/runners/d/tasks", opKey, `{"type":"shell"}`) }
	beat := func(status wire.RunnerStatus) {
		t.Helper()
		if r := e.do("POST", "/runners/heartbeat", reg.Token, mustJSON(wire.HeartbeatPayload{RunnerID: "d", Status: status})); r.status != 200 {
			t.Fatalf("heartbeat %s = %d %s", status, r.status, r.body)
		}
	}
	want := func(status int, typ string) {
		t.Helper()
		r := dispatch()
		if r.status != status || (typ != "" && r.problem(t).Type != typ) {
			t.Fatalf("dispatch = %d %s, want %d %s", r.status, r.body, status, typ)
		}
	}
	want(201, "")
	beat(wire.RunnerDraining)
	before := snapshot(t, e.rdb)
	want(409, problem.TypeRunnerDraining)
	if snapshot(t, e.rdb) != before {
		t.Fatal("a refused dispatch changed the state")
	}
	beat(wire.RunnerIdle)
	want(201, "")
	if r := e.do("POST", "/runners/offline", reg.Token, `{"runnerId":"d"}`); r.status != 200 {
		t.Fatalf("offline = %d", r.status)
	}
	want(409, problem.TypeRunnerOffline)
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "d"})
	want(201, "")
}

// Authorization and X-API-Key: either carries any credential; both with the
// same one is fine; both with different ones is 400 conflicting-credentials.
func TestCredentialHeaders(t *testing.T) {
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "h"})
	hb := `{"runnerId":"h"}`
	for _, c := range []struct {
		name   string
		bearer string
		hdr    []string
		status int
	}{
		{"token in X-API-Key", "", []string{"X-API-Key", reg.Token}, 200},
		{"key in X-API-Key", "", []string{"X-API-Key", apiKey}, 200},
		{"the same in both", apiKey, []string{"X-API-Key", apiKey}, 200},
		{"different", apiKey, []string{"X-API-Key", reg.Token}, 400},
		{"different, one invalid", "not-a-key-at-all-xxxxxxxx", []string{"X-API-Key", apiKey}, 400},
		{"invalid in X-API-Key", "", []string{"X-API-Key", "not-a-key-at-all-xxxxxxxx"}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", "/runners/heartbeat", c.bearer, hb, c.hdr...)
			if r.status != c.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, c.status)
			}
			if c.status == 400 && r.problem(t).Type != problem.TypeConflictingCredentials {
				t.Fatalf("400 body %s", r.body)
			}
		})
	}
}

// A key shorter than 16 characters (the original README's API_KEYS example)
// starts the api outside production, with one loud warning that never shows
// the key; without ADMIN_API_KEYS the API key is an operator key too, with a
// warning, and it acts as the runner.
func TestShortKeysStartOutsideProductionWithAWarning(t *testing.T) {
	const short = "my-secret-key"
	var logs testkit.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, rdb := redistest.Start(t)
	e := startWith(t, srv, rdb, log, nil, func(c *config.API) { c.APIKeys = []string{short} })
	testkit.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "api listening") }, "api listening")

	reg := e.register(short, wire.RegisterRunnerPayload{})
	if r := e.do("POST", "/runners/heartbeat", short, `{"runnerId":"`+reg.ID+`"}`); r.status != 200 {
		t.Fatalf("heartbeat with the short key = %d %s", r.status, r.body)
	}
	task := e.do("POST", "/runners/"+reg.ID+"/tasks", short, `{"type":"shell"}`) // operator: ADMIN_API_KEYS is empty
	if task.status != 201 {
		t.Fatalf("dispatch with the short key = %d %s", task.status, task.body)
	}
	var tk wire.RunnerTask
	mustDecode(t, task.body, &tk)
	for _, st := range []string{"running", "succeeded"} {
		if r := e.do("PATCH", "/runners/"+reg.ID+"/tasks/"+tk.ID, short, `{"status":"`+st+`"}`); r.status != 200 {
			t.Fatalf("task %s with the short key = %d %s", st, r.status, r.body)
		}
	}

	out := logs.String()
	if strings.Contains(out, short) {
		t.Fatalf("the log shows the key:\n%s", out)
	}
	for _, want := range []string{"API_KEYS: 1 key(s) shorter than 16 characters", "ADMIN_API_KEYS is empty: every API_KEYS key is an operator key too"} {
		if n := strings.Count(out, want); n != 1 {
			t.Fatalf("warning %q logged %d times, want once:\n%s", want, n, out)
		}
	}
	if !strings.Contains(out, "level=WARN") {
		t.Fatalf("no WARN line:\n%s", out)
	}
}

// In production a short key, or an empty ADMIN_API_KEYS, stops the api
// before it serves; the message names the variable, never the key.
func TestProductionRefusesShortKeysAndMissingOperatorKeys(t *testing.T) {
	_, rdb := redistest.Start(t)
	for _, c := range []struct {
		name string
		mod  func(*config.API)
		want []string
	}{
		{"short API key", func(c *config.API) { c.APIKeys = []string{"my-secret-key"}; c.AdminAPIKeys = []string{opKey} }, []string{"API_KEYS: 1 key(s) shorter than 16"}},
		{"short operator key", func(c *config.API) { c.APIKeys = []string{apiKey}; c.AdminAPIKeys = []string{"my-secret-key"} }, []string{"ADMIN_API_KEYS: 1 key(s) shorter than 16"}},
		{"no operator keys", func(c *config.API) { c.APIKeys = []string{apiKey} }, []string{"ADMIN_API_KEYS: NODE_ENV=production requires operator keys"}},
		{"no keys at all", func(*config.API) {}, []string{"ADMIN_API_KEYS: NODE_ENV=production requires operator keys"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.DefaultAPI()
			cfg.NodeEnv = "production"
			c.mod(&cfg)
			_, err := app.New(cfg, store.Wrap(rdb), slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("the api accepted the configuration")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "my-secret-key") {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
