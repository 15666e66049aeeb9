package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	runnerKey = "cli-runner-key-0123456789"
	opKey     = "cli-operator-key-0123456789"
)

// stack is bin/api, bin/sweeper and bin/hooks over one redis-server.
type stack struct{ api, sweeper, hooks string }

func build(t *testing.T, dir string) map[string]string {
	t.Helper()
	bins := map[string]string{}
	for name, pkg := range map[string]string{"api": "services/api", "sweeper": "services/sweeper", "hooks": "services/hooks"} {
		bins[name] = filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", bins[name], "github.com/yggdrasil-cp/yggdrasil/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s (the test runs the real services, inside the workspace): %v\n%s", pkg, err, out)
		}
	}
	return bins
}

func port(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startStack(t *testing.T) stack {
	t.Helper()
	dir := t.TempDir()
	bins := build(t, dir)
	srv, _ := redistest.Start(t)
	s := stack{}
	urls := map[string]*string{"api": &s.api, "sweeper": &s.sweeper, "hooks": &s.hooks}
	for _, name := range []string{"api", "sweeper", "hooks"} {
		p := port(t)
		*urls[name] = "http://127.0.0.1:" + strconv.Itoa(p)
		cmd := exec.Command(bins[name])
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LOG_FORMAT=simple", "REDIS_URL=" + srv.URL(),
			"PORT=" + strconv.Itoa(p), "API_KEYS=" + runnerKey, "ADMIN_API_KEYS=" + opKey}
		out := &testkit.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("---- %s ----\n%s", name, out.String())
			}
		})
		base := *urls[name]
		testkit.EventuallyNil(t, 20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return client.New(base, "").Ready(ctx)
		}, "%s ready", name)
	}
	return s
}

// yggctl runs the CLI in-process with env and returns stdout, stderr, code.
func yggctl(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errw bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := Run(ctx, args, env, &out, &errw)
	return out.String(), errw.String(), code
}

var (
	ages    = regexp.MustCompile(`\b(in )?\d+[smhd]\b`)
	taskIDs = regexp.MustCompile(`\btsk_[A-Za-z0-9_-]+`)
	keyIDs  = regexp.MustCompile(`\bkey_[0-9a-f]+`)
	blanks  = regexp.MustCompile(`  +`)
)

