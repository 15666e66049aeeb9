// Command ygg-sim simulates a fleet of runners against a Yggdrasil
// controller through its real HTTP API, and reports throughput, latency,
// errors, false offline transitions and how far the generator itself fell
// behind its schedule. With -spawn it first starts a private controller
// (redis-server, bin/api, bin/sweeper on loopback ports) and adds the
// controller's CPU, RSS and Redis memory per runner to the report.
//
// Every run stops by itself and only loads the given URL, which must be a
// loopback address unless -allow-remote is passed. See docs/simulator.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/sim"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stack"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ygg-sim:", err)
		os.Exit(1)
	}
}

// spawnFlags configure -spawn.
type spawnFlags struct {
	on                  bool
	binDir              string
	leaseTTLMs          int64
	heartbeatIntervalMs int64
	maxRunners          int
	env                 envFlag
	hooks               bool
	redisArgs           redisArgs
}

// envFlag collects -env KEY=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string { return fmt.Sprint(map[string]string(e)) }

func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || strings.ToUpper(k) != k {
		return fmt.Errorf("want KEY=VALUE with an upper-case KEY, got %q", v)
	}
	e[k] = val
	return nil
}

func run(args []string) error {
	cfg := sim.DefaultConfig()
	sp := spawnFlags{env: envFlag{}}
	var jsonPath string
	var quiet bool
	fs := flag.NewFlagSet("ygg-sim", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "controller API base URL (loopback only unless -allow-remote)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("YGG_SIM_API_KEY"), "API key that registers runners (Bearer); default $YGG_SIM_API_KEY")
	fs.StringVar(&cfg.OperatorKey, "operator-key", os.Getenv("YGG_SIM_OPERATOR_KEY"), "operator key for listing and dispatching; default $YGG_SIM_OPERATOR_KEY")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a URL that is not loopback")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "steady, storm, loss, dispatch or churn")
	fs.IntVar(&cfg.Runners, "runners", cfg.Runners, "simulated runners")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured phase, after the fleet is registered (max 1h)")
	fs.DurationVar(&cfg.RampTimeout, "ramp-timeout", cfg.RampTimeout, "longest registration phase before measuring anyway")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "HTTP connections (and workers) for the runners")
	fs.Float64Var(&cfg.RegisterRate, "register-rate", cfg.RegisterRate, "registrations started per second during the ramp (0 = all at once)")
	fs.Float64Var(&cfg.Jitter, "jitter", cfg.Jitter, "heartbeats leave up to this share of the interval early")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "timeout of one HTTP request")
	fs.DurationVar(&cfg.ProgressEvery, "progress", cfg.ProgressEvery, "progress line interval (stderr)")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	fs.StringVar(&jsonPath, "json", "", "write the JSON summary to this file (default: stdout)")
	fs.Float64Var(&cfg.LossPercent, "loss-percent", cfg.LossPercent, "loss: share of the fleet that stops at once")
	fs.DurationVar(&cfg.LossAfter, "loss-after", cfg.LossAfter, "loss: when the stop happens, into the measured phase")
	fs.DurationVar(&cfg.LossDuration, "loss-duration", cfg.LossDuration, "loss: how long the stopped runners stay away (0 = two lease TTLs)")
	fs.DurationVar(&cfg.PollEvery, "poll", cfg.PollEvery, "loss: how often the operator lists offline and unreachable runners")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "dispatch: tasks per second")
	fs.DurationVar(&cfg.TaskDuration, "task-duration", cfg.TaskDuration, "how long a simulated task runs between running and succeeded")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", cfg.ChurnRate, "churn: graceful leaves per second (each slot rejoins as a new runner)")
	fs.DurationVar(&cfg.ChurnGap, "churn-gap", cfg.ChurnGap, "churn: time between a leave and the slot's new registration")
	fs.BoolVar(&sp.on, "spawn", false, "start a private redis-server, api and sweeper (from -bin) and report their CPU, RSS and Redis memory")
	fs.StringVar(&sp.binDir, "bin", "bin", "spawn: directory holding the api and sweeper binaries")
	fs.Int64Var(&sp.leaseTTLMs, "lease-ttl-ms", 30000, "spawn: LEASE_TTL_MS of api and sweeper")
	fs.Int64Var(&sp.heartbeatIntervalMs, "heartbeat-interval-ms", 15000, "spawn: HEARTBEAT_INTERVAL_MS of api and sweeper")
	fs.IntVar(&sp.maxRunners, "max-runners", 0, "spawn: MAX_RUNNERS of the api (0 = no limit)")
	fs.Var(sp.env, "env", "spawn: KEY=VALUE added to the api's and the sweeper's environment (repeatable; e.g. MAX_INFLIGHT=0)")
	fs.Var(&sp.redisArgs, "redis-config", "spawn: a redis-server setting as name=value, after the recommended hash-max-listpack-value=512 (repeatable; e.g. hash-max-listpack-value=64 for Redis' default)")
	fs.BoolVar(&sp.hooks, "hooks", false, "spawn: also -bin/hooks, delivering offline/unreachable webhooks to a receiver in this process (the loss scenario reports them)")
	var cpuProfile string
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the generator's CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !quiet {
		cfg.Progress = os.Stderr
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var mon *monitor
	if sp.on {
		if cfg.APIKey == "" {
			cfg.APIKey = "ygg-sim-runner-key-0123456789"
		}
		if cfg.OperatorKey == "" {
			cfg.OperatorKey = "ygg-sim-operator-key-0123456789"
		}
		env := map[string]string{}
		for k, v := range sp.env {
			env[k] = v
		}
		if sp.maxRunners > 0 {
			env["MAX_RUNNERS"] = fmt.Sprint(sp.maxRunners)
		}
		hookURL := ""
		if sp.hooks {
			sink := sim.NewWebhookSink()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("webhook receiver: %w", err)
			}
			hs := &http.Server{Handler: sink, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
			go func() { _ = hs.Serve(ln) }()
			defer hs.Close()
			hookURL = "http://" + ln.Addr().String() + "/hook"
			cfg.Webhooks = sink
		}
		st, err := stack.Start(ctx, stack.Config{BinDir: sp.binDir, APIKey: cfg.APIKey, OperatorKey: cfg.OperatorKey,
			LeaseTTLMs: sp.leaseTTLMs, HeartbeatIntervalMs: sp.heartbeatIntervalMs, Env: env, HookURL: hookURL, RedisArgs: sp.redisArgs})
		if err != nil {
			return err
		}
		defer st.Stop()
		cfg.URL = st.URL
		fmt.Fprintf(os.Stderr, "ygg-sim: spawned redis-server, api and sweeper at %s (logs in %s)\n", st.URL, st.Dir)
		mon = newMonitor(ctx, st)
		cfg.Hook = mon.hook
	}

	rep, err := sim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if mon != nil {
		rep.Stack = mon.report(rep.Admitted)
	}
	rep.WriteText(os.Stderr)
	if mon != nil {
		mon.writeText(os.Stderr, rep.Stack.(*stackReport))
	}
	out, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	out = append(out, '\n')
	if jsonPath == "" {
		_, err = os.Stdout.Write(out)
		return err
	}
	if err := os.WriteFile(jsonPath, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", jsonPath, err)
	}
	return nil
}

