package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// restartPlan is the Redis restart scenario of issue 11: a fleet of
// simulated runners heartbeating through bin/api, Redis with AOF stopped for
// longer than the lease and started again on the same port, and on every
// second outage bin/sweeper paused (SIGSTOP) through it and resumed (SIGCONT)
// one second after the api answers again: the api then serves heartbeats
// before the sweeper's first scan.
type restartPlan struct {
	runners   int
	leaseMs   int
	beatMs    int
	outages   int
	outage    time.Duration
	pauseLate time.Duration // how long after the api reconnects the paused sweeper resumes
}

// restartOutcome is what the scenario measured.
type restartOutcome struct {
	refused      int64         // heartbeats answered 404 or 409: the runner was dropped
	falseOffline int           // runners not online at the end, or with a runner.offline webhook
	webhooks     int           // runner.offline webhooks received
	recovery     time.Duration // worst time from Redis answering to a runner's next good heartbeat
}

// fakeFleet is plan.runners goroutines that register once and then
// heartbeat every interval (minus up to 20 % jitter, as the agent does),
// retrying with jittered exponential backoff (200 ms doubling up to
// retryMax) while the controller does not answer, as the agent does with
// BACKOFF_MAX=1.5s: after an outage the fleet comes back spread over 1.5 s. A 404 or 409
// means the controller dropped a healthy runner: it is counted, and the
// runner stops (it would re-register under a new epoch and lose its tasks).
const retryMax = 1500 * time.Millisecond

type fakeFleet struct {
	ids     []string
	lastOK  []atomic.Int64 // unix nano of each runner's latest good heartbeat
	dropped []atomic.Bool  // answered 404/409: stopped
	refused atomic.Int64
	lastErr atomic.Value
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func startFakeFleet(t *testing.T, url string, n int, beat time.Duration) *fakeFleet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeFleet{ids: make([]string, n), lastOK: make([]atomic.Int64, n), dropped: make([]atomic.Bool, n), stop: cancel}
	t.Cleanup(func() { cancel(); f.wg.Wait() })
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	base := client.New(url, runnerKey, client.WithHTTPClient(hc))
	tokens := make([]string, n)
	epochs := make([]int64, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			defer rcancel()
			r, err := base.Register(rctx, wire.RegisterRunnerPayload{Name: fmt.Sprintf("fake-%03d", i), Version: "1.0.0", Capacity: 1})
			if err != nil {
				errs <- err
				return
			}
			f.ids[i], tokens[i], epochs[i] = r.ID, r.Token, r.LeaseEpoch
			f.lastOK[i].Store(time.Now().UnixNano())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("register: %v", err)
	}
	for i := range n {
		cl := base.WithCredential(tokens[i])
		f.wg.Go(func() {
			wait := time.Duration(rand.Int64N(int64(beat))) // spread the fleet over one interval
			retry := 200 * time.Millisecond
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				hctx, hcancel := context.WithTimeout(ctx, time.Second)
				_, err := cl.Heartbeat(hctx, wire.HeartbeatPayload{RunnerID: f.ids[i], LeaseEpoch: epochs[i]})
				hcancel()
				switch st := client.StatusOf(err); {
				case err == nil:
					f.lastOK[i].Store(time.Now().UnixNano())
					wait = beat - time.Duration(rand.Int64N(int64(beat)/5))
					retry = 200 * time.Millisecond
				case st == http.StatusNotFound || st == http.StatusConflict:
					f.refused.Add(1)
					f.dropped[i].Store(true)
					f.lastErr.Store(err.Error())
					return
				default:
					if ctx.Err() != nil {
						return
					}
					wait = retry/2 + time.Duration(rand.Int64N(int64(retry/2)+1))
					retry = min(2*retry, retryMax)
				}
			}
		})
	}
	return f
}

// waiting returns how many runners still heartbeating have not heartbeated
// successfully since t.
func (f *fakeFleet) waiting(t time.Time) int {
	n := 0
	for i := range f.lastOK {
		if !f.dropped[i].Load() && f.lastOK[i].Load() <= t.UnixNano() {
			n++
		}
	}
	return n
}

