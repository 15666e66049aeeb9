package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/yggdrasil-cp/yggdrasil/runner/executor"
	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// httptest servers and the shared transport keep idle connections around
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

type harness struct {
	t     *testing.T
	f     *fakeController
	dir   string
	st    *state.Dir
	a     *Agent
	drain context.CancelFunc
	kill  context.CancelFunc
	done  chan error
}

func testConfig(f *fakeController) Config {
	return Config{
		URL: f.srv.URL, APIKey: f.apiKey, Name: "test-runner", Version: "1.0.0", Capacity: 2,
		LongPollWait: 500 * time.Millisecond, DrainTimeout: 5 * time.Second, UpdateTimeout: 5 * time.Second,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, HTTPTimeout: 5 * time.Second,
		KillGrace: 200 * time.Millisecond,
	}
}

func startAgent(t *testing.T, f *fakeController, dir string, mutate func(*Config)) *harness {
	t.Helper()
	cfg := testConfig(f)
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	shell := executor.NewShell(4096, 0, cfg.KillGrace)
	a, err := New(cfg, Deps{
		State:     st,
		Executors: map[string]Executor{executor.TypeShell: ShellExecutor(shell)},
		Resources: func(context.Context) *wire.SystemResources {
			return &wire.SystemResources{CPUPercent: 12.5, MemoryPercent: 40}
		},
		Log:           logging.Discard(),
		UpdateEnviron: shell.Environ,
	})
	if err != nil {
		t.Fatal(err)
	}
	drainCtx, drain := context.WithCancel(context.Background())
	hardCtx, kill := context.WithCancel(context.Background())
	h := &harness{t: t, f: f, dir: dir, st: st, a: a, drain: drain, kill: kill, done: make(chan error, 1)}
	go func() { h.done <- a.Run(drainCtx, hardCtx) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop stops the agent at once (idempotent) and returns Run's error.
func (h *harness) stop() error {
	h.kill()
	return h.wait(10 * time.Second)
}

func (h *harness) wait(limit time.Duration) error {
	h.t.Helper()
	if h.done == nil {
		return nil
	}
	select {
	case err := <-h.done:
		h.done = nil
		h.drain()
		h.kill()
		_ = h.st.Close()
		return err
	case <-time.After(limit):
		h.t.Fatalf("agent did not stop within %s", limit)
		return nil
	}
}

func (h *harness) runnerID() string {
	h.t.Helper()
	testkit.Eventually(h.t, 5*time.Second, func() bool { return h.a.session() != nil }, "registration")
	return h.a.session().id
}

func waitStatus(t *testing.T, f *fakeController, id string, want wire.TaskStatus) fakeTask {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() bool { return f.task(id).Status == want }, "%s", "task "+id+" "+string(want))
	return f.task(id)
}

func shellResult(t *testing.T, raw json.RawMessage) executor.ShellResult {
	t.Helper()
	var r executor.ShellResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return r
}

func TestRunsShellTaskAndReportsResultWithEpoch(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "echo out; echo err >&2; exit 0"})
	task := waitStatus(t, f, tid, wire.TaskSucceeded)
	res := shellResult(t, task.Result)
	if res.ExitCode != 0 || res.Stdout != "out\n" || res.Stderr != "err\n" {
		t.Fatalf("result %+v", res)
	}
	var statuses []wire.TaskStatus
	for _, u := range task.updates {
		statuses = append(statuses, u.Status)
		if u.LeaseEpoch != 1 {
			t.Fatalf("update without the lease epoch: %+v", u)
		}
	}
	if diff := cmp.Diff([]wire.TaskStatus{wire.TaskRunning, wire.TaskSucceeded}, statuses); diff != "" {
		t.Fatalf("updates (-want +got):\n%s", diff)
	}
	failing := f.dispatch(id, "shell", executor.ShellPayload{Command: "echo bye; exit 7"})
	task = waitStatus(t, f, failing, wire.TaskFailed)
	if res := shellResult(t, task.Result); res.ExitCode != 7 || task.Error != "exit status 7" {
		t.Fatalf("failed task: %+v %q", res, task.Error)
	}
	// heartbeats carry resources, version, running count and activity
	testkit.Eventually(t, 5*time.Second, func() bool {
		var ok bool
		f.with(func() { ok = len(f.heartbeats) > 0 })
		return ok
	}, "a heartbeat")
	f.with(func() {
		hb := f.heartbeats[len(f.heartbeats)-1].p
		if hb.Resources == nil || hb.Resources.CPUPercent != 12.5 || hb.Version != "1.0.0" || hb.TasksRunning == nil || hb.LeaseEpoch != 1 {
			t.Errorf("heartbeat %+v", hb)
		}
	})
	testkit.Eventually(t, 5*time.Second, func() bool {
		results, _ := h.st.Results()
		return len(results) == 0
	}, "the state dir to hold no result")
}

