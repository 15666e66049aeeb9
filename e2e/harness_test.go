package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

const (
	runnerKey   = "e2e-runner-key-0123456789"
	operatorKey = "e2e-operator-key-0123456789"
)

// The binaries under test, built once by TestMain.
var (
	binDir    string
	buildErrs = map[string]error{}
	packages  = map[string]string{
		"api":       "github.com/yggdrasil-cp/yggdrasil/services/api",
		"sweeper":   "github.com/yggdrasil-cp/yggdrasil/services/sweeper",
		"hooks":     "github.com/yggdrasil-cp/yggdrasil/services/hooks",
		"ratatoskr": "github.com/yggdrasil-cp/yggdrasil/runner",
	}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "yggdrasil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	var wg sync.WaitGroup
	var mu sync.Mutex
	for name, pkg := range packages {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			out, err := cmd.CombinedOutput()
			if err != nil {
				mu.Lock()
				buildErrs[name] = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binary returns the path of a built binary, failing the test clearly when
// it did not build.
func binary(t *testing.T, name string) string {
	t.Helper()
	if err := buildErrs[name]; err != nil {
		t.Fatalf("bin/%s does not build, so the end-to-end test cannot run:\n%v", name, err)
	}
	return filepath.Join(binDir, name)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one process under test.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
	code int
}

func startProc(t *testing.T, name, bin string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LOG_FORMAT=simple"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("---- output of %s (exit %d) ----\n%s", name, p.code, tail(out.String(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %s", p.name, limit)
		return -1
	}
}

// hookReceiver is the webhook endpoint RUNNER_OFFLINE_HOOK points at.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []receivedEvent
}

type receivedEvent struct {
	Type string
	Data wire.RunnerEventData
	// Traceparent is the delivery request's traceparent header.
	Traceparent string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev wire.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		var data wire.RunnerEventData
		_ = json.Unmarshal(ev.Data, &data)
		h.mu.Lock()
		h.events = append(h.events, receivedEvent{Type: ev.Type, Data: data, Traceparent: r.Header.Get("traceparent")})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) find(typ, runnerID string) (receivedEvent, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Type == typ && e.Data.Runner.ID == runnerID {
			return e, true
		}
	}
	return receivedEvent{}, false
}

// cluster is a controller: redis-server, bin/api, bin/sweeper, bin/hooks.
type cluster struct {
	t       *testing.T
	redis   *redistest.Server
	apiPort int
	url     string
	apiEnv  map[string]string
	api     *proc
	sweeper *proc
	hooksP  *proc
	hooks   *hookReceiver
	op      *client.Client
	leaseMs int
}

type clusterOpts struct {
	leaseTTLMs, heartbeatMs int
	// apiEnv overrides bin/api's environment (an empty value unsets).
	apiEnv map[string]string
	// env is added to every service's environment (api, sweeper, hooks).
	env map[string]string
}

func startCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.leaseTTLMs == 0 {
		o.leaseTTLMs, o.heartbeatMs = 2000, 500
	}
	srv, _ := redistest.Start(t)
	c := &cluster{t: t, redis: srv, apiPort: freePort(t), hooks: newHookReceiver(t), leaseMs: o.leaseTTLMs}
	c.url = "http://127.0.0.1:" + strconv.Itoa(c.apiPort)
	common := merge(map[string]string{"REDIS_URL": srv.URL(), "LOG_LEVEL": "info"}, o.env)
	c.apiEnv = merge(common, map[string]string{
		"PORT": strconv.Itoa(c.apiPort), "API_KEYS": runnerKey, "ADMIN_API_KEYS": operatorKey,
		"LEASE_TTL_MS": strconv.Itoa(o.leaseTTLMs), "HEARTBEAT_INTERVAL_MS": strconv.Itoa(o.heartbeatMs),
	}, o.apiEnv)
	c.startAPI()
	c.sweeper = startProc(t, "sweeper", binary(t, "sweeper"), merge(common, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "LEASE_TTL_MS": strconv.Itoa(o.leaseTTLMs), "SWEEP_INTERVAL_MS": "100",
		"HEARTBEAT_INTERVAL_MS": strconv.Itoa(o.heartbeatMs), "MASS_EXPIRY_PERCENT": "100", "TASK_TIMEOUT_GRACE_MS": "500",
	}))
	c.hooksP = startProc(t, "hooks", binary(t, "hooks"), merge(common, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "RUNNER_OFFLINE_HOOK": c.hooks.srv.URL,
		"HOOK_BACKOFF_BASE_MS": "200", "HOOK_BACKOFF_MAX_MS": "1000", "HOOK_POLL_INTERVAL_MS": "50",
		"HOOK_RETRY_CHECK_MS": "100",
	}))
	c.op = client.New(c.url, operatorKey)
	return c
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// startAPI starts bin/api on the cluster's port and waits until it is ready.
func (c *cluster) startAPI() {
	c.t.Helper()
	c.api = startProc(c.t, "api", binary(c.t, "api"), c.apiEnv)
	cl := client.New(c.url, "")
	testkit.EventuallyNil(c.t, 15*time.Second, func() error {
		if !c.api.running() {
			c.t.Fatalf("bin/api exited with %d:\n%s", c.api.code, c.api.out.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Ready(ctx)
	}, "bin/api ready")
}

// runnerOpts configures one bin/ratatoskr.
type runnerOpts struct {
	name        string
	stateDir    string
	versionFile string
	capacity    int
	extra       map[string]string
}

func (c *cluster) startRunner(o runnerOpts) *proc {
	c.t.Helper()
	if o.capacity == 0 {
		o.capacity = 2
	}
	env := map[string]string{
		"YGGDRASIL_URL": c.url, "YGGDRASIL_API_KEY": runnerKey,
		"RUNNER_NAME": o.name, "RUNNER_STATE_DIR": o.stateDir, "RUNNER_VERSION": "1.0.0",
		"RUNNER_CAPACITY": strconv.Itoa(o.capacity), "RUNNER_LABELS": "suite=e2e,name=" + o.name,
		"LONG_POLL_WAIT": "5s", "HTTP_TIMEOUT": "10s", "BACKOFF_BASE": "100ms", "BACKOFF_MAX": "1s",
		"DRAIN_TIMEOUT": "10s", "KILL_GRACE": "500ms", "LOG_LEVEL": "debug",
	}
	if o.versionFile != "" {
		env["RUNNER_VERSION_FILE"] = o.versionFile
	}
	return startProc(c.t, "ratatoskr "+o.name, binary(c.t, "ratatoskr"), merge(env, o.extra))
}

// runnerID reads the id a runner saved in its state directory.
func runnerID(t *testing.T, stateDir string) string {
	t.Helper()
	var id string
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(stateDir, "identity.json"))
		if err != nil {
			return err
		}
		var ident struct {
			RunnerID string `json:"runnerId"`
		}
		if err := json.Unmarshal(b, &ident); err != nil || ident.RunnerID == "" {
			return fmt.Errorf("identity %q: %v", b, err)
		}
		id = ident.RunnerID
		return nil
	}, "%s", "the runner's identity in "+stateDir)
	return id
}

func (c *cluster) runner(id string) wire.RunnerInfo {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.op.GetRunner(ctx, id)
	if err != nil {
		c.t.Fatalf("GetRunner %s: %v", id, err)
	}
	return info
}

func (c *cluster) dispatch(runnerID string, typ string, payload any) wire.RunnerTask {
	c.t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	task, _, err := c.op.Dispatch(ctx, runnerID, wire.DispatchTaskPayload{Type: typ, Payload: b}, "")
	if err != nil {
		c.t.Fatalf("dispatch to %s: %v", runnerID, err)
	}
	return task
}

// task reads one task of a runner through the operator API.
func (c *cluster) task(runnerID, taskID string) (wire.RunnerTask, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cursor := ""
	for {
		list, err := c.op.ListTasks(ctx, runnerID, client.TaskQuery{Cursor: cursor, Limit: 100})
		if err != nil {
			return wire.RunnerTask{}, err
		}
		for _, t := range list.Tasks {
			if t.ID == taskID {
				return t, nil
			}
		}
		if list.NextCursor == "" {
			return wire.RunnerTask{}, fmt.Errorf("task %s not listed for runner %s", taskID, runnerID)
		}
		cursor = list.NextCursor
	}
}

func (c *cluster) waitTask(runnerID, taskID string, want wire.TaskStatus, limit time.Duration) wire.RunnerTask {
	c.t.Helper()
	var got wire.RunnerTask
	testkit.EventuallyNil(c.t, limit, func() error {
		t, err := c.task(runnerID, taskID)
		if err != nil {
			return err
		}
		got = t
		if t.Status != want {
			return fmt.Errorf("status %s (error %q)", t.Status, t.Error)
		}
		return nil
	}, "%s", "task "+taskID+" "+string(want))
	return got
}

// shellResult decodes the result of a shell task.
type shellResult struct {
	ExitCode int    `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

func decodeResult(t *testing.T, task wire.RunnerTask) shellResult {
	t.Helper()
	var r shellResult
	if err := json.Unmarshal(task.Result, &r); err != nil {
		t.Fatalf("task %s result %s: %v", task.ID, task.Result, err)
	}
	return r
}

// killPIDFile kills the process whose pid a task wrote, at cleanup: a
// SIGKILLed agent leaves its task's process group behind by design.
func killPIDFile(t *testing.T, path string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}