// monitor samples the spawned controller at the phase boundaries.
type monitor struct {
	ctx     context.Context
	st      *stack.Stack
	pids    map[string]int
	samples map[string]map[string]stack.ProcSample // phase -> process -> sample
	memBase stack.Memory
	memEnd  stack.Memory
	errs    []error
	started time.Time
}

func newMonitor(ctx context.Context, st *stack.Stack) *monitor {
	return &monitor{ctx: ctx, st: st, pids: st.PIDs(), samples: map[string]map[string]stack.ProcSample{}}
}

func (m *monitor) hook(phase string) {
	sm := map[string]stack.ProcSample{}
	for name, pid := range m.pids {
		s, err := stack.Sample(pid)
		if err != nil {
			m.errs = append(m.errs, err)
			continue
		}
		sm[name] = s
	}
	m.samples[phase] = sm
	var err error
	switch phase {
	case "ramp-start":
		m.memBase, err = m.st.RedisMemory(m.ctx)
	case "measure-end":
		m.memEnd, err = m.st.RedisMemory(m.ctx)
	}
	if err != nil {
		m.errs = append(m.errs, err)
	}
}

// stackReport is the spawned controller's share of the report.
type stackReport struct {
	Ramp    map[string]stack.Usage `json:"ramp"`
	Measure map[string]stack.Usage `json:"measure"`
	Redis   struct {
		BaselineBytes int64 `json:"baselineBytes"`
		UsedBytes     int64 `json:"usedBytes"`
		OutboxBytes   int64 `json:"outboxBytes"`
		Runners       int64 `json:"runners"`
		// BytesPerRunner is (used - baseline) / runners: records, leases,
		// indexes and the outbox's registration events; without the outbox
		// in BytesPerRunnerNoOutbox.
		BytesPerRunner         float64 `json:"bytesPerRunner"`
		BytesPerRunnerNoOutbox float64 `json:"bytesPerRunnerNoOutbox"`
	} `json:"redis"`
	Errors []string `json:"errors,omitempty"`
}