func TestTasksFromHeartbeatsOnly(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), func(c *Config) { c.LongPollWait = 0 })
	tid := f.dispatch(h.runnerID(), "shell", executor.ShellPayload{Command: "true"})
	waitStatus(t, f, tid, wire.TaskSucceeded)
}

func TestUnknownTaskTypeFailsAtOnce(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	tid := f.dispatch(h.runnerID(), "docker", map[string]string{"image": "x"})
	task := waitStatus(t, f, tid, wire.TaskFailed)
	if !strings.Contains(task.Error, `unknown task type "docker"`) || !strings.Contains(task.Error, "shell") {
		t.Fatalf("error %q", task.Error)
	}
	if len(task.updates) != 1 {
		t.Fatalf("an unknown type must not be claimed first: %+v", task.updates)
	}
}

func TestCapacityBoundsConcurrency(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), func(c *Config) { c.Capacity = 1 })
	id := h.runnerID()
	log := filepath.Join(t.TempDir(), "log")
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, f.dispatch(id, "shell", executor.ShellPayload{Command: fmt.Sprintf("echo start >> %s; sleep 0.15; echo end >> %s", log, log)}))
	}
	for _, tid := range ids {
		waitStatus(t, f, tid, wire.TaskSucceeded)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); !cmp.Equal(got, []string{"start", "end", "start", "end", "start", "end"}) {
		t.Fatalf("tasks overlapped with capacity 1: %v", got)
	}
}

func TestHeartbeat409ReRegistersAsSameRunner(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	f.with(func() { f.runners[id].offline = true })
	testkit.Eventually(t, 5*time.Second, func() bool { return f.runner(id).epoch == 2 && !f.runner(id).offline }, "re-registration")
	f.with(func() {
		last := f.registers[len(f.registers)-1]
		if last.RunnerID != id || len(f.registers) != 2 {
			t.Fatalf("registers %+v", f.registers)
		}
	})
	testkit.Eventually(t, 5*time.Second, func() bool { return h.a.session().epoch == 2 }, "session epoch 2")
	ident, ok, _ := h.st.Identity()
	if !ok || ident.RunnerID != id || ident.Epoch != 2 || ident.Token != f.runner(id).token {
		t.Fatalf("identity %+v", ident)
	}
	// tasks still run under the new epoch
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "true"})
	if task := waitStatus(t, f, tid, wire.TaskSucceeded); task.LeaseEpoch != 2 {
		t.Fatalf("epoch %d", task.LeaseEpoch)
	}
}

