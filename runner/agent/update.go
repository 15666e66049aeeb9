package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// considerUpdate hands a pending update to Run once, unless the agent runs
// that version already, or the same update failed (or changed nothing)
// within UpdateRetry.
func (a *Agent) considerUpdate(pu wire.PendingUpdate) {
	want := normVersion(pu.Version)
	if want == "" || want == normVersion(a.cfg.Version) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.updateSent {
		return
	}
	if at, ok := a.updateFailed[want]; ok && time.Since(at) < a.cfg.UpdateRetry {
		return
	}
	if la := a.lastAttempt; normVersion(la.Version) == want && normVersion(la.From) == normVersion(a.cfg.Version) &&
		time.Since(la.At) < a.cfg.UpdateRetry {
		// we ran this update, exited, and came back on the same version
		a.log.Error("the last update did not change the version: not running it again yet",
			"version", a.cfg.Version, "want", pu.Version, "attempted_at", la.At, "retry_after", a.cfg.UpdateRetry)
		a.updateFailed[want] = la.At
		return
	}
	select {
	case a.updateCh <- pu:
		a.updateSent = true
	default:
	}
}

// update drains (no new tasks; running ones finish), runs the update
// command and returns nil when the agent should exit for a restart.
func (a *Agent) update(ctx, hard context.Context, pu wire.PendingUpdate) error {
	cmdline := strings.TrimSpace(pu.Command)
	if cmdline == "" {
		cmdline = strings.TrimSpace(a.cfg.UpdateCommand)
	}
	if cmdline == "" {
		return fmt.Errorf("update to %s requested without a command, and UPDATE_COMMAND is not set", pu.Version)
	}
	a.log.Info("update requested: taking no new tasks, waiting for the running ones", "version", a.cfg.Version,
		"want", pu.Version, "running", a.running())
	a.setAccepting(false)
	// a drain request or a hard stop interrupts the wait
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	stop := context.AfterFunc(hard, cancelWait)
	defer stop()
	if !a.waitTasks(wctx, 0) {
		return errors.New("update interrupted by shutdown")
	}
	if left := a.flushResults(wctx, 15*time.Second); left > 0 {
		a.log.Warn("results still unreported before the update: kept in the state directory", "count", left)
	}
	if err := a.deps.State.SaveUpdate(state.UpdateAttempt{Version: pu.Version, From: a.cfg.Version, At: time.Now().UTC()}); err != nil {
		a.log.Error("state: cannot record the update attempt", "err", err)
	}
	a.log.Info("running the update command", "want", pu.Version)
	cctx, cancel := context.WithTimeout(hard, a.cfg.UpdateTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", cmdline)
	cmd.Env = append(append([]string{}, a.deps.UpdateEnviron...),
		"RATATOSKR_UPDATE_VERSION="+pu.Version, "RATATOSKR_VERSION="+a.cfg.Version)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out := newLimitedBuffer(4096)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if err != nil {
		return fmt.Errorf("update command: %w (output: %q)", err, out.String())
	}
	a.log.Info("update command succeeded: exiting so the supervisor restarts ratatoskr on the new version",
		"want", pu.Version, "output", out.String())
	return nil
}

// limitedBuffer keeps the last n bytes of the update command's output.
type limitedBuffer struct {
	n int
	b []byte
}

func newLimitedBuffer(n int) *limitedBuffer { return &limitedBuffer{n: n} }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > l.n {
		l.b = l.b[len(l.b)-l.n:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return strings.TrimSpace(string(l.b)) }
