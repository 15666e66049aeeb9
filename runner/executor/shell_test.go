package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTestShell() *Shell {
	s := NewShell(1024, 0, 200*time.Millisecond)
	s.Environ = append(s.Environ, "YGGDRASIL_API_KEY_SHOULD_NOT_BE_HERE=1")
	s.Environ = cleanEnviron(s.Environ)
	return s
}

func payload(t *testing.T, p ShellPayload) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestShellOutcomes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		p          ShellPayload
		wantErr    string
		wantExit   int
		wantStdout string
		wantStderr string
	}{
		{name: "script succeeds", p: ShellPayload{Command: "echo hello; echo oops >&2"}, wantStdout: "hello\n", wantStderr: "oops\n"},
		{name: "exit code", p: ShellPayload{Command: "exit 3"}, wantErr: "exit status 3", wantExit: 3},
		{name: "args run without a shell", p: ShellPayload{Command: "echo", Args: []string{"$HOME", "a b"}}, wantStdout: "$HOME a b\n"},
		{name: "env and dir", p: ShellPayload{Command: "echo $FOO; pwd", Env: map[string]string{"FOO": "bar"}, Dir: dir}, wantStdout: "bar\n" + dir + "\n"},
		{name: "secrets are not inherited", p: ShellPayload{Command: "env | grep -c '^YGGDRASIL_' || true"}, wantStdout: "0\n"},
		{name: "missing binary", p: ShellPayload{Command: "/nonexistent/bin", Args: []string{"x"}}, wantErr: "start", wantExit: -1},
	}
	s := newTestShell()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Run(context.Background(), payload(t, tt.p), 0)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if res == nil {
				if tt.wantExit != -1 {
					t.Fatal("no result")
				}
				return
			}
			if res.ExitCode != tt.wantExit || res.Stdout != tt.wantStdout || res.Stderr != tt.wantStderr {
				t.Fatalf("got exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
		})
	}
}

func TestBadPayloads(t *testing.T) {
	s := newTestShell()
	for _, raw := range []string{``, `{`, `{"command":""}`, `{"command":"x","timeoutMs":-1}`, `{"command":"x","env":{"A=B":"c"}}`, `[]`} {
		_, err := s.Run(context.Background(), json.RawMessage(raw), 0)
		if !errors.Is(err, ErrBadPayload) {
			t.Errorf("payload %q: err = %v, want ErrBadPayload", raw, err)
		}
	}
}

// alive reports whether pid still exists (and is not a zombie we own).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d of the task's group still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	s := newTestShell()
	// A grandchild that ignores SIGTERM: only the SIGKILL of the whole group stops it.
	cmd := fmt.Sprintf(`sh -c 'trap "" TERM; echo $$ > %s; while :; do sleep 0.05; done' & wait`, pidFile)
	start := time.Now()
	res, err := s.Run(context.Background(), payload(t, ShellPayload{Command: cmd, TimeoutMs: 300}), 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if !res.TimedOut {
		t.Fatal("result does not say timedOut")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	waitDead(t, readPID(t, pidFile))
}

func TestTaskTimeoutAppliesWhenPayloadHasNone(t *testing.T) {
	s := newTestShell()
	_, err := s.Run(context.Background(), payload(t, ShellPayload{Command: "sleep 5"}), 200*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestCancelKillsProcessGroupWithCause(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	s := newTestShell()
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	var res *ShellResult
	var err error
	go func() {
		defer close(done)
		res, err = s.Run(ctx, payload(t, ShellPayload{Command: fmt.Sprintf(`sleep 30 & echo $! > %s; wait`, pidFile)}), 0)
	}()
	pid := readPID(t, pidFile)
	cancel(errors.New("listed in cancelTaskIds"))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "cancelTaskIds") {
		t.Fatalf("err = %v", err)
	}
	if !res.Cancelled {
		t.Fatal("result does not say cancelled")
	}
	waitDead(t, pid)
	if err := syscall.Kill(pid, 0); err == nil && alive(pid) {
		t.Fatal("child survived")
	}
}

func TestOutputTailIsBounded(t *testing.T) {
	s := newTestShell() // 1024 bytes each
	res, err := s.Run(context.Background(), payload(t, ShellPayload{Command: `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo END`}), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) > 1024 {
		t.Fatalf("stdout kept %d bytes", len(res.Stdout))
	}
	if !strings.HasSuffix(res.Stdout, "line 1999\nEND\n") {
		t.Fatalf("tail lost the end: %q", res.Stdout[len(res.Stdout)-40:])
	}
	if res.StdoutDropped == 0 || res.StdoutDropped+int64(len(res.Stdout)) < 10000 {
		t.Fatalf("dropped %d kept %d", res.StdoutDropped, len(res.Stdout))
	}
}

func TestTailWriter(t *testing.T) {
	for _, chunk := range []int{1, 3, 7, 10, 11, 25} {
		tl := newTail(10)
		var all []byte
		for i := 0; i < 57; i += chunk {
			var p []byte
			for j := i; j < i+chunk && j < 57; j++ {
				p = append(p, byte('a'+j%26))
			}
			all = append(all, p...)
			_, _ = tl.Write(p)
		}
		want := string(all[len(all)-10:])
		if got := tl.String(); got != want {
			t.Errorf("chunk %d: got %q want %q", chunk, got, want)
		}
		if tl.Dropped() != int64(len(all)-10) {
			t.Errorf("chunk %d: dropped %d", chunk, tl.Dropped())
		}
	}
	tl := newTail(4)
	_, _ = tl.Write([]byte("xé€")) // cut inside a multibyte rune
	if got := tl.String(); got != "€" {
		t.Errorf("got %q", got)
	}
}

func TestKillCauseSkipsSigterm(t *testing.T) {
	s := newTestShell()
	s.KillGrace = 10 * time.Second // would be waited for if SIGTERM were sent
	ctx, cancel := context.WithCancelCause(context.Background())
	pidFile := filepath.Join(t.TempDir(), "pid")
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, payload(t, ShellPayload{Command: fmt.Sprintf(`trap "" TERM; echo $$ > %s; while :; do sleep 0.05; done`, pidFile)}), 0)
		done <- err
	}()
	pid := readPID(t, pidFile)
	start := time.Now()
	cancel(ErrKill)
	select {
	case err := <-done:
		if !errors.Is(err, ErrKill) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("SIGKILL was not sent at once")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("too slow")
	}
	waitDead(t, pid)
}