func TestHeartbeat404RegistersAnew(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	f.with(func() { delete(f.runners, id) })
	testkit.Eventually(t, 5*time.Second, func() bool {
		s := h.a.session()
		return s != nil && s.id != id
	}, "a new registration")
	f.with(func() {
		if last := f.registers[len(f.registers)-1]; last.RunnerID != "" {
			t.Fatalf("registered anew with id %q", last.RunnerID)
		}
	})
	ident, _, _ := h.st.Identity()
	if ident.RunnerID == id {
		t.Fatal("identity not replaced")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFake(t)
	refused := time.Time{}
	f.onHeartbeat = func(n int) (int, string) {
		if n == 2 {
			refused = time.Now()
			return http.StatusServiceUnavailable, "1"
		}
		return 0, ""
	}
	h := startAgent(t, f, t.TempDir(), nil)
	h.runnerID()
	testkit.Eventually(t, 5*time.Second, func() bool {
		var n int
		f.with(func() { n = len(f.heartbeats) })
		return n >= 3
	}, "heartbeat after the 503")
	f.with(func() {
		gap := f.heartbeats[2].at.Sub(refused)
		if gap < 950*time.Millisecond || gap > 2*time.Second {
			t.Fatalf("next heartbeat %s after a 503 with Retry-After: 1", gap)
		}
	})
}

func TestTooManyRequestsWithoutRetryAfterBacksOff(t *testing.T) {
	f := newFake(t)
	f.onHeartbeat = func(n int) (int, string) {
		if n >= 2 && n <= 5 {
			return http.StatusTooManyRequests, ""
		}
		return 0, ""
	}
	h := startAgent(t, f, t.TempDir(), nil)
	h.runnerID()
	testkit.Eventually(t, 5*time.Second, func() bool {
		var n int
		f.with(func() { n = len(f.heartbeats) })
		return n >= 7
	}, "heartbeats to succeed again")
	f.with(func() {
		// retries come within the interval (100 ms) and registration is untouched
		for i := 2; i < 6; i++ {
			if gap := f.heartbeats[i].at.Sub(f.heartbeats[i-1].at); gap > 150*time.Millisecond {
				t.Fatalf("retry %d came %s after the refusal", i, gap)
			}
		}
		if len(f.registers) != 1 {
			t.Fatalf("registered %d times", len(f.registers))
		}
	})
}

func TestNetworkErrorsAreRetriedWithoutReRegistering(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	f.with(func() { f.dropConns = 4 })
	testkit.Eventually(t, 5*time.Second, func() bool {
		var n, drops int
		f.with(func() { n, drops = len(f.heartbeats), f.dropConns })
		return drops == 0 && n >= 7
	}, "heartbeats to succeed again")
	if f.runner(id).epoch != 1 {
		t.Fatal("a network error must not cost the lease")
	}
}

func TestBackoffIsExponentialWithFullJitter(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	b.rand = func() float64 { return 0.999999 }
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, b.next().Round(time.Millisecond))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ceilings (-want +got):\n%s", diff)
	}
	b.reset()
	if d := b.within(50 * time.Millisecond); d > 50*time.Millisecond {
		t.Fatalf("within: %s", d)
	}
	b = newBackoff(100*time.Millisecond, time.Second)
	b.attempt = 10
	var lo, hi int
	for i := 0; i < 1000; i++ {
		d := b.within(0)
		b.attempt = 10
		if d < 0 || d >= time.Second {
			t.Fatalf("out of [0, max): %s", d)
		}
		if d < 200*time.Millisecond {
			lo++
		}
		if d > 800*time.Millisecond {
			hi++
		}
	}
	if lo < 100 || hi < 100 {
		t.Fatalf("not spread over the window: %d low, %d high of 1000", lo, hi)
	}
	for i := 0; i < 100; i++ {
		if d := jitter(time.Second); d > time.Second || d < 800*time.Millisecond {
			t.Fatalf("heartbeat jitter %s", d)
		}
	}
}

func TestCancelTaskIDsKillsTheTask(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	pidFile := filepath.Join(t.TempDir(), "pid")
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: fmt.Sprintf("sleep 30 & echo $! > %s; wait", pidFile)})
	waitStatus(t, f, tid, wire.TaskRunning)
	var pid int
	testkit.Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}, "pid file")
	unknown := f.dispatch(id, "noop", nil)
	f.with(func() {
		f.tasks[unknown].Status = wire.TaskRunning // running on the controller, not here
		f.cancels[id] = []string{tid, unknown}
	})
	task := waitStatus(t, f, tid, wire.TaskCancelled)
	if !strings.Contains(task.Error, "cancelTaskIds") {
		t.Fatalf("error %q", task.Error)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }, "the task's child to die")
	if got := waitStatus(t, f, unknown, wire.TaskFailed); !strings.Contains(got.Error, "not running on this runner") {
		t.Fatalf("ack error %q", got.Error)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return h.a.running() == 0 }, "no running task")
}

func TestTerminalConflictOnReportIsFinal(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "sleep 0.3"})
	waitStatus(t, f, tid, wire.TaskRunning)
	f.with(func() { f.tasks[tid].Status = wire.TaskCancelled }) // operator cancelled; the runner does not hear of it
	testkit.Eventually(t, 5*time.Second, func() bool { return len(f.task(tid).updates) == 2 }, "the 409 on the report")
	testkit.Eventually(t, 5*time.Second, func() bool {
		r, _ := h.st.Results()
		return len(r) == 0 && h.a.queued() == 0
	}, "the result to be dropped")
	time.Sleep(200 * time.Millisecond)
	if n := len(f.task(tid).updates); n != 2 {
		t.Fatalf("a final 409 was retried: %d updates", n)
	}
}

