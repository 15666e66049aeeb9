package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// A runner written from the original controller's README alone: it knows
// API_KEYS ("API keys for runner auth") and the REST routes, and nothing of
// the per-runner token Yggdrasil adds. It speaks plain net/http (no Go
// client), authenticates every request with its API key only, and goes
// through its whole life: register, heartbeat, take a task an operator
// dispatched, report it running and succeeded, change its endpoint, go
// offline, be told so by the next heartbeat (409; an unknown id is 404),
// register again with its runnerId and heartbeat again.
func TestRunnerFromTheOriginalREADME(t *testing.T) {
	c := startCluster(t, clusterOpts{leaseTTLMs: 10000, heartbeatMs: 2000})
	for _, header := range []string{"Authorization", "X-API-Key"} {
		t.Run(header, func(t *testing.T) {
			legacyRunner{t: t, base: c.url, key: runnerKey, header: header, operatorKey: operatorKey}.live()
		})
	}
}

// The same runner with the original README's own example key, shorter than
// 16 characters, and no ADMIN_API_KEYS (the original has none): outside
// production the api starts, warns once without showing the key, and the
// whole flow works with that one key (it is the operator key too).
func TestRunnerFromTheOriginalREADMEWithItsShortKey(t *testing.T) {
	const key = "my-secret-key"
	c := startCluster(t, clusterOpts{leaseTTLMs: 10000, heartbeatMs: 2000,
		apiEnv: map[string]string{"API_KEYS": key, "ADMIN_API_KEYS": ""}})
	legacyRunner{t: t, base: c.url, key: key, header: "Authorization", operatorKey: key}.live()
	out := c.api.out.String()
	for _, want := range []string{"API_KEYS: 1 key(s) shorter than 16 characters", "ADMIN_API_KEYS is empty"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("bin/api did not warn once with %q:\n%s", want, tail(out, 3000))
		}
	}
	if strings.Contains(out, key) {
		t.Errorf("bin/api logged the key:\n%s", tail(out, 3000))
	}
}

// legacyRunner is the original README's runner.
type legacyRunner struct {
	t           *testing.T
	base        string
	key         string
	header      string // Authorization (Bearer) or X-API-Key
	operatorKey string
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (r legacyRunner) call(method, path, cred, header string, body any) answer {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if header == "X-API-Key" {
		req.Header.Set("X-API-Key", cred)
	} else {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	res, err := hc.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// as the runner, with its API key in its header
func (r legacyRunner) do(method, path string, body any, want int) answer {
	r.t.Helper()
	a := r.call(method, path, r.key, r.header, body)
	if a.status != want {
		r.t.Fatalf("runner %s %s = %d %s, want %d", method, path, a.status, a.raw, want)
	}
	return a
}

// as the operator
func (r legacyRunner) operator(method, path string, body any, want int) answer {
	r.t.Helper()
	a := r.call(method, path, r.operatorKey, "Authorization", body)
	if a.status != want {
		r.t.Fatalf("operator %s %s = %d %s, want %d", method, path, a.status, a.raw, want)
	}
	return a
}

func (r legacyRunner) live() {
	t := r.t
	reg := r.do("POST", "/runners/register", map[string]any{
		"name": "legacy-" + r.header, "version": "1.0.0", "endpoint": "http://127.0.0.1:9001", "labels": map[string]string{"os": "linux"},
	}, 201)
	id, _ := reg.body["id"].(string)
	if id == "" {
		t.Fatalf("registration without an id: %s", reg.raw)
	}
	r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": id, "status": "idle"}, 200)

	task := r.operator("POST", "/runners/"+id+"/tasks", map[string]any{"type": "shell", "payload": map[string]string{"command": "echo hi"}}, 201)
	tid, _ := task.body["id"].(string)
	hb := r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": id, "status": "idle"}, 200)
	if !strings.Contains(hb.raw, tid) {
		t.Fatalf("the heartbeat reply does not carry task %s: %s", tid, hb.raw)
	}
	r.do("PATCH", "/runners/"+id+"/tasks/"+tid, map[string]any{"status": "running"}, 200)
	r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": id, "status": "busy"}, 200)
	done := r.do("PATCH", "/runners/"+id+"/tasks/"+tid, map[string]any{"status": "succeeded", "result": map[string]any{"exitCode": 0, "stdout": "hi\n"}}, 200)
	if done.body["status"] != "succeeded" {
		t.Fatalf("task after succeeded: %s", done.raw)
	}
	mine := r.do("GET", "/runners/"+id+"/tasks", nil, 200) // its own tasks, with its key
	if !strings.Contains(mine.raw, `"status":"succeeded"`) {
		t.Fatalf("own task list: %s", mine.raw)
	}
	seen := r.operator("GET", "/runners/"+id+"/tasks?status=succeeded", nil, 200)
	if !strings.Contains(seen.raw, tid) {
		t.Fatalf("the operator does not see task %s succeeded: %s", tid, seen.raw)
	}

	up := r.do("POST", "/runners/update", map[string]any{"runnerId": id, "endpoint": "http://127.0.0.1:9002"}, 200)
	if up.body["endpoint"] != "http://127.0.0.1:9002" {
		t.Fatalf("endpoint after update: %s", up.raw)
	}
	r.do("POST", "/runners/offline", map[string]any{"runnerId": id}, 200)
	gone := r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": id}, 409)
	if gone.body["type"] != "https://yggdrasil.dev/problems/runner-offline" {
		t.Fatalf("heartbeat after offline: %s", gone.raw)
	}
	r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": "never-registered-" + id}, 404)

	back := r.do("POST", "/runners/register", map[string]any{"runnerId": id, "name": "legacy-" + r.header, "version": "1.0.0"}, 201)
	if back.body["id"] != id {
		t.Fatalf("re-registered as %v, want %s", back.body["id"], id)
	}
	r.do("POST", "/runners/heartbeat", map[string]any{"runnerId": id, "status": "idle"}, 200)
	testkit.Eventually(t, 5*time.Second, func() bool {
		a := r.call("GET", "/runners/"+id, r.key, r.header, nil)
		return a.status == 200 && a.body["status"] == "online"
	}, "runner %s online again", id)
}
