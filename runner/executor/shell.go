// Package executor runs the tasks a Ratatoskr agent receives. Shell runs the
// `shell` task type: a command in its own process group, with a timeout,
// cancellation, and bounded tails of its output.
//
// It must never talk to the controller, and never pass the agent's own
// credentials (YGGDRASIL_* variables) to a task.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// TypeShell is the task type Shell runs.
const TypeShell = "shell"

// Sentinel errors a caller may branch on; the text goes to the task's error.
var (
	ErrBadPayload = errors.New("invalid shell payload")
	ErrTimeout    = errors.New("timed out")
	ErrCancelled  = errors.New("cancelled")
	// ErrKill, as the cause of a cancelled context, skips SIGTERM: the
	// process group gets SIGKILL at once (the agent is stopping hard).
	ErrKill = errors.New("killed at once")
)

// ShellPayload is the payload of a shell task. With Args, Command is run
// directly with those arguments; without, Command is a script for /bin/sh -c.
type ShellPayload struct {
	Command   string            `json:"command"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Dir       string            `json:"dir,omitempty"`
	TimeoutMs int64             `json:"timeoutMs,omitempty"`
}

// ShellResult is the result JSON of a shell task.
type ShellResult struct {
	ExitCode int `json:"exitCode"`
	// Signal names the signal that ended the process, if one did.
	Signal string `json:"signal,omitempty"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// StdoutDropped and StderrDropped count the bytes cut from the front.
	StdoutDropped int64 `json:"stdoutDropped,omitempty"`
	StderrDropped int64 `json:"stderrDropped,omitempty"`
	DurationMs    int64 `json:"durationMs"`
	TimedOut      bool  `json:"timedOut,omitempty"`
	Cancelled     bool  `json:"cancelled,omitempty"`
}

// Shell runs shell tasks. The zero value is not usable: use NewShell.
type Shell struct {
	// TailBytes bounds the stdout and stderr kept, each.
	TailBytes int
	// DefaultTimeout applies when neither the payload nor the task sets one (0 = none).
	DefaultTimeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL of the process group.
	KillGrace time.Duration
	// Environ is the base environment of every task (secrets already removed).
	Environ []string
}

// NewShell returns a Shell whose tasks inherit the agent's environment
// without the YGGDRASIL_* variables.
func NewShell(tailBytes int, defaultTimeout, killGrace time.Duration) *Shell {
	return &Shell{TailBytes: tailBytes, DefaultTimeout: defaultTimeout, KillGrace: killGrace, Environ: cleanEnviron(os.Environ())}
}

func cleanEnviron(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "YGGDRASIL_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ParseShellPayload decodes and checks a shell payload.
func ParseShellPayload(raw json.RawMessage) (ShellPayload, error) {
	var p ShellPayload
	if len(raw) == 0 {
		return p, fmt.Errorf("%w: empty payload (want {\"command\": ...})", ErrBadPayload)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if strings.TrimSpace(p.Command) == "" {
		return p, fmt.Errorf("%w: command is empty", ErrBadPayload)
	}
	if p.TimeoutMs < 0 {
		return p, fmt.Errorf("%w: timeoutMs %d is negative", ErrBadPayload, p.TimeoutMs)
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return p, fmt.Errorf("%w: env name %q", ErrBadPayload, k)
		}
	}
	return p, nil
}

// Run runs a shell task. taskTimeout is the task's own timeoutMs as a
// duration (0 = none); the payload's timeoutMs wins when set. The result is
// filled whenever the process started; err says why the task failed (nil
// when it exited 0) and wraps ErrTimeout or ErrCancelled when it was stopped.
// Cancelling ctx stops the task; context.Cause(ctx) is recorded in the error.
func (s *Shell) Run(ctx context.Context, raw json.RawMessage, taskTimeout time.Duration) (*ShellResult, error) {
	p, err := ParseShellPayload(raw)
	if err != nil {
		return nil, err
	}
	timeout := s.DefaultTimeout
	if taskTimeout > 0 {
		timeout = taskTimeout
	}
	if p.TimeoutMs > 0 {
		timeout = time.Duration(p.TimeoutMs) * time.Millisecond
	}
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
		defer cancel()
	}

	var cmd *exec.Cmd
	if len(p.Args) > 0 {
		cmd = exec.CommandContext(runCtx, p.Command, p.Args...)
	} else {
		cmd = exec.CommandContext(runCtx, "/bin/sh", "-c", p.Command)
	}
	cmd.Dir = p.Dir
	cmd.Env = append([]string{}, s.Environ...)
	for k, v := range p.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = nil
	stdout, stderr := newTail(s.TailBytes), newTail(s.TailBytes)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that stopping the task stops everything it
	// started, and a signal sent to the agent's group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if errors.Is(context.Cause(runCtx), ErrKill) {
			return killGroup(cmd, syscall.SIGKILL)
		}
		return killGroup(cmd, syscall.SIGTERM)
	}
	// After SIGTERM (or after the leader exits while children hold the
	// pipes), wait at most KillGrace; then Wait kills the leader and closes
	// the pipes, and the SIGKILL below takes the rest of the group.
	cmd.WaitDelay = max(s.KillGrace, time.Millisecond)

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q: %w", p.Command, err)
	}
	waitErr := cmd.Wait()
	// The task's process group never outlives it.
	_ = killGroup(cmd, syscall.SIGKILL)

	res := &ShellResult{
		ExitCode:      -1,
		Stdout:        stdout.String(),
		Stderr:        stderr.String(),
		StdoutDropped: stdout.Dropped(),
		StderrDropped: stderr.Dropped(),
		DurationMs:    time.Since(start).Milliseconds(),
	}
	if st := cmd.ProcessState; st != nil {
		res.ExitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	}
	if runCtx.Err() != nil {
		cause := context.Cause(runCtx)
		if errors.Is(cause, ErrTimeout) {
			res.TimedOut = true
			return res, cause
		}
		res.Cancelled = true
		if cause == nil || errors.Is(cause, context.Canceled) {
			return res, ErrCancelled
		}
		return res, fmt.Errorf("%w: %w", ErrCancelled, cause)
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			if res.Signal != "" {
				return res, fmt.Errorf("killed by signal %s", res.Signal)
			}
			return res, fmt.Errorf("exit status %d", res.ExitCode)
		}
		if errors.Is(waitErr, exec.ErrWaitDelay) {
			// exited 0, but a child kept the output open past KillGrace
			return res, nil
		}
		return res, fmt.Errorf("wait: %w", waitErr)
	}
	return res, nil
}

func killGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