func TestResultSurvivesAgentRestart(t *testing.T) {
	f := newFake(t)
	f.onFinish = func(string) int { return http.StatusServiceUnavailable }
	dir := t.TempDir()
	h := startAgent(t, f, dir, nil)
	id := h.runnerID()
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "echo kept"})
	testkit.Eventually(t, 5*time.Second, func() bool {
		r, _ := h.st.Results()
		return len(r) == 1
	}, "the result to be queued")
	if err := h.stop(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Run: %v", err)
	}
	if f.task(tid).Status != wire.TaskRunning {
		t.Fatal("result reported while the controller refused it")
	}
	// the controller accepts again; a new process on the same state dir reports it
	f.with(func() { f.onFinish = nil })
	h2 := startAgent(t, f, dir, nil)
	task := waitStatus(t, f, tid, wire.TaskSucceeded)
	if res := shellResult(t, task.Result); res.Stdout != "kept\n" || task.LeaseEpoch != 1 {
		t.Fatalf("task %+v", task)
	}
	if h2.runnerID() != id {
		t.Fatal("came back as another runner")
	}
	f.with(func() {
		if len(f.registers) != 1 {
			t.Fatalf("resumed by registering again (%d registrations): the epoch would be lost", len(f.registers))
		}
	})
}

func TestRestartReportsTheTaskThatWasRunning(t *testing.T) {
	for _, leaseAlive := range []bool{true, false} {
		t.Run(fmt.Sprintf("lease alive %v", leaseAlive), func(t *testing.T) {
			f := newFake(t)
			dir := t.TempDir()
			// what a crashed agent leaves behind
			f.with(func() {
				f.runners["rnr_old"] = &fakeRunner{id: "rnr_old", token: "tok_old", epoch: 1, offline: !leaseAlive}
			})
			tid := f.dispatch("rnr_old", "shell", nil)
			f.with(func() { f.tasks[tid].Status = wire.TaskRunning })
			st, err := state.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SaveIdentity(state.Identity{RunnerID: "rnr_old", Token: "tok_old", Epoch: 1, URL: f.srv.URL}); err != nil {
				t.Fatal(err)
			}
			if err := st.MarkRunning(state.Running{TaskID: tid, RunnerID: "rnr_old", Epoch: 1, Type: "shell", StartedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			st.Close()

			h := startAgent(t, f, dir, nil)
			if h.runnerID() != "rnr_old" {
				t.Fatal("came back as another runner")
			}
			testkit.Eventually(t, 5*time.Second, func() bool {
				r, _ := h.st.Results()
				run, _ := h.st.Running()
				return len(r) == 0 && len(run) == 0 && h.a.queued() == 0
			}, "the lost task to be settled")
			task := f.task(tid)
			if task.Status != wire.TaskFailed {
				t.Fatalf("status %s", task.Status)
			}
			wantEpoch := int64(1)
			if !leaseAlive {
				wantEpoch = 2 // re-registered as the same runner; the controller failed the task itself
			}
			if got := f.runner("rnr_old").epoch; got != wantEpoch {
				t.Fatalf("epoch %d, want %d", got, wantEpoch)
			}
			if leaseAlive && !strings.Contains(task.Error, "restarted") {
				t.Fatalf("error %q", task.Error)
			}
		})
	}
}

func TestDrainFinishesTasksThenDeregisters(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "sleep 0.4; echo done"})
	waitStatus(t, f, tid, wire.TaskRunning)
	h.drain()
	testkit.Eventually(t, 2*time.Second, func() bool { return h.a.activity() == wire.RunnerDraining }, "draining")
	late := f.dispatch(id, "shell", executor.ShellPayload{Command: "true"})
	if err := h.wait(10 * time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if task := f.task(tid); task.Status != wire.TaskSucceeded {
		t.Fatalf("drained task %s", task.Status)
	}
	if got := f.task(late).Status; got != wire.TaskPending {
		t.Fatalf("a task dispatched during the drain was taken: %s", got)
	}
	f.with(func() {
		if diff := cmp.Diff([]string{id}, f.offlines); diff != "" {
			t.Fatalf("offline calls (-want +got):\n%s", diff)
		}
	})
}

func TestDrainTimeoutStopsTasks(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), func(c *Config) { c.DrainTimeout = 200 * time.Millisecond })
	tid := f.dispatch(h.runnerID(), "shell", executor.ShellPayload{Command: "sleep 30"})
	waitStatus(t, f, tid, wire.TaskRunning)
	start := time.Now()
	h.drain()
	if err := h.wait(10 * time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("drain took %s", d)
	}
	if task := f.task(tid); task.Status != wire.TaskFailed || !strings.Contains(task.Error, "drain timeout") {
		t.Fatalf("task %s %q", task.Status, task.Error)
	}
}

func TestHardStopKillsTasksWithoutDeregistering(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	tid := f.dispatch(h.runnerID(), "shell", executor.ShellPayload{Command: "trap '' TERM; sleep 30"})
	waitStatus(t, f, tid, wire.TaskRunning)
	h.drain() // first signal: drain...
	start := time.Now()
	if err := h.stop(); !errors.Is(err, ErrStopped) { // ...second: at once
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("hard stop took %s", d)
	}
	f.with(func() {
		if len(f.offlines) != 0 {
			t.Fatal("a hard stop deregistered")
		}
	})
}

