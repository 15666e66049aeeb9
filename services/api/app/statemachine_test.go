package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func wantStatus(t *testing.T, err error, status int, typ string) {
	t.Helper()
	if got := client.StatusOf(err); got != status {
		t.Fatalf("status = %d (%v), want %d", got, err, status)
	}
	var e *client.Error
	if typ != "" {
		if !asClientErr(err, &e) || e.Problem.Type != httpapi.ProblemBase+typ {
			t.Fatalf("problem = %+v, want type %s", e, typ)
		}
	}
}

func asClientErr(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestTaskLifecycleOverHTTP(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	op := e.client(opKey)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{Name: "alpha", Version: "1.2.0", Realm: "eu", Labels: map[string]string{"os": "linux"}, Capacity: 2})
	if reg.Token == "" || reg.LeaseEpoch != 1 || reg.LeaseTTLMs != 60000 || reg.HeartbeatIntervalMs != 15000 || reg.Status != wire.RunnerOnline {
		t.Fatalf("register = %+v", reg)
	}
	runner := e.client(reg.Token)

	hb, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch, Status: wire.RunnerIdle,
		Resources: &wire.SystemResources{CPUPercent: 12.5, MemoryPercent: 40, UptimeSeconds: 99}})
	if err != nil || hb.LeaseEpoch != 1 || len(hb.Tasks) != 0 || hb.CancelTaskIDs == nil {
		t.Fatalf("heartbeat = %+v, %v", hb, err)
	}

	task, created, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "shell", Payload: json.RawMessage(`{"cmd":"true"}`), TimeoutMs: 60000}, "")
	if err != nil || !created || task.Status != wire.TaskPending {
		t.Fatalf("dispatch = %+v created=%v err=%v", task, created, err)
	}
	hb, err = runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: 1})
	if err != nil || len(hb.Tasks) != 1 || hb.Tasks[0].ID != task.ID || string(hb.Tasks[0].Payload) != `{"cmd":"true"}` {
		t.Fatalf("heartbeat tasks = %+v, %v", hb.Tasks, err)
	}

	got, err := runner.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: 1})
	if err != nil || got.Status != wire.TaskRunning || got.StartedAt == nil {
		t.Fatalf("running = %+v, %v", got, err)
	}
	got, err = runner.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded, Result: json.RawMessage(`{"exit":0}`), LeaseEpoch: 1})
	if err != nil || got.Status != wire.TaskSucceeded || string(got.Result) != `{"exit":0}` || got.FinishedAt == nil {
		t.Fatalf("succeeded = %+v, %v", got, err)
	}
	_, err = runner.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskFailed, LeaseEpoch: 1})
	wantStatus(t, err, http.StatusConflict, "task-terminal")

	list, err := runner.ListTasks(ctx, reg.ID, client.TaskQuery{Status: wire.TaskSucceeded})
	if err != nil || len(list.Tasks) != 1 || list.Tasks[0].ID != task.ID {
		t.Fatalf("list succeeded = %+v, %v", list, err)
	}
	info, err := runner.GetRunner(ctx, reg.ID)
	if err != nil || info.Resources == nil || info.Resources.CPUPercent != 12.5 || info.Activity != wire.RunnerIdle {
		t.Fatalf("runner = %+v, %v", info, err)
	}
	// the alias listing route answers like /runners
	r := e.do("GET", "/api/runners?realm=eu", opKey, "")
	var rl wire.RunnerList
	if r.status != 200 || json.Unmarshal(r.body, &rl) != nil || len(rl.Runners) != 1 || rl.Runners[0].ID != reg.ID {
		t.Fatalf("/api/runners = %d %s", r.status, r.body)
	}

	// an illegal transition: pending -> succeeded
	t2, _, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "shell"}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = runner.UpdateTask(ctx, reg.ID, t2.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded})
	wantStatus(t, err, http.StatusConflict, "invalid-transition")
	// the task-id-only route finds the runner itself
	r = e.do("POST", "/runners/task/"+t2.ID+"/patch", reg.Token, `{"status":"running","leaseEpoch":1}`)
	if r.status != 200 {
		t.Fatalf("patch by task id = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/runners/task/tsk_nope/patch", reg.Token, `{"status":"running"}`)
	if r.status != 404 || r.problem(t).Type != httpapi.ProblemBase+"task-not-found" {
		t.Fatalf("patch unknown task = %d %s", r.status, r.body)
	}

	// graceful offline fails the unfinished task, twice is harmless
	off, err := runner.Offline(ctx, wire.OfflinePayload{RunnerID: reg.ID, Reason: "shutdown"})
	if err != nil || off.Status != "offline" || !cmp.Equal(off.FailedTaskIDs, []string{t2.ID}) {
		t.Fatalf("offline = %+v, %v", off, err)
	}
	off, err = runner.Offline(ctx, wire.OfflinePayload{RunnerID: reg.ID})
	if err != nil || len(off.FailedTaskIDs) != 0 {
		t.Fatalf("offline again = %+v, %v", off, err)
	}
	_, err = runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID})
	wantStatus(t, err, http.StatusConflict, "runner-offline")
	_, _, err = op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "shell"}, "")
	wantStatus(t, err, http.StatusConflict, "runner-offline")

	// re-registering with the id brings it back under a new epoch and a new token
	back := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: reg.ID})
	if back.LeaseEpoch != 2 || back.Token == reg.Token {
		t.Fatalf("re-register = epoch %d", back.LeaseEpoch)
	}
	_, err = runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID})
	wantStatus(t, err, http.StatusUnauthorized, "unauthorized")
	if _, err := e.client(back.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: 2}); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatUnknownAndStaleEpoch(t *testing.T) {
	ctx := context.Background()
	e := start(t) // auth off
	c := e.client("")
	_, err := c.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "ghost"})
	wantStatus(t, err, http.StatusNotFound, "runner-not-found")

	reg := e.register("", wire.RegisterRunnerPayload{RunnerID: "r1"})
	task, _, err := c.Dispatch(ctx, "r1", wire.DispatchTaskPayload{Type: "shell"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTask(ctx, "r1", task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: reg.LeaseEpoch}); err != nil {
		t.Fatal(err)
	}
	again := e.register("", wire.RegisterRunnerPayload{RunnerID: "r1"})
	if again.LeaseEpoch != reg.LeaseEpoch+1 {
		t.Fatalf("epoch %d after %d", again.LeaseEpoch, reg.LeaseEpoch)
	}
	_, err = c.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "r1", LeaseEpoch: reg.LeaseEpoch})
	wantStatus(t, err, http.StatusConflict, "stale-epoch")
	_, err = c.UpdateTask(ctx, "r1", task.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded, LeaseEpoch: reg.LeaseEpoch})
	wantStatus(t, err, http.StatusConflict, "stale-epoch")
}

