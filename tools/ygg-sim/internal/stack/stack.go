// Package stack starts a private controller for the simulator: a redis-server
// on a free loopback port and the real bin/api and bin/sweeper pointed at it,
// and samples their CPU and memory from /proc.
//
// It only ever listens on and talks to 127.0.0.1, and it must never touch a
// Redis or a process it did not start.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// Config is what the spawned controller runs with.
type Config struct {
	// BinDir holds the api and sweeper binaries (make build puts them in bin/).
	BinDir string
	// Dir receives Redis's files and the services' logs; empty = a new temp dir.
	Dir                 string
	APIKey, OperatorKey string
	LeaseTTLMs          int64
	HeartbeatIntervalMs int64
	// Env is added to both services' environment (for example MAX_RUNNERS).
	Env map[string]string
	// NoSweeper leaves the sweeper out (leases then never expire).
	NoSweeper bool
	// RedisArgs are extra redis-server arguments ("--hash-max-listpack-value", "64"),
	// after the recommended ones (hash-max-listpack-value 512), which they override.
	RedisArgs []string
	// HookURL, when set, starts BinDir/hooks too, delivering runner.offline
	// and runner.unreachable webhooks there (unsigned, HOOK_CONCURRENCY 50).
	HookURL string
}

// Stack is a running controller. Stop ends everything it started.
type Stack struct {
	URL      string
	Dir      string
	redis    *redistest.Server
	rdb      *redis.Client
	procs    map[string]*proc
	RedisPID int
	ownDir   bool
}

// Start runs redis-server, the api and the sweeper, and returns once the api
// answers /ready and the sweeper /health.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	s := &Stack{procs: map[string]*proc{}, Dir: cfg.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "ygg-sim-stack-"); err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
		s.ownDir = true
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	// The settings docs/deploy.md#redis recommends first; RedisArgs after them win.
	args := append([]string{"--hash-max-listpack-value", "512"}, cfg.RedisArgs...)
	if s.redis, err = redistest.StartServer(s.Dir, args...); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.rdb = s.redis.Client()
	info, err := s.rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		return nil, fmt.Errorf("stack: redis info: %w", err)
	}
	s.RedisPID, _ = strconv.Atoi(info["Server"]["process_id"])

	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	common := map[string]string{
		"REDIS_URL":             s.redis.URL(),
		"LEASE_TTL_MS":          strconv.FormatInt(cfg.LeaseTTLMs, 10),
		"HEARTBEAT_INTERVAL_MS": strconv.FormatInt(cfg.HeartbeatIntervalMs, 10),
		"ADMIN_API_KEYS":        cfg.OperatorKey,
		"LOG_LEVEL":             "warn", // the api logs every request at info
		"LOG_FORMAT":            "json",
		"OTEL_SDK_DISABLED":     "true",
	}
	api := with(common, map[string]string{"PORT": strconv.Itoa(apiPort), "API_KEYS": cfg.APIKey, "METRICS_PER_RUNNER": "false"}, cfg.Env)
	if err := s.spawn("api", filepath.Join(cfg.BinDir, "api"), api); err != nil {
		return nil, err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(apiPort)
	if err := s.waitHTTP(ctx, "api", s.URL+"/ready"); err != nil {
		return nil, err
	}
	if !cfg.NoSweeper {
		swPort, err := freePort()
		if err != nil {
			return nil, err
		}
		sw := with(common, map[string]string{"PORT": strconv.Itoa(swPort)}, cfg.Env)
		if err := s.spawn("sweeper", filepath.Join(cfg.BinDir, "sweeper"), sw); err != nil {
			return nil, err
		}
		if err := s.waitHTTP(ctx, "sweeper", "http://127.0.0.1:"+strconv.Itoa(swPort)+"/ready"); err != nil {
			return nil, err
		}
	}
	if cfg.HookURL != "" {
		hkPort, err := freePort()
		if err != nil {
			return nil, err
		}
		hk := with(common, map[string]string{"PORT": strconv.Itoa(hkPort), "RUNNER_OFFLINE_HOOK": cfg.HookURL,
			"HOOK_EVENTS": "runner.offline,runner.unreachable", "HOOK_CONCURRENCY": "50"}, cfg.Env)
		if err := s.spawn("hooks", filepath.Join(cfg.BinDir, "hooks"), hk); err != nil {
			return nil, err
		}
		if err := s.waitHTTP(ctx, "hooks", "http://127.0.0.1:"+strconv.Itoa(hkPort)+"/ready"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func with(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func (s *Stack) spawn(name, bin string, env map[string]string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("stack: %s binary (run make build): %w", name, err)
	}
	logf, err := os.Create(filepath.Join(s.Dir, name+".log"))
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.Dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("stack: start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	s.procs[name] = p
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	return nil
}

// proc is a started service; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (s *Stack) waitHTTP(ctx context.Context, name, url string) error {
	deadline := time.Now().Add(20 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if p := s.procs[name]; p.exited() {
			return fmt.Errorf("stack: %s exited (%s); see %s", name, p.cmd.ProcessState, filepath.Join(s.Dir, name+".log"))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("stack: %s not ready at %s: %w (log: %s)", name, url, errors.Join(err, ctx.Err()), filepath.Join(s.Dir, name+".log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PIDs names the processes to sample: api, sweeper, redis.
func (s *Stack) PIDs() map[string]int {
	out := map[string]int{"redis": s.RedisPID}
	for n, p := range s.procs {
		out[n] = p.cmd.Process.Pid
	}
	return out
}

// Memory is Redis's INFO memory used_memory and the outbox stream's own share
// (lifecycle events pile up there when no hooks relay drains them).
type Memory struct {
	UsedBytes   int64 `json:"usedBytes"`
	OutboxBytes int64 `json:"outboxBytes"`
}

// RedisMemory reads Memory.
func (s *Stack) RedisMemory(ctx context.Context) (Memory, error) {
	info, err := s.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return Memory{}, fmt.Errorf("stack: redis info memory: %w", err)
	}
	var m Memory
	m.UsedBytes, err = strconv.ParseInt(strings.TrimSpace(info["Memory"]["used_memory"]), 10, 64)
	if err != nil {
		return Memory{}, fmt.Errorf("stack: used_memory: %w", err)
	}
	n, err := s.rdb.MemoryUsage(ctx, store.OutboxKey(), 0).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Memory{}, fmt.Errorf("stack: memory usage outbox: %w", err)
	}
	m.OutboxBytes = n
	return m, nil
}

// Stop kills the services, then Redis, and removes a directory it created.
func (s *Stack) Stop() {
	for _, name := range []string{"hooks", "sweeper", "api"} {
		if p := s.procs[name]; p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("stack: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
