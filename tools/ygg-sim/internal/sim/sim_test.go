package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/sim"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stack"
)

const (
	runnerKey   = "sim-test-runner-key-0123456789"
	operatorKey = "sim-test-operator-key-0123456789"
)

// binDir holds the real api and sweeper, built once by TestMain.
var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ygg-sim-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	var wg sync.WaitGroup
	var mu sync.Mutex
	for name, pkg := range map[string]string{
		"api":     "github.com/yggdrasil-cp/yggdrasil/services/api",
		"sweeper": "github.com/yggdrasil-cp/yggdrasil/services/sweeper",
	} {
		wg.Go(func() {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
			if err != nil {
				mu.Lock()
				buildErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// startStack runs redis-server, api and sweeper with a 500 ms heartbeat
// interval and a 1.5 s lease, plus env.
func startStack(t *testing.T, env map[string]string) *stack.Stack {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("the services do not build:\n%v", buildErr)
	}
	st, err := stack.Start(context.Background(), stack.Config{
		BinDir: binDir, Dir: t.TempDir(), APIKey: runnerKey, OperatorKey: operatorKey,
		LeaseTTLMs: 1500, HeartbeatIntervalMs: 500, Env: env,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"api", "sweeper"} {
				b, _ := os.ReadFile(filepath.Join(st.Dir, name+".log"))
				t.Logf("---- %s log ----\n%s", name, tail(string(b), 4000))
			}
		}
		st.Stop()
	})
	return st
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func config(st *stack.Stack, scenario string, runners int, d time.Duration) sim.Config {
	cfg := sim.DefaultConfig()
	cfg.URL, cfg.APIKey, cfg.OperatorKey = st.URL, runnerKey, operatorKey
	cfg.Scenario, cfg.Runners, cfg.Duration = scenario, runners, d
	cfg.RampTimeout = 20 * time.Second
	cfg.Concurrency = 64
	return cfg
}

func run(t *testing.T, cfg sim.Config) *sim.Report {
	t.Helper()
	var progress bytes.Buffer
	cfg.Progress, cfg.ProgressEvery = &progress, time.Second
	rep, err := sim.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("progress:\n%s\nsummary:\n%s", progress.String(), text.String())
	if !strings.Contains(progress.String(), "ygg-sim ") {
		t.Errorf("no progress line was printed")
	}
	return rep
}

// noErrors fails on any error, false offline or late heartbeat in either phase.
func noErrors(t *testing.T, rep *sim.Report) {
	t.Helper()
	for name, p := range map[string]sim.Phase{"ramp": rep.Ramp, "measure": rep.Measure} {
		if p.Errors != 0 || p.FalseOffline != 0 || p.LateHeartbeats != 0 {
			t.Errorf("%s: errors %d %v, false offline %d, late heartbeats %d; want none",
				name, p.Errors, p.ErrorsByStatus, p.FalseOffline, p.LateHeartbeats)
		}
	}
}

func TestSteadyFleetHeartbeatsOnSchedule(t *testing.T) {
	st := startStack(t, nil)
	rep := run(t, config(st, sim.Steady, 200, 4*time.Second))

	noErrors(t, rep)
	if rep.Admitted != 200 || rep.ActiveAtEnd != 200 {
		t.Errorf("admitted %d, active at end %d; want 200, 200", rep.Admitted, rep.ActiveAtEnd)
	}
	if rep.HeartbeatIntervalMs != 500 || rep.LeaseTTLMs != 1500 {
		t.Errorf("interval %d ms, lease %d ms: not what the controller was started with", rep.HeartbeatIntervalMs, rep.LeaseTTLMs)
	}
	hb := rep.Measure.Requests["heartbeat"]
	sched := rep.Measure.HeartbeatsScheduled
	// 200 runners x 4 s / 0.45 s mean interval = about 1,780; the next
	// heartbeat is scheduled after the reply, so a few percent fewer.
	if sched < 1600 || sched > 1900 {
		t.Errorf("scheduled heartbeats = %d, want about 1,780", sched)
	}
	if ratio := float64(hb.Requests) / float64(sched); ratio < 0.85 || ratio > 1.05 {
		t.Errorf("heartbeats sent %d of %d scheduled (%.2f)", hb.Requests, sched, ratio)
	}
	if hb.OK != hb.Requests {
		t.Errorf("heartbeats %d, of which 2xx %d: %v", hb.Requests, hb.OK, hb.ByStatus)
	}
	if q := hb.Latency; q.Count != hb.Requests || q.P50Ms <= 0 || q.P50Ms > q.P99Ms || q.P99Ms > q.MaxMs {
		t.Errorf("heartbeat latency quantiles inconsistent: %+v", q)
	}
	if rep.Measure.ScheduleLag.Count == 0 {
		t.Errorf("no schedule lag recorded")
	}

	// The JSON summary decodes back into the same report.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back sim.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("summary does not decode: %v", err)
	}
	if diff := cmp.Diff(rep.Measure, back.Measure); diff != "" {
		t.Errorf("decoded summary (-want +got):\n%s", diff)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"scenario", "admitted", "ramp", "measure", "generator"} {
		if _, ok := generic[key]; !ok {
			t.Errorf("summary has no %q", key)
		}
	}
}

func TestStormAdmitsEveryRunner(t *testing.T) {
	st := startStack(t, nil)
	rep := run(t, config(st, sim.Storm, 500, 2*time.Second))

	noErrors(t, rep)
	if rep.Admitted != 500 || rep.AllAdmittedS <= 0 {
		t.Fatalf("admitted %d (all after %.2f s), want all 500", rep.Admitted, rep.AllAdmittedS)
	}
	for status := range rep.Ramp.Requests["register"].ByStatus {
		if status != "201" && status != "429" && status != "503" {
			t.Errorf("registration answered %s", status)
		}
	}
}

// TestStormOverMaxRunnersHonoursRetryAfter: 100 of 500 are refused with 503
// and come back no sooner than Retry-After (1 s) tells them.
func TestStormOverMaxRunnersHonoursRetryAfter(t *testing.T) {
	st := startStack(t, map[string]string{"MAX_RUNNERS": "400"})
	cfg := config(st, sim.Storm, 500, 3*time.Second)
	cfg.RampTimeout = 2 * time.Second
	rep := run(t, cfg)

	noErrors(t, rep)
	if rep.Admitted != 400 {
		t.Fatalf("admitted %d, want 400 (MAX_RUNNERS)", rep.Admitted)
	}
	reg := rep.Measure.Requests["register"]
	if reg.ByStatus["503"] == 0 || reg.ByStatus["503"] != reg.Requests {
		t.Fatalf("registrations while full: %v, want only 503", reg.ByStatus)
	}
	// 100 refused runners for 3 s, each waiting at least 1 s: at most 300 tries.
	if perRunner := float64(reg.Requests) / 100 / rep.Measure.ElapsedS; perRunner > 1.0 {
		t.Errorf("refused runners retried %.2f times a second, more than Retry-After allows", perRunner)
	}
}

func TestLossDetectsStoppedRunnersAndTheyReturn(t *testing.T) {
	st := startStack(t, nil)
	cfg := config(st, sim.Loss, 100, 7*time.Second)
	cfg.LossPercent, cfg.LossAfter, cfg.LossDuration, cfg.PollEvery = 20, time.Second, 3500*time.Millisecond, 100*time.Millisecond
	rep := run(t, cfg)

	noErrors(t, rep)
	l := rep.Loss
	if l == nil {
		t.Fatal("no loss report")
	}
	if l.Stopped != 20 || l.Detected != 20 || l.FalseDetected != 0 {
		t.Errorf("stopped %d, detected %d, false detections %d; want 20, 20, 0", l.Stopped, l.Detected, l.FalseDetected)
	}
	// Lease 1.5 s: none can be detected before it ran out, all soon after.
	if l.DetectLatency.P50Ms < 900 || l.AllDetectedS > 3.5 || l.AllDetectedS == 0 {
		t.Errorf("detection p50 %.0f ms, all after %.2f s; want after the lease and within 3.5 s", l.DetectLatency.P50Ms, l.AllDetectedS)
	}
	if l.Back != 20 || rep.ActiveAtEnd != 100 {
		t.Errorf("back %d of 20, active at end %d of 100", l.Back, rep.ActiveAtEnd)
	}
	// Stopped runners came back to a 409 and registered again under their id.
	if hb := rep.Measure.Requests["heartbeat"]; hb.ByStatus["409"] != 20 || rep.Measure.Reregistrations != 20 {
		t.Errorf("409 answers %d, re-registrations %d; want 20 each", hb.ByStatus["409"], rep.Measure.Reregistrations)
	}
}

func TestDispatchedTasksRunAndSucceed(t *testing.T) {
	st := startStack(t, nil)
	cfg := config(st, sim.Dispatch, 50, 3*time.Second)
	cfg.Rate, cfg.TaskDuration = 40, 50*time.Millisecond
	rep := run(t, cfg)

	noErrors(t, rep)
	tr := rep.Tasks
	if tr == nil || tr.Dispatched < 100 {
		t.Fatalf("tasks: %+v, want about 120 dispatched", tr)
	}
	// Tasks ride on heartbeat replies: those dispatched in the last interval
	// plus the task's run time may still be unfinished at the end.
	if tr.Succeeded+tr.Unfinished != tr.Dispatched || tr.Unfinished > 40 {
		t.Errorf("dispatched %d, succeeded %d, unfinished %d", tr.Dispatched, tr.Succeeded, tr.Unfinished)
	}
	// A task waits for the runner's next heartbeat (up to 500 ms) then runs 50 ms.
	if tr.Latency.P50Ms < 50 || tr.Latency.MaxMs > 2000 {
		t.Errorf("dispatch->succeeded %+v", tr.Latency)
	}
}

func TestChurnLeavesAndJoins(t *testing.T) {
	st := startStack(t, nil)
	cfg := config(st, sim.Churn, 100, 3*time.Second)
	cfg.ChurnRate, cfg.ChurnGap = 20, 200*time.Millisecond
	rep := run(t, cfg)

	noErrors(t, rep)
	if c := rep.Churn; c == nil || c.Left < 40 || c.Joined < c.Left-10 {
		t.Errorf("churn %+v, want about 60 left and as many joined", c)
	}
}
