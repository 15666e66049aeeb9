package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestAuthEveryRouteEveryRole calls every route with every kind of caller,
// in both RUNNER_AUTH modes and with the credential in either header.
// Under RUNNER_AUTH=token an API key is refused (403) on every runner route
// (heartbeat, update, offline, the runner's reads, both task updates) where
// the default lets it act as the runner.
func TestAuthEveryRouteEveryRole(t *testing.T) {
	for _, mode := range []struct {
		name       string
		runnerAuth []string
		keyActs    bool
	}{
		{"RUNNER_AUTH=token,api-key", []string{"token", "api-key"}, true},
		{"RUNNER_AUTH=token", []string{"token"}, false},
	} {
		for _, header := range []string{"Authorization", "X-API-Key"} {
			t.Run(mode.name+" in "+header, func(t *testing.T) {
				authEveryRoute(t, header, mode.keyActs, func(c *config.API) { authCfg(c); c.RunnerAuth = mode.runnerAuth })
			})
		}
	}
}

func authEveryRoute(t *testing.T, header string, keyActs bool, mods ...func(*config.API)) {
	e := start(t, mods...)
	ctx := context.Background()
	own := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "own"})
	other := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "other"})
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "third"})
	op := e.client(opKey)
	freshTask := func() string {
		task, _, err := op.Dispatch(ctx, "own", wire.DispatchTaskPayload{Type: "shell"}, "")
		if err != nil {
			t.Fatal(err)
		}
		return task.ID
	}
	do := func(method, path, cred, body string) resp {
		if header == "Authorization" {
			return e.do(method, path, cred, body)
		}
		if cred == "" {
			return e.do(method, path, "", body)
		}
		return e.do(method, path, "", body, "X-API-Key", cred)
	}
	// k is the API key's status on a runner route: the runner's answer
	// when keys act for runners, else 403.
	k := func(ok int) int {
		if keyActs {
			return ok
		}
		return 403
	}
	// re-registering a live runner: an API key holds its credential only
	// when keys act for runners
	keyReregister := 201
	if !keyActs {
		keyReregister = 409
	}

	roles := []struct{ name, cred string }{
		{"none", ""},
		{"bad key", "not-a-key-at-all-xxxxxxxx"},
		{"forged token", "own." + strings.Repeat("0", 64)},
		{"api key", apiKey},
		{"operator key", opKey},
		{"own token", own.Token},
		{"other token", other.Token},
	}
	// want holds the status for each role, in the order above. Routes are in
	// an order where no call disturbs a later one (offline comes last).
	routes := []struct {
		method string
		path   func() string
		body   string
		want   [7]int
	}{
		{"GET", fixed("/health"), "", [7]int{200, 200, 200, 200, 200, 200, 200}},
		{"GET", fixed("/ready"), "", [7]int{200, 200, 200, 200, 200, 200, 200}},
		{"GET", fixed("/metrics"), "", [7]int{200, 200, 200, 200, 200, 200, 200}},
		{"GET", fixed("/runners"), "", [7]int{401, 401, 401, 403, 200, 403, 403}},
		{"GET", fixed("/api/runners"), "", [7]int{401, 401, 401, 403, 200, 403, 403}},
		{"POST", fixed("/runners/register"), `{"name":"n","version":"1.0.0"}`, [7]int{401, 401, 401, 201, 201, 403, 403}},
		// "third" is live: only its credential re-registers it (409 for the rest)
		{"POST", fixed("/runners/register"), `{"runnerId":"third","name":"n","version":"1.0.0"}`, [7]int{401, 401, 401, keyReregister, 409, 403, 403}},
		{"POST", fixed("/runners/heartbeat"), `{"runnerId":"own"}`, [7]int{401, 401, 401, k(200), 403, 200, 403}},
		{"POST", fixed("/runners/heartbeat"), `{"runnerId":"nobody"}`, [7]int{401, 401, 401, k(404), 403, 403, 403}},
		{"POST", fixed("/runners/update"), `{"runnerId":"own","endpoint":"http://10.1.1.1"}`, [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"GET", fixed("/runners/own"), "", [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"GET", fixed("/runners/own/tasks"), "", [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"POST", fixed("/runners/own/tasks"), `{"type":"shell"}`, [7]int{401, 401, 401, 403, 201, 403, 403}},
		{"PATCH", func() string { return "/runners/own/tasks/" + freshTask() }, `{"status":"cancelled"}`, [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"POST", func() string { return "/runners/task/" + freshTask() + "/patch" }, `{"status":"cancelled"}`, [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"GET", func() string { return "/runners/own/tasks/" + freshTask() }, "", [7]int{401, 401, 401, k(200), 200, 200, 403}},
		{"GET", fixed("/tasks"), "", [7]int{401, 401, 401, 403, 200, 403, 403}},
		// "third" is online: deleting it is 409 for the operator, 403 for the rest
		{"DELETE", fixed("/runners/third"), "", [7]int{401, 401, 401, 403, 409, 403, 403}},
		{"POST", fixed("/runners/own/request-update"), `{"version":"2.0.0"}`, [7]int{401, 401, 401, 403, 200, 403, 403}},
		{"POST", fixed("/version-check/1.0.0"), "", [7]int{401, 401, 401, 200, 200, 200, 200}},
		{"GET", fixed("/admission"), "", [7]int{401, 401, 401, 200, 200, 200, 200}},
		{"POST", fixed("/runners/offline"), `{"runnerId":"own"}`, [7]int{401, 401, 401, k(200), 200, 200, 403}},
	}
	for _, rt := range routes {
		for i, role := range roles {
			path := rt.path()
			t.Run(fmt.Sprintf("%s %s %s as %s", rt.method, strings.SplitN(path, "tsk_", 2)[0], rt.body, role.name), func(t *testing.T) {
				r := do(rt.method, path, role.cred, rt.body)
				if r.status != rt.want[i] {
					t.Fatalf("status = %d, want %d: %s", r.status, rt.want[i], r.body)
				}
				switch r.status {
				case 401:
					if r.header.Get("WWW-Authenticate") == "" || r.problem(t).Type != httpapi.ProblemBase+"unauthorized" {
						t.Fatalf("401 without WWW-Authenticate or problem: %v %s", r.header, r.body)
					}
				case 403:
					if r.problem(t).Type != httpapi.ProblemBase+"forbidden" {
						t.Fatalf("403 body %s", r.body)
					}
				case 409:
					if typ := r.problem(t).Type; typ != problem.TypeRunnerLive && !(rt.method == "DELETE" && typ == problem.TypeRunnerNotOffline) {
						t.Fatalf("409 body %s", r.body)
					}
				}
				if r.status >= 400 && r.header.Get("Content-Type") != httpapi.ContentTypeProblem {
					t.Fatalf("content type %q", r.header.Get("Content-Type"))
				}
			})
		}
	}
	// a body naming another runner is refused even with a valid token
	if r := do("POST", "/runners/heartbeat", other.Token, `{"runnerId":"own"}`); r.status != 403 {
		t.Fatalf("heartbeat for another runner = %d", r.status)
	}
	// a token never appears in any answer but the registration
	for _, path := range []string{"/runners/own", "/runners?limit=10", "/metrics"} {
		if r := do("GET", path, opKey, ""); strings.Contains(string(r.body), own.Token) || strings.Contains(string(r.body), "tokenHash") {
			t.Fatalf("%s leaks the token", path)
		}
	}
}

func fixed(p string) func() string { return func() string { return p } }

func TestAPIKeysAreOperatorKeysWithoutAdminKeys(t *testing.T) {
	ctx := context.Background()
	e := start(t, func(c *config.API) { c.APIKeys = []string{apiKey, "second-key-0123456789"} })
	reg := e.register(apiKey, wire.RegisterRunnerPayload{})
	c := e.client("second-key-0123456789")
	if _, err := c.ListRunners(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("list with API key and no ADMIN_API_KEYS: %v", err)
	}
	if _, _, err := c.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "shell"}, ""); err != nil {
		t.Fatalf("dispatch with API key and no ADMIN_API_KEYS: %v", err)
	}
	if _, err := e.client("wrong-key-0123456789").ListRunners(ctx, client.ListOptions{}); client.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("wrong key = %v", err)
	}
}

func TestAuthOffAllowsEverything(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	reg := e.register("", wire.RegisterRunnerPayload{})
	c := e.client("")
	if _, err := c.ListRunners(ctx, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID}); err != nil {
		t.Fatal(err)
	}
}