func TestIdempotentDispatch(t *testing.T) {
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{})
	body := `{"type":"shell","payload":{"n":1}}`
	first := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, body, "Idempotency-Key", "order-42")
	second := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, body, "Idempotency-Key", "order-42")
	other := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, body, "Idempotency-Key", "order-43")
	if first.status != 201 || second.status != 200 || other.status != 201 {
		t.Fatalf("statuses %d %d %d", first.status, second.status, other.status)
	}
	var a, b, c wire.RunnerTask
	_ = json.Unmarshal(first.body, &a)
	_ = json.Unmarshal(second.body, &b)
	_ = json.Unmarshal(other.body, &c)
	if a.ID == "" || a.ID != b.ID || c.ID == a.ID {
		t.Fatalf("ids %q %q %q", a.ID, b.ID, c.ID)
	}
	// the same payload with other white space is the same request
	spaced := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, `{"type":"shell", "payload": { "n" : 1 }}`, "Idempotency-Key", "order-42")
	if spaced.status != 200 {
		t.Fatalf("re-spaced retry: status %d %s", spaced.status, spaced.body)
	}
	// the same key for another request is refused, and makes no task
	reused := e.do("POST", "/runners/"+reg.ID+"/tasks", opKey, `{"type":"shell","payload":{"n":2}}`, "Idempotency-Key", "order-42")
	if reused.status != 422 || !strings.Contains(string(reused.body), "idempotency-key-reused") {
		t.Fatalf("reused key: status %d %s", reused.status, reused.body)
	}
	list, err := e.client(opKey).ListTasks(context.Background(), reg.ID, client.TaskQuery{})
	if err != nil || len(list.Tasks) != 2 {
		t.Fatalf("tasks after the retries: %d (%v), want 2", len(list.Tasks), err)
	}
}

func TestOperatorCancelReachesHeartbeat(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	op := e.client(opKey)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{})
	runner := e.client(reg.Token)
	task, _, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "sleep"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: reg.LeaseEpoch}); err != nil {
		t.Fatal(err)
	}
	// an operator may only cancel
	_, err = op.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded})
	wantStatus(t, err, http.StatusUnprocessableEntity, "validation")
	got, err := op.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskCancelled, Error: "operator said stop"})
	if err != nil || got.Status != wire.TaskCancelled {
		t.Fatalf("cancel = %+v, %v", got, err)
	}
	hb, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch})
	if err != nil || !cmp.Equal(hb.CancelTaskIDs, []string{task.ID}) {
		t.Fatalf("cancelTaskIds = %v, %v", hb.CancelTaskIDs, err)
	}
	// the runner acknowledges (terminal: 409) and the cancellation stops repeating
	_, err = runner.UpdateTask(ctx, reg.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskFailed, LeaseEpoch: reg.LeaseEpoch})
	wantStatus(t, err, http.StatusConflict, "task-terminal")
	hb, err = runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID})
	if err != nil || len(hb.CancelTaskIDs) != 0 {
		t.Fatalf("cancelTaskIds after ack = %v, %v", hb.CancelTaskIDs, err)
	}
}