func (m *monitor) report(runners int64) *stackReport {
	r := &stackReport{Ramp: map[string]stack.Usage{}, Measure: map[string]stack.Usage{}}
	for name := range m.pids {
		a, okA := m.samples["ramp-start"][name]
		b, okB := m.samples["measure-start"][name]
		c, okC := m.samples["measure-end"][name]
		if okA && okB {
			r.Ramp[name] = stack.Between(a, b)
		}
		if okB && okC {
			r.Measure[name] = stack.Between(b, c)
		}
	}
	r.Redis.BaselineBytes = m.memBase.UsedBytes
	r.Redis.UsedBytes = m.memEnd.UsedBytes
	r.Redis.OutboxBytes = m.memEnd.OutboxBytes
	r.Redis.Runners = runners
	if runners > 0 && m.memEnd.UsedBytes > 0 {
		grown := float64(m.memEnd.UsedBytes - m.memBase.UsedBytes)
		r.Redis.BytesPerRunner = grown / float64(runners)
		r.Redis.BytesPerRunnerNoOutbox = (grown - float64(m.memEnd.OutboxBytes-m.memBase.OutboxBytes)) / float64(runners)
	}
	for _, err := range m.errs {
		r.Errors = append(r.Errors, err.Error())
	}
	return r
}

func (m *monitor) writeText(w *os.File, r *stackReport) {
	for _, name := range []string{"api", "sweeper", "redis"} {
		u := r.Measure[name]
		fmt.Fprintf(w, "  %-8s while measuring: cpu %5.1f %% of a core (%.1f s), rss %6.1f MiB (peak %.1f)\n", name, u.CPUPercent, u.CPUSeconds, u.RSSMiB, u.PeakRSSMiB)
	}
	fmt.Fprintf(w, "  redis    used_memory %d -> %d bytes: %.0f bytes per runner (%.0f without the outbox) for %d runners\n",
		r.Redis.BaselineBytes, r.Redis.UsedBytes, r.Redis.BytesPerRunner, r.Redis.BytesPerRunnerNoOutbox, r.Redis.Runners)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  sampling error: %s\n", e)
	}
}

// redisArgs collects -redis-config name=value flags as redis-server arguments.
type redisArgs []string

func (r *redisArgs) String() string { return strings.Join(*r, " ") }

func (r *redisArgs) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" || strings.HasPrefix(name, "-") {
		return fmt.Errorf("want name=value, got %q", v)
	}
	*r = append(*r, "--"+name, value)
	return nil
}
