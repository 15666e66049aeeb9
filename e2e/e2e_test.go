package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

type shellPayload struct {
	Command   string            `json:"command"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	TimeoutMs int64             `json:"timeoutMs,omitempty"`
}

// Tasks dispatched through the API run as shell commands on several
// runners and their results come back; SIGTERM drains and deregisters.
func TestShellTasksRunAndResultsComeBack(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	var ids []string
	var procs []*proc
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		procs = append(procs, c.startRunner(runnerOpts{name: fmt.Sprintf("r%d", i), stateDir: dir}))
		ids = append(ids, runnerID(t, dir))
	}
	type sent struct{ runner, task, want string }
	var all []sent
	for i, id := range ids {
		for j := 0; j < 2; j++ {
			word := fmt.Sprintf("hello-%d-%d", i, j)
			task := c.dispatch(id, "shell", shellPayload{Command: `echo "$WORD"; echo warn >&2`, Env: map[string]string{"WORD": word}})
			all = append(all, sent{id, task.ID, word + "\n"})
		}
	}
	for _, s := range all {
		task := c.waitTask(s.runner, s.task, wire.TaskSucceeded, 20*time.Second)
		if r := decodeResult(t, task); r.ExitCode != 0 || r.Stdout != s.want || r.Stderr != "warn\n" {
			t.Fatalf("task %s: result %+v", s.task, r)
		}
		if task.LeaseEpoch == 0 {
			t.Errorf("task %s finished without a lease epoch", s.task)
		}
	}

	failing := c.dispatch(ids[0], "shell", shellPayload{Command: "echo bad >&2; exit 4"})
	task := c.waitTask(ids[0], failing.ID, wire.TaskFailed, 20*time.Second)
	if r := decodeResult(t, task); r.ExitCode != 4 || r.Stderr != "bad\n" || task.Error != "exit status 4" {
		t.Fatalf("failing task: %+v %q", r, task.Error)
	}
	unknown := c.dispatch(ids[1], "docker", map[string]string{"image": "alpine"})
	task = c.waitTask(ids[1], unknown.ID, wire.TaskFailed, 20*time.Second)
	if !strings.Contains(task.Error, `unknown task type "docker"`) {
		t.Fatalf("unknown type error %q", task.Error)
	}

	// heartbeats reported the host and the agent
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		info := c.runner(ids[2])
		if info.Resources == nil || info.Resources.MemoryTotalMB <= 0 || info.Version != "1.0.0" || info.Status != wire.RunnerOnline {
			return fmt.Errorf("runner %+v", info)
		}
		// the agent reports its own process start (runner_uptime_seconds)
		if info.StartedAt == nil || time.Since(*info.StartedAt) < 0 || time.Since(*info.StartedAt) > time.Minute {
			return fmt.Errorf("runner startedAt %v, want the agent's start, moments ago", info.StartedAt)
		}
		return nil
	}, "resources on the runner")

	// SIGTERM drains: the running task finishes, then the runner deregisters
	slow := c.dispatch(ids[2], "shell", shellPayload{Command: "sleep 1; echo drained"})
	c.waitTask(ids[2], slow.ID, wire.TaskRunning, 20*time.Second)
	procs[2].signal(syscall.SIGTERM)
	if code := procs[2].wait(20 * time.Second); code != 0 {
		t.Fatalf("drained runner exited %d", code)
	}
	task = c.waitTask(ids[2], slow.ID, wire.TaskSucceeded, 5*time.Second)
	if r := decodeResult(t, task); r.Stdout != "drained\n" {
		t.Fatalf("drained task result %+v", r)
	}
	if info := c.runner(ids[2]); info.Status != wire.RunnerOffline || info.OfflineReason != wire.ReasonDeregistered {
		t.Fatalf("after the drain: status %s reason %q", info.Status, info.OfflineReason)
	}
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if _, ok := c.hooks.find(wire.EventRunnerOffline, ids[2]); !ok {
			return fmt.Errorf("not received")
		}
		return nil
	}, "the offline webhook of the drained runner")

	// a second SIGTERM stops at once: the task's process group is killed
	pidFile := filepath.Join(t.TempDir(), "pid")
	killPIDFile(t, pidFile)
	stuck := c.dispatch(ids[1], "shell", shellPayload{Command: fmt.Sprintf("echo $$ > %s; trap '' TERM; sleep 30", pidFile)})
	c.waitTask(ids[1], stuck.ID, wire.TaskRunning, 20*time.Second)
	var pid int
	testkit.EventuallyNil(t, 5*time.Second, func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	}, "the task's pid")
	procs[1].signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond) // let the first one start the drain
	procs[1].signal(syscall.SIGTERM)
	if code := procs[1].wait(5 * time.Second); code != 1 {
		t.Fatalf("runner stopped at once exited %d, want 1", code)
	}
	testkit.EventuallyNil(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d alive", pid)
		}
		return nil
	}, "the task's process gone")
}

// A runner killed with SIGKILL goes offline when its lease runs out, its
// running task fails, the offline webhook arrives; restarted, it comes
// back as the same runner.
func TestKilledRunnerGoesOfflineAndComesBackAsSameRunner(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	dir := t.TempDir()
	p := c.startRunner(runnerOpts{name: "doomed", stateDir: dir})
	id := runnerID(t, dir)
	epoch := c.runner(id).LeaseEpoch
	pidFile := filepath.Join(t.TempDir(), "pid")
	killPIDFile(t, pidFile)
	task := c.dispatch(id, "shell", shellPayload{Command: fmt.Sprintf("echo $$ > %s; exec sleep 20", pidFile)})
	c.waitTask(id, task.ID, wire.TaskRunning, 20*time.Second)

	killed := time.Now()
	p.signal(syscall.SIGKILL)
	p.wait(5 * time.Second)
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if info := c.runner(id); info.Status != wire.RunnerOffline {
			return fmt.Errorf("status %s", info.Status)
		}
		return nil
	}, "the runner offline")
	if d := time.Since(killed); d < time.Duration(c.leaseMs)*time.Millisecond/2 {
		t.Fatalf("offline after %s: sooner than the lease allows", d)
	}
	if info := c.runner(id); info.OfflineReason != wire.ReasonLeaseExpired {
		t.Fatalf("offline reason %q", info.OfflineReason)
	}
	c.waitTask(id, task.ID, wire.TaskFailed, 10*time.Second)
	testkit.EventuallyNil(t, 20*time.Second, func() error {
		ev, ok := c.hooks.find(wire.EventRunnerOffline, id)
		if !ok {
			return fmt.Errorf("not received")
		}
		if ev.Data.Reason != wire.ReasonLeaseExpired || !slices.Contains(ev.Data.FailedTaskIDs, task.ID) {
			return fmt.Errorf("event data %+v", ev.Data)
		}
		return nil
	}, "the runner.offline webhook")

	// restarted on the same state directory: the same runner, a new epoch
	c.startRunner(runnerOpts{name: "doomed", stateDir: dir})
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		info := c.runner(id)
		if info.Status != wire.RunnerOnline || info.LeaseEpoch <= epoch {
			return fmt.Errorf("status %s epoch %d (was %d)", info.Status, info.LeaseEpoch, epoch)
		}
		return nil
	}, "the runner back online")
	if got := runnerID(t, dir); got != id {
		t.Fatalf("came back as %s, not %s", got, id)
	}
	next := c.dispatch(id, "shell", shellPayload{Command: "echo again"})
	c.waitTask(id, next.ID, wire.TaskSucceeded, 20*time.Second)
}

// A requested update drains the runner (the running task finishes), runs
// the update command, exits with 75; restarted like systemd would, the
// runner reports the new version and the controller clears the update.
func TestSelfUpdate(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	dir := t.TempDir()
	versionFile := filepath.Join(t.TempDir(), "VERSION")
	if err := os.WriteFile(versionFile, []byte("1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := runnerOpts{name: "updatable", stateDir: dir, versionFile: versionFile}
	p := c.startRunner(opts)
	id := runnerID(t, dir)
	task := c.dispatch(id, "shell", shellPayload{Command: "sleep 1; echo before-update"})
	c.waitTask(id, task.ID, wire.TaskRunning, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.op.RequestUpdate(ctx, id, wire.RequestUpdatePayload{
		Version: "1.1.0", Command: fmt.Sprintf(`echo "$RATATOSKR_UPDATE_VERSION" > %s`, versionFile),
	}); err != nil {
		t.Fatalf("request update: %v", err)
	}
	if code := p.wait(30 * time.Second); code != 75 {
		t.Fatalf("updated runner exited %d, want 75", code)
	}
	done := c.waitTask(id, task.ID, wire.TaskSucceeded, 5*time.Second)
	if r := decodeResult(t, done); r.Stdout != "before-update\n" {
		t.Fatalf("task result %+v", r)
	}
	if b, _ := os.ReadFile(versionFile); strings.TrimSpace(string(b)) != "1.1.0" {
		t.Fatalf("version file %q", b)
	}

	// the supervisor restarts it
	c.startRunner(opts)
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		info := c.runner(id)
		if info.Version != "1.1.0" || info.PendingUpdate != nil || info.Status != wire.RunnerOnline {
			return fmt.Errorf("version %s pending %+v status %s", info.Version, info.PendingUpdate, info.Status)
		}
		return nil
	}, "the new version reported and the update cleared")
	if got := runnerID(t, dir); got != id {
		t.Fatalf("came back as %s", got)
	}
	after := c.dispatch(id, "shell", shellPayload{Command: "echo after-update"})
	c.waitTask(id, after.ID, wire.TaskSucceeded, 20*time.Second)
}

// bin/api is killed while a task runs and the task finishes while it is
// down: the agent keeps the result and reports it when the API is back.
func TestControllerRestartLosesNoResult(t *testing.T) {
	// the lease must outlive the outage, or the sweeper rightly fails the task
	c := startCluster(t, clusterOpts{leaseTTLMs: 8000, heartbeatMs: 500})
	dir := t.TempDir()
	c.startRunner(runnerOpts{name: "patient", stateDir: dir})
	id := runnerID(t, dir)
	epoch := c.runner(id).LeaseEpoch
	task := c.dispatch(id, "shell", shellPayload{Command: "sleep 1; echo survived"})
	c.waitTask(id, task.ID, wire.TaskRunning, 20*time.Second)

	c.api.signal(syscall.SIGKILL)
	c.api.wait(5 * time.Second)
	// the task finishes and its report fails while the API is down
	resultsDir := filepath.Join(dir, "results")
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		entries, err := os.ReadDir(resultsDir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") {
				return nil
			}
		}
		return fmt.Errorf("no result file")
	}, "the result queued on disk while the API is down")
	c.startAPI()
	done := c.waitTask(id, task.ID, wire.TaskSucceeded, 20*time.Second)
	if r := decodeResult(t, done); r.Stdout != "survived\n" || done.LeaseEpoch != epoch {
		t.Fatalf("result %+v epoch %d (want %d)", r, done.LeaseEpoch, epoch)
	}
	if info := c.runner(id); info.Status != wire.RunnerOnline || info.LeaseEpoch != epoch {
		t.Fatalf("after the outage: status %s epoch %d (want %d)", info.Status, info.LeaseEpoch, epoch)
	}
}