// runRedisRestarts runs plan against the real binaries and returns what it
// measured; it fails the test only for harness problems, so callers (the
// test, the chaos table) judge the outcome.
func runRedisRestarts(t *testing.T, plan restartPlan) restartOutcome {
	t.Helper()
	aof := []string{"--appendonly", "yes", "--appendfsync", "everysec"}
	srv, _ := redistest.Start(t, aof...)
	hooks := newHookReceiver(t)
	apiPort := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	fleetEnv := map[string]string{
		"REDIS_URL": srv.URL(), "LOG_LEVEL": "info",
		"LEASE_TTL_MS": strconv.Itoa(plan.leaseMs), "HEARTBEAT_INTERVAL_MS": strconv.Itoa(plan.beatMs),
	}
	api := startProc(t, "api", binary(t, "api"), merge(fleetEnv, map[string]string{
		"PORT": strconv.Itoa(apiPort), "API_KEYS": runnerKey, "ADMIN_API_KEYS": operatorKey,
	}))
	// the sweeper as deployed: the correlated-loss rules at their defaults
	sweeper := startProc(t, "sweeper", binary(t, "sweeper"), merge(fleetEnv, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "SWEEP_INTERVAL_MS": "100",
	}))
	startProc(t, "hooks", binary(t, "hooks"), merge(fleetEnv, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "RUNNER_OFFLINE_HOOK": hooks.srv.URL,
		"HOOK_BACKOFF_BASE_MS": "200", "HOOK_BACKOFF_MAX_MS": "1000", "HOOK_POLL_INTERVAL_MS": "50",
	}))
	ready := client.New(url, "")
	apiReady := func(limit time.Duration) {
		testkit.EventuallyNil(t, limit, func() error {
			if !api.running() {
				t.Fatalf("bin/api exited with %d", api.code)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			return ready.Ready(ctx)
		}, "bin/api ready")
	}
	apiReady(15 * time.Second)

	beat := time.Duration(plan.beatMs) * time.Millisecond
	fleet := startFakeFleet(t, url, plan.runners, beat)
	// one full lease in steady state first
	time.Sleep(time.Duration(plan.leaseMs) * time.Millisecond)

	var out restartOutcome
	for i := range plan.outages {
		pause := i%2 == 1
		if pause {
			sweeper.signal(syscall.SIGSTOP)
		}
		srv.Stop()
		time.Sleep(plan.outage) // the outage itself: longer than the lease
		if err := srv.Restart(aof...); err != nil {
			t.Fatalf("outage %d: restart redis: %v", i+1, err)
		}
		up := time.Now()
		if pause {
			apiReady(10 * time.Second)
			time.Sleep(plan.pauseLate)
			sweeper.signal(syscall.SIGCONT)
		}
		testkit.EventuallyNil(t, 15*time.Second, func() error {
			if n := fleet.waiting(up); n > 0 {
				return fmt.Errorf("%d of %d runners not heartbeating yet", n, plan.runners)
			}
			return nil
		}, "outage %d: every runner still running heartbeating again", i+1)
		var worst time.Duration
		for j := range fleet.lastOK {
			if d := time.Unix(0, fleet.lastOK[j].Load()).Sub(up); !fleet.dropped[j].Load() && d > worst {
				worst = d
			}
		}
		out.recovery = max(out.recovery, worst)
		t.Logf("outage %d (%s, sweeper paused: %v): every runner heartbeating %s after Redis answered; refused so far %d (last: %v)",
			i+1, plan.outage, pause, worst.Round(time.Millisecond), fleet.refused.Load(), fleet.lastErr.Load())
		// let the sweeper take any decision it will take on this outage
		time.Sleep(time.Duration(plan.leaseMs)*time.Millisecond + time.Second)
	}
	fleet.stop()
	fleet.wg.Wait()

	out.refused = fleet.refused.Load()
	op := client.New(url, operatorKey)
	for _, id := range fleet.ids {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := op.GetRunner(ctx, id)
		cancel()
		if err != nil {
			var ce *client.Error
			if !errors.As(err, &ce) {
				t.Fatalf("get runner %s: %v", id, err)
			}
			out.falseOffline++
			continue
		}
		_, hooked := hooks.find(wire.EventRunnerOffline, id)
		if info.Status != wire.RunnerOnline || hooked {
			out.falseOffline++
		}
	}
	hooks.mu.Lock()
	for _, e := range hooks.events {
		if e.Type == wire.EventRunnerOffline {
			out.webhooks++
		}
	}
	hooks.mu.Unlock()
	return out
}

// TestRedisRestartsNeverFailHealthyRunners is the short version of the
// issue's proof (make chaos runs ten outages): Redis with AOF down for 5 s
// (lease 3 s) twice, the sweeper paused through the second outage and
// resumed 1 s after the api reconnects. No healthy runner may be answered
// 404/409, none may end offline or be reported offline, and every runner
// heartbeats again within 2 s of Redis answering.
func TestRedisRestartsNeverFailHealthyRunners(t *testing.T) {
	plan := restartPlan{runners: 200, leaseMs: 3000, beatMs: 1000, outages: 2, outage: 5 * time.Second, pauseLate: time.Second}
	checkRestarts(t, plan, runRedisRestarts(t, plan))
}

func checkRestarts(t *testing.T, plan restartPlan, got restartOutcome) {
	t.Helper()
	t.Logf("%d outages of %s, %d runners: refused %d, false offline %d, offline webhooks %d, worst recovery %s",
		plan.outages, plan.outage, plan.runners, got.refused, got.falseOffline, got.webhooks, got.recovery.Round(time.Millisecond))
	if got.refused != 0 {
		t.Errorf("%d heartbeats of healthy runners answered 404/409, want 0", got.refused)
	}
	if got.falseOffline != 0 || got.webhooks != 0 {
		t.Errorf("%d healthy runners offline, %d runner.offline webhooks; want 0 and 0", got.falseOffline, got.webhooks)
	}
	if got.recovery > 2*time.Second {
		t.Errorf("a runner took %s after Redis answered to heartbeat again, want at most 2 s", got.recovery)
	}
}