func TestPendingUpdateRidesHeartbeats(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	op := e.client(opKey)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{Version: "1.0.0"})
	runner := e.client(reg.Token)
	info, err := op.RequestUpdate(ctx, reg.ID, wire.RequestUpdatePayload{Version: "1.1.0", Command: "apt-get install ratatoskr=1.1.0"})
	if err != nil || info.PendingUpdate == nil || info.PendingUpdate.Version != "1.1.0" {
		t.Fatalf("request update = %+v, %v", info.PendingUpdate, err)
	}
	for i := 0; i < 2; i++ {
		hb, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, Version: "1.0.0"})
		if err != nil || hb.PendingUpdate == nil || hb.PendingUpdate.Version != "1.1.0" || hb.PendingUpdate.Command == "" || hb.PendingUpdate.RequestedAt.IsZero() {
			t.Fatalf("heartbeat %d pendingUpdate = %+v, %v", i, hb.PendingUpdate, err)
		}
	}
	hb, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, Version: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	hb, err = runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID})
	if err != nil || hb.PendingUpdate != nil {
		t.Fatalf("pendingUpdate after update = %+v, %v", hb.PendingUpdate, err)
	}
	info, _ = runner.GetRunner(ctx, reg.ID)
	if info.Version != "1.1.0" || info.PendingUpdate != nil {
		t.Fatalf("runner = %+v", info)
	}
}

func TestUpdateEndpoint(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{Endpoint: "http://10.0.0.1:8080"})
	info, err := e.client(reg.Token).UpdateEndpoint(ctx, reg.ID, "https://runner.example:9443/agent")
	if err != nil || info.Endpoint != "https://runner.example:9443/agent" {
		t.Fatalf("update = %+v, %v", info, err)
	}
}

func TestLongPoll(t *testing.T) {
	ctx := context.Background()
	srvCfg := func(c *config.API) { authCfg(c) }
	a := start(t, srvCfg)
	b := startOn(t, a.redis, a.rdb, srvCfg) // a second replica on the same Redis
	reg := a.register(apiKey, wire.RegisterRunnerPayload{})
	runner := a.client(reg.Token)

	// empty after the wait
	t0 := time.Now()
	list, err := runner.ListTasks(ctx, reg.ID, client.TaskQuery{Status: wire.TaskPending, Wait: 300 * time.Millisecond})
	if err != nil || len(list.Tasks) != 0 {
		t.Fatalf("empty poll = %+v, %v", list, err)
	}
	if d := time.Since(t0); d < 280*time.Millisecond {
		t.Fatalf("empty poll returned after %v, before its wait", d)
	}

	// a dispatch through the other replica wakes the poll promptly
	type result struct {
		list wire.TaskList
		err  error
		d    time.Duration
	}
	ch := make(chan result, 1)
	go func() {
		t0 := time.Now()
		l, err := runner.ListTasks(ctx, reg.ID, client.TaskQuery{Status: wire.TaskPending, Wait: 4 * time.Second})
		ch <- result{l, err, time.Since(t0)}
	}()
	time.Sleep(150 * time.Millisecond) // let the poll start waiting (correct either way: it re-reads)
	task, _, err := b.client(opKey).Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "shell"}, "")
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil || len(r.list.Tasks) != 1 || r.list.Tasks[0].ID != task.ID {
		t.Fatalf("woken poll = %+v, %v", r.list, r.err)
	}
	if r.d > 2*time.Second {
		t.Fatalf("poll took %v: not woken by the dispatch", r.d)
	}

	// with a task already pending it answers at once
	t0 = time.Now()
	list, err = runner.ListTasks(ctx, reg.ID, client.TaskQuery{Status: wire.TaskPending, Wait: 4 * time.Second})
	if err != nil || len(list.Tasks) != 1 || time.Since(t0) > time.Second {
		t.Fatalf("immediate poll = %+v, %v after %v", list, err, time.Since(t0))
	}
	// the wait is capped at LONG_POLL_MAX_MS and an unknown runner is 404 at once
	_, err = a.client(opKey).ListTasks(ctx, "ghost", client.TaskQuery{Wait: time.Second})
	wantStatus(t, err, http.StatusNotFound, "runner-not-found")
	// ms integers are accepted too
	rr := a.do("GET", "/runners/"+reg.ID+"/tasks?status=running&wait=50", reg.Token, "")
	if rr.status != 200 {
		t.Fatalf("wait=50 = %d %s", rr.status, rr.body)
	}
}