// normalize hides what changes from run to run: ages and task ids, and the
// padding that depends on their width (runs of blanks become three, the
// tabwriter's gap), so the goldens hold the columns, headers and cells.
func normalize(s string) string {
	s = ages.ReplaceAllString(taskIDs.ReplaceAllString(s, "<task>"), "<age>")
	s = keyIDs.ReplaceAllString(s, "<key-id>")
	return blanks.ReplaceAllString(s, "   ")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got = normalize(got)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestYggctlAgainstTheRealServices(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	home := t.TempDir()
	env := map[string]string{"HOME": home, "YGGDRASIL_URL": s.api, "YGGDRASIL_API_KEY": opKey,
		"YGGDRASIL_SWEEPER_URL": s.sweeper, "YGGDRASIL_HOOKS_URL": s.hooks}

	reg := client.New(s.api, runnerKey)
	var tokens []wire.RegisterRunnerResponse
	for i, realm := range []string{"eu", "eu", "us"} {
		r, err := reg.Register(ctx, wire.RegisterRunnerPayload{RunnerID: fmt.Sprintf("cli-%d", i+1), Name: fmt.Sprintf("build-%d", i+1), Version: "1.2.0", Realm: realm, Capacity: 2})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, r)
	}
	if _, err := client.New(s.api, tokens[2].Token).Offline(ctx, wire.OfflinePayload{RunnerID: "cli-3"}); err != nil {
		t.Fatal(err)
	}

	t.Run("runners list", func(t *testing.T) {
		out, errw, code := yggctl(t, env, "runners", "list")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errw)
		}
		golden(t, "runners-list", out)
		out, _, _ = yggctl(t, env, "runners", "list", "--status", "online", "-o", "wide")
		golden(t, "runners-list-online-wide", out)
		out, _, _ = yggctl(t, env, "runners", "list", "--realm", "us", "-o", "json")
		var rs []wire.RunnerInfo
		if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || rs[0].ID != "cli-3" || rs[0].Status != wire.RunnerOffline {
			t.Errorf("-o json = %v %s", err, out)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{"runners", "get", "cli-1"}, ExitOK},
			{[]string{"runners", "get", "nope"}, ExitNotFound},
			{[]string{"runners", "delete", "cli-1"}, ExitConflict}, // online
			{[]string{"runners", "list", "--status", "busy"}, ExitUsage},
			{[]string{"runners", "get"}, ExitUsage},
			{[]string{"runners", "frobnicate"}, ExitUsage},
			{[]string{"runners", "list", "--nope"}, ExitUsage},
			{[]string{"-o", "yaml", "admission"}, ExitUsage},
			{[]string{"tasks", "get", "cli-1", "tsk_nope"}, ExitNotFound},
			{[]string{"quarantine", "release"}, ExitConflict}, // none active
			{[]string{"hooks", "replay"}, ExitUsage},
			{[]string{"runners", "delete", "cli-3"}, ExitOK}, // offline: deleted
			{[]string{"--api-key", "wrong-key-0123456789", "runners", "list"}, ExitError},
		} {
			_, errw, code := yggctl(t, env, tc.args...)
			if code != tc.code {
				t.Errorf("yggctl %s: exit %d, want %d (%s)", strings.Join(tc.args, " "), code, tc.code, errw)
			}
			if strings.Contains(errw, opKey) {
				t.Errorf("yggctl %s printed the key", strings.Join(tc.args, " "))
			}
		}
	})

	t.Run("dispatch, get, wait, list, cancel", func(t *testing.T) {
		out, errw, code := yggctl(t, env, "tasks", "dispatch", "cli-1", "--command", "echo hi", "-o", "json")
		if code != 0 {
			t.Fatalf("dispatch: exit %d %s", code, errw)
		}
		var task wire.RunnerTask
		if err := json.Unmarshal([]byte(out), &task); err != nil || task.Status != wire.TaskPending || task.Type != "shell" {
			t.Fatalf("dispatch = %v %s", err, out)
		}
		// the runner plays its part while yggctl waits
		runner := client.New(s.api, tokens[0].Token)
		go func() {
			_, _ = runner.UpdateTask(ctx, "cli-1", task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning})
			_, _ = runner.UpdateTask(ctx, "cli-1", task.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded, Result: json.RawMessage(`{"exitCode":0,"stdout":"hi\n"}`)})
		}()
		out, errw, code = yggctl(t, env, "tasks", "wait", "cli-1", task.ID, "--timeout", "15s")
		if code != 0 {
			t.Fatalf("wait: exit %d %s %s", code, out, errw)
		}
		golden(t, "tasks-wait-succeeded", out)

		other, _, _ := client.New(s.api, opKey).Dispatch(ctx, "cli-2", wire.DispatchTaskPayload{Type: "echo"}, "")
		out, _, code = yggctl(t, env, "tasks", "cancel", "cli-2", other.ID, "--reason", "not needed")
		if code != 0 {
			t.Fatalf("cancel: exit %d", code)
		}
		golden(t, "tasks-cancel", out)
		if _, _, code = yggctl(t, env, "tasks", "cancel", "cli-2", other.ID); code != ExitOK {
			t.Errorf("cancel twice: exit %d, want 0 (the same status again is a no-op)", code)
		}
		if _, _, code = yggctl(t, env, "tasks", "cancel", "cli-1", task.ID); code != ExitConflict {
			t.Errorf("cancel a succeeded task: exit %d, want 4", code)
		}
		if _, _, code = yggctl(t, env, "tasks", "wait", "cli-2", other.ID); code != ExitError {
			t.Errorf("wait on a cancelled task: exit %d, want 1", code)
		}
		out, _, _ = yggctl(t, env, "tasks", "list")
		golden(t, "tasks-list", out)
		out, _, _ = yggctl(t, env, "tasks", "list", "--status", "cancelled", "-o", "wide")
		golden(t, "tasks-list-cancelled-wide", out)
	})

	t.Run("update, admission, quarantine, hooks", func(t *testing.T) {
		out, _, code := yggctl(t, env, "update", "request", "cli-1", "--version", "1.3.0")
		if code != 0 || out != "runner cli-1: update to 1.3.0 requested\n" {
			t.Errorf("update request: %d %q", code, out)
		}
		out, _, _ = yggctl(t, env, "admission")
		golden(t, "admission", out)
		out, _, _ = yggctl(t, env, "quarantine", "show")
		golden(t, "quarantine-show", out)
		out, errw, code := yggctl(t, env, "hooks", "archived")
		if code != 0 {
			t.Fatalf("hooks archived: %d %s", code, errw)
		}
		golden(t, "hooks-archived-empty", out)
		if out, errw, code := yggctl(t, env, "hooks", "replay", "--all"); code != 0 || out != "0 deliveries queued again\n" {
			t.Errorf("hooks replay --all: %d %q %s", code, out, errw)
		}
	})

	t.Run("realms", func(t *testing.T) {
		run := func(args ...string) string {
			t.Helper()
			out, errw, code := yggctl(t, env, args...)
			if code != 0 {
				t.Fatalf("yggctl %s: exit %d %s", strings.Join(args, " "), code, errw)
			}
			return out
		}
		golden(t, "realms-create", run("realms", "create", "team-a", "--description", "Team A",
			"--policies", `{"maxRunners":5,"massExpiryPercent":30,"webhookSecret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`))
		golden(t, "realms-list-wide", run("realms", "list", "-o", "wide"))
		out, errw, code := yggctl(t, env, "realms", "keys", "issue", "team-a", "--name", "ci", "--role", "register")
		key := regexp.MustCompile(`ygg_rk_[0-9a-f]{64}`).FindString(out)
		if code != 0 || key == "" {
			t.Fatalf("keys issue: %d %q %s", code, out, errw)
		}
		golden(t, "realms-keys-issue", strings.ReplaceAll(out, key, "<key>"))
		// the issued key registers into its realm
		if _, err := client.New(s.api, key).Register(ctx, wire.RegisterRunnerPayload{RunnerID: "cli-a1", Name: "a1", Version: "1.2.0", Capacity: 1}); err != nil {
			t.Fatalf("register with the issued key: %v", err)
		}
		out = run("realms", "keys", "list", "team-a")
		if strings.Contains(out, key) {
			t.Error("keys list shows key material")
		}
		golden(t, "realms-keys-list", out)
		golden(t, "realms-drain", run("realms", "drain", "team-a"))
		golden(t, "realms-get", run("realms", "get", "team-a"))
		if _, _, code := yggctl(t, env, "realms", "delete", "team-a"); code != ExitConflict {
			t.Errorf("delete a draining realm: exit %d, want 4", code)
		}
		run("realms", "activate", "team-a")
		run("realms", "close", "team-a")
		id := keyIDs.FindString(out)
		if got := run("realms", "keys", "revoke", "team-a", id); got != "realm team-a: key "+id+" revoked\n" {
			t.Errorf("revoke: %q", got)
		}
		if _, err := client.New(s.api, key).Register(ctx, wire.RegisterRunnerPayload{RunnerID: "cli-a2", Name: "a2", Version: "1.2.0", Capacity: 1}); client.StatusOf(err) != 401 {
			t.Errorf("register with the revoked key: %v, want 401", err)
		}
		if _, err := client.New(s.api, opKey).Offline(ctx, wire.OfflinePayload{RunnerID: "cli-a1"}); err != nil {
			t.Fatal(err)
		}
		if got := run("realms", "delete", "team-a"); got != "realm team-a deleted\n" {
			t.Errorf("delete: %q", got)
		}
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{"realms", "get", "team-a"}, ExitNotFound},
			{[]string{"realms", "create", "Not_A_Label"}, ExitUsage},
			{[]string{"realms", "create", "x", "--policies", "{"}, ExitUsage},
			{[]string{"realms", "keys", "issue", "default", "--role", "admin"}, ExitUsage},
			{[]string{"realms", "delete", "default"}, ExitConflict},
		} {
			if _, errw, code := yggctl(t, env, tc.args...); code != tc.code {
				t.Errorf("yggctl %s: exit %d, want %d (%s)", strings.Join(tc.args, " "), code, tc.code, errw)
			}
		}
	})

	t.Run("contexts", func(t *testing.T) {
		cfgEnv := map[string]string{"HOME": home} // no YGGDRASIL_* here: the file decides
		for _, args := range [][]string{
			{"config", "set-context", "dev", "--url", s.api, "--api-key", opKey},
			{"config", "set-context", "broken", "--url", "http://127.0.0.1:1"},
			{"config", "use-context", "dev"},
		} {
			if _, errw, code := yggctl(t, cfgEnv, args...); code != 0 {
				t.Fatalf("%v: %d %s", args, code, errw)
			}
		}
		if out, _, code := yggctl(t, cfgEnv, "runners", "get", "cli-1", "-o", "json"); code != 0 || !strings.Contains(out, `"id": "cli-1"`) {
			t.Errorf("runners get through the dev context: %d %s", code, out)
		}
		if _, _, code := yggctl(t, cfgEnv, "--context", "broken", "--request-timeout", "2s", "admission"); code != ExitError {
			t.Errorf("--context broken: exit %d, want 1", code)
		}
		if _, _, code := yggctl(t, cfgEnv, "config", "use-context", "nope"); code != ExitNotFound {
			t.Errorf("use-context nope: exit %d, want 3", code)
		}
		out, _, _ := yggctl(t, cfgEnv, "config", "get-contexts")
		if strings.Contains(out, opKey) {
			t.Error("get-contexts shows a key")
		}
		b, err := os.ReadFile(filepath.Join(home, ".config", "yggctl", "config.yaml"))
		if err != nil || !strings.Contains(string(b), "current-context: dev") {
			t.Errorf("config file: %v\n%s", err, b)
		}
		if fi, _ := os.Stat(filepath.Join(home, ".config", "yggctl", "config.yaml")); fi == nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("config file mode %v, want 0600", fi)
		}
	})

	t.Run("completion", func(t *testing.T) {
		for _, sh := range []string{"bash", "zsh", "fish"} {
			out, _, code := yggctl(t, env, "completion", sh)
			if code != 0 || !strings.Contains(out, "yggctl") {
				t.Errorf("completion %s: %d, %d bytes", sh, code, len(out))
			}
		}
	})
}
