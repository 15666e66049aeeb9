package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// fakeController is a small in-memory controller speaking the runner side
// of the protocol, with knobs to make it refuse calls.
type fakeController struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	apiKey     string
	intervalMs int64
	n          int
	runners    map[string]*fakeRunner
	tasks      map[string]*fakeTask
	order      []string
	registers  []wire.RegisterRunnerPayload
	heartbeats []fakeBeat
	offlines   []string
	update     *wire.PendingUpdate
	cancels    map[string][]string

	// knobs: each returns 0 to answer normally, or a status to send instead
	onHeartbeat func(n int) (status int, retryAfter string)
	onFinish    func(taskID string) int
	dropConns   int // close this many heartbeat connections without answering
}

type fakeRunner struct {
	id, token string
	epoch     int64
	offline   bool
	version   string
}

type fakeTask struct {
	wire.RunnerTask
	updates []wire.TaskUpdatePayload
}

type fakeBeat struct {
	at time.Time
	p  wire.HeartbeatPayload
}

func newFake(t *testing.T) *fakeController {
	f := &fakeController{
		t: t, apiKey: "test-api-key-0123456789", intervalMs: 100,
		runners: map[string]*fakeRunner{}, tasks: map[string]*fakeTask{}, cancels: map[string][]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /runners/register", f.register)
	mux.HandleFunc("POST /runners/heartbeat", f.heartbeat)
	mux.HandleFunc("POST /runners/offline", f.offline)
	mux.HandleFunc("GET /runners/{id}/tasks", f.listTasks)
	mux.HandleFunc("PATCH /runners/{id}/tasks/{tid}", f.patchTask)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// runnerFor authenticates a runner token; the caller holds f.mu.
func (f *fakeController) runnerFor(w http.ResponseWriter, r *http.Request, id string) *fakeRunner {
	rn := f.runners[id]
	if rn == nil {
		problem(w, http.StatusNotFound, "unknown runner")
		return nil
	}
	if bearer(r) != rn.token {
		problem(w, http.StatusForbidden, "token of another runner")
		return nil
	}
	return rn
}

func (f *fakeController) register(w http.ResponseWriter, r *http.Request) {
	if bearer(r) != f.apiKey {
		problem(w, http.StatusUnauthorized, "bad key")
		return
	}
	var p wire.RegisterRunnerPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers = append(f.registers, p)
	f.n++
	id := p.RunnerID
	if id == "" {
		id = fmt.Sprintf("rnr_%d", f.n)
	}
	rn := f.runners[id]
	if rn == nil {
		rn = &fakeRunner{id: id}
		f.runners[id] = rn
	}
	for _, t := range f.tasks {
		if t.RunnerID == id && t.Status == wire.TaskRunning {
			t.Status, t.Error = wire.TaskFailed, "re-registered"
		}
	}
	rn.epoch++
	rn.token = fmt.Sprintf("tok_%d", f.n)
	rn.offline = false
	rn.version = p.Version
	reply(w, http.StatusCreated, wire.RegisterRunnerResponse{
		RunnerInfo: wire.RunnerInfo{ID: id, Name: p.Name, Version: p.Version, Capacity: p.Capacity, Status: wire.RunnerOnline},
		Token:      rn.token, LeaseTTLMs: 4 * f.intervalMs, HeartbeatIntervalMs: f.intervalMs, LeaseEpoch: rn.epoch,
	})
}

func (f *fakeController) heartbeat(w http.ResponseWriter, r *http.Request) {
	var p wire.HeartbeatPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeats = append(f.heartbeats, fakeBeat{at: time.Now(), p: p})
	if f.dropConns > 0 {
		f.dropConns--
		hj, ok := w.(http.Hijacker)
		if !ok {
			f.t.Error("no hijacker")
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	if f.onHeartbeat != nil {
		if st, ra := f.onHeartbeat(len(f.heartbeats)); st != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			problem(w, st, "injected")
			return
		}
	}
	rn := f.runnerFor(w, r, p.RunnerID)
	if rn == nil {
		return
	}
	if rn.offline || (p.LeaseEpoch != 0 && p.LeaseEpoch != rn.epoch) {
		problem(w, http.StatusConflict, "offline or stale epoch")
		return
	}
	if p.Version != "" {
		rn.version = p.Version
	}
	resp := wire.HeartbeatResponse{LeaseEpoch: rn.epoch, HeartbeatIntervalMs: f.intervalMs, Tasks: f.pendingLocked(rn.id), CancelTaskIDs: f.cancels[rn.id]}
	if f.update != nil && strings.TrimPrefix(f.update.Version, "v") != strings.TrimPrefix(rn.version, "v") {
		resp.PendingUpdate = f.update
	} else {
		f.update = nil
	}
	reply(w, http.StatusOK, resp)
}

func (f *fakeController) pendingLocked(runnerID string) []wire.RunnerTask {
	out := []wire.RunnerTask{}
	for _, id := range f.order {
		if t := f.tasks[id]; t.RunnerID == runnerID && t.Status == wire.TaskPending {
			out = append(out, t.RunnerTask)
		}
	}
	return out
}

func (f *fakeController) offline(w http.ResponseWriter, r *http.Request) {
	var p wire.OfflinePayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rn := f.runnerFor(w, r, p.RunnerID)
	if rn == nil {
		return
	}
	f.offlines = append(f.offlines, p.RunnerID)
	rn.offline = true
	reply(w, http.StatusOK, wire.OfflineResponse{RunnerID: p.RunnerID, Status: "offline", FailedTaskIDs: []string{}})
}

func (f *fakeController) listTasks(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		rn := f.runnerFor(w, r, id)
		if rn == nil {
			f.mu.Unlock()
			return
		}
		tasks := f.pendingLocked(id)
		f.mu.Unlock()
		if len(tasks) > 0 || time.Now().After(deadline) {
			// newest first, like the API
			for i, j := 0, len(tasks)-1; i < j; i, j = i+1, j-1 {
				tasks[i], tasks[j] = tasks[j], tasks[i]
			}
			reply(w, http.StatusOK, wire.TaskList{Tasks: tasks})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (f *fakeController) patchTask(w http.ResponseWriter, r *http.Request) {
	var p wire.TaskUpdatePayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rn := f.runnerFor(w, r, r.PathValue("id"))
	if rn == nil {
		return
	}
	t := f.tasks[r.PathValue("tid")]
	if t == nil || t.RunnerID != rn.id {
		problem(w, http.StatusNotFound, "unknown task")
		return
	}
	if p.LeaseEpoch != 0 && p.LeaseEpoch != rn.epoch {
		problem(w, http.StatusConflict, "stale epoch")
		return
	}
	if p.Status.Terminal() && f.onFinish != nil {
		if st := f.onFinish(t.ID); st != 0 {
			w.Header().Set("Retry-After", "0")
			problem(w, st, "injected")
			return
		}
	}
	t.updates = append(t.updates, p)
	switch {
	case p.Status == t.Status:
	case t.Status.Terminal():
		problem(w, http.StatusConflict, "task is already "+string(t.Status))
		return
	case t.Status == wire.TaskPending && (p.Status == wire.TaskRunning || p.Status.Terminal()),
		t.Status == wire.TaskRunning && p.Status.Terminal():
		t.Status, t.Result, t.Error, t.LeaseEpoch = p.Status, p.Result, p.Error, p.LeaseEpoch
	default:
		problem(w, http.StatusConflict, "invalid transition")
		return
	}
	reply(w, http.StatusOK, t.RunnerTask)
}

// dispatch adds a pending task for runnerID.
func (f *fakeController) dispatch(runnerID, typ string, payload any) string {
	b, _ := json.Marshal(payload)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("tsk_%d", f.n)
	f.tasks[id] = &fakeTask{RunnerTask: wire.RunnerTask{ID: id, RunnerID: runnerID, Type: typ, Payload: b, Status: wire.TaskPending, CreatedAt: time.Now()}}
	f.order = append(f.order, id)
	return id
}

func (f *fakeController) task(id string) fakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := *f.tasks[id]
	t.updates = append([]wire.TaskUpdatePayload{}, t.updates...)
	return t
}

func (f *fakeController) runner(id string) fakeRunner {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rn := f.runners[id]; rn != nil {
		return *rn
	}
	return fakeRunner{}
}

func (f *fakeController) with(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}