func TestUpdateDrainsRunsCommandAndExits(t *testing.T) {
	f := newFake(t)
	versionFile := filepath.Join(t.TempDir(), "version")
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "sleep 0.3"})
	waitStatus(t, f, tid, wire.TaskRunning)
	f.with(func() {
		f.update = &wire.PendingUpdate{Version: "2.0.0", Command: fmt.Sprintf(`test "$RATATOSKR_UPDATE_VERSION" = 2.0.0 && echo "$RATATOSKR_UPDATE_VERSION" > %s`, versionFile)}
	})
	if err := h.wait(10 * time.Second); !errors.Is(err, ErrUpdated) {
		t.Fatalf("Run: %v", err)
	}
	if f.task(tid).Status != wire.TaskSucceeded {
		t.Fatal("the running task was not let finish and reported before the update")
	}
	if b, err := os.ReadFile(versionFile); err != nil || strings.TrimSpace(string(b)) != "2.0.0" {
		t.Fatalf("version file: %q %v", b, err)
	}
	f.with(func() {
		if len(f.offlines) != 0 {
			t.Fatal("an update must not deregister")
		}
	})
	// the restarted agent reports the new version and the update clears
	h2 := startAgent(t, f, h.dir, func(c *Config) { c.Version = "2.0.0" })
	if h2.runnerID() != id {
		t.Fatal("not the same runner after the update")
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		var cleared bool
		f.with(func() { cleared = f.update == nil && f.runners[id].version == "2.0.0" })
		return cleared
	}, "update cleared")
}

func TestFailedUpdateResumesWork(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	id := h.runnerID()
	f.with(func() { f.update = &wire.PendingUpdate{Version: "2.0.0", Command: "echo nope >&2; exit 3"} })
	testkit.Eventually(t, 5*time.Second, func() bool {
		u, ok, _ := h.st.LastUpdate()
		return ok && u.Version == "2.0.0"
	}, "the update attempt")
	tid := f.dispatch(id, "shell", executor.ShellPayload{Command: "true"})
	waitStatus(t, f, tid, wire.TaskSucceeded)
	select {
	case err := <-h.done:
		t.Fatalf("Run returned after a failed update: %v", err)
	default:
	}
}

func TestRefusedAPIKeyIsFatal(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), func(c *Config) { c.APIKey = "wrong" })
	if err := h.wait(5 * time.Second); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run: %v", err)
	}
}

func TestCleanText(t *testing.T) {
	if got := cleanText("a\nb\x00c\tdé", 100); got != "a b c dé" {
		t.Fatalf("got %q", got)
	}
	long := strings.Repeat("é", 3000)
	if got := cleanText(long, 4000); len(got) > 4003 || !strings.HasSuffix(got, "...") {
		t.Fatalf("len %d", len(got))
	}
}

func TestHardStopInterruptsAnUpdateWaitingForTasks(t *testing.T) {
	f := newFake(t)
	h := startAgent(t, f, t.TempDir(), nil)
	tid := f.dispatch(h.runnerID(), "shell", executor.ShellPayload{Command: "sleep 30"})
	waitStatus(t, f, tid, wire.TaskRunning)
	f.with(func() { f.update = &wire.PendingUpdate{Version: "2.0.0", Command: "true"} })
	testkit.Eventually(t, 5*time.Second, func() bool { return h.a.activity() == wire.RunnerDraining }, "the update drain")
	if err := h.stop(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Run: %v", err)
	}
}

// The api sheds overload with 503 + a jittered Retry-After (1 s to half the
// heartbeat interval): the agent waits the whole of it, not its own backoff.
func TestOverloadedRetryAfterIsHonoured(t *testing.T) {
	f := newFake(t)
	refused := time.Time{}
	f.onHeartbeat = func(n int) (int, string) {
		if n == 2 {
			refused = time.Now()
			return http.StatusServiceUnavailable, "2"
		}
		return 0, ""
	}
	h := startAgent(t, f, t.TempDir(), nil)
	h.runnerID()
	testkit.Eventually(t, 6*time.Second, func() bool {
		var n int
		f.with(func() { n = len(f.heartbeats) })
		return n >= 3
	}, "heartbeat after the 503")
	f.with(func() {
		gap := f.heartbeats[2].at.Sub(refused)
		if gap < 1950*time.Millisecond || gap > 3500*time.Millisecond {
			t.Fatalf("next heartbeat %s after a 503 with Retry-After: 2", gap)
		}
	})
}
