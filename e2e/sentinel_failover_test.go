package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The failover test's fleet. The lease must outlast the failover comfortably:
// outage-aware leases (issue 11) are not built, so a runner that cannot renew
// for a whole lease during the switch is declared offline like a dead one.
// Measured on this 2-core machine, heartbeats fail for about 3 s after the
// primary dies (1 s down-after-milliseconds, then the Sentinels agree, elect
// a leader and promote the replica), so a runner goes up to 4 s without a
// renewal (its last one came up to an interval before the kill); a 6 s lease
// leaves 2 s of margin.
const (
	failoverRunners     = 30
	failoverStoppers    = 10 // runners that stop heartbeating after the failover
	failoverLeaseMs     = 6000
	failoverHeartbeatMs = 1000
)

// TestSentinelFailoverKeepsRunnersOnline runs bin/api, bin/sweeper and
// bin/hooks against a primary, a replica and three Sentinels, SIGKILLs the
// primary while 30 runners heartbeat every second, and checks that no
// heartbeating runner is declared offline, that heartbeats succeed again
// within seconds (the outage is logged), that the runners which stop after
// the failover go offline once each with exactly one webhook, and that every
// offline transition has its webhook.
func TestSentinelFailoverKeepsRunnersOnline(t *testing.T) {
	t.Parallel()
	started := time.Now()
	// No node starts with the keyspace flag: the sweeper sets it with CONFIG
	// SET, which is not replicated, so the promoted replica has it only if
	// the sweeper sets it again there.
	ha := redistest.StartHA(t, "ygg-e2e")
	t.Logf("primary %s, replica %s, sentinels %s ready after %s", ha.Primary.Addr, ha.Replica.Addr, ha.SentinelAddrs(), time.Since(started).Round(time.Millisecond))

	recv := newHookReceiver(t)
	apiPort := freePort(t)
	apiURL := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	common := map[string]string{"REDIS_SENTINEL_ADDRS": ha.SentinelAddrs(), "REDIS_MASTER_NAME": ha.MasterName, "LOG_LEVEL": "info"}
	fleet := merge(common, map[string]string{
		"LEASE_TTL_MS": strconv.Itoa(failoverLeaseMs), "HEARTBEAT_INTERVAL_MS": strconv.Itoa(failoverHeartbeatMs),
	})
	api := startProc(t, "api", binary(t, "api"), merge(fleet, map[string]string{
		"PORT": strconv.Itoa(apiPort), "API_KEYS": runnerKey, "ADMIN_API_KEYS": operatorKey,
	}))
	sweeper := startProc(t, "sweeper", binary(t, "sweeper"), merge(fleet, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "SWEEP_INTERVAL_MS": "100", "MASS_EXPIRY_PERCENT": "100",
	}))
	hooks := startProc(t, "hooks", binary(t, "hooks"), merge(common, map[string]string{
		"PORT": strconv.Itoa(freePort(t)), "RUNNER_OFFLINE_HOOK": recv.srv.URL,
		"HOOK_BACKOFF_BASE_MS": "200", "HOOK_BACKOFF_MAX_MS": "1000", "HOOK_POLL_INTERVAL_MS": "50", "HOOK_RETRY_CHECK_MS": "100",
	}))
	procs := []*proc{api, sweeper, hooks}
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		for _, p := range procs {
			if !p.running() {
				t.Fatalf("%s exited with %d:\n%s", p.name, p.code, p.out.String())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return client.New(apiURL, "").Ready(ctx)
	}, "bin/api ready on the Sentinel primary")
	op := client.New(apiURL, operatorKey)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One short HTTP timeout per heartbeat: a heartbeat stuck in a dead
	// connection must not hide the next one.
	hc := &http.Client{Timeout: 2 * time.Second}
	fleetRunners := make([]*simRunner, failoverRunners)
	for i := range fleetRunners {
		reg, err := client.New(apiURL, runnerKey, client.WithHTTPClient(hc)).Register(ctx, wire.RegisterRunnerPayload{
			Name: fmt.Sprintf("failover-%02d", i), Version: "1.0.0", Labels: map[string]string{"suite": "sentinel"},
		})
		if err != nil {
			t.Fatalf("register runner %d: %v", i, err)
		}
		r := &simRunner{id: reg.ID, epoch: reg.LeaseEpoch, stop: make(chan struct{}), done: make(chan struct{}),
			cl: client.New(apiURL, reg.Token, client.WithHTTPClient(hc))}
		fleetRunners[i] = r
		go r.run(ctx, failoverHeartbeatMs*time.Millisecond)
	}
	keepers, stoppers := fleetRunners[failoverStoppers:], fleetRunners[:failoverStoppers]
	defer func() {
		for _, r := range keepers {
			r.halt()
		}
	}()

	// Steady traffic first: every runner has renewed at least twice.
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, r := range fleetRunners {
			if r.successesSince(started) < 2 {
				return false
			}
		}
		return true
	}, "every runner heartbeating before the failover")

	killedAt := time.Now()
	ha.Primary.Stop() // SIGKILL
	t.Logf("primary %s SIGKILLed mid-traffic", ha.Primary.Addr)

	// Every runner renews again on the new primary, within a few seconds.
	testkit.Eventually(t, 15*time.Second, func() bool {
		for _, r := range fleetRunners {
			if err := r.lostErr(); err != nil {
				t.Fatalf("runner %s, heartbeating through the failover: %v (%s after the SIGKILL; lease %d ms)",
					r.id, err, time.Since(killedAt).Round(time.Millisecond), failoverLeaseMs)
			}
			if r.firstSuccessAfter(killedAt).IsZero() {
				return false
			}
		}
		return true
	}, "every runner heartbeating again after the failover")
	var first, last time.Time
	var gap time.Duration // longest time a runner went without a renewal
	for _, r := range fleetRunners {
		at := r.firstSuccessAfter(killedAt)
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		gap = max(gap, at.Sub(r.lastSuccessBefore(killedAt)))
	}
	// The api found the promoted replica through a Sentinel that knows; the
	// others learn the new configuration from its hello messages a moment
	// later, so the one MasterAddr asks first may still name the old primary
	// (a CI run renewed every runner 1.8 s after the SIGKILL, before that).
	var newPrimary string
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		var err error
		if newPrimary, err = ha.MasterAddr(ctx); err != nil {
			return err
		}
		if newPrimary != ha.Replica.Addr {
			return fmt.Errorf("the Sentinels name %s as primary, want the promoted replica %s", newPrimary, ha.Replica.Addr)
		}
		return nil
	}, "the Sentinels to name the promoted replica")
	t.Logf("OUTAGE: first successful heartbeat %s after the SIGKILL, every runner renewed within %s; longest a runner went without a renewal: %s (lease %d ms, heartbeat %d ms, %d runners); new primary %s",
		first.Sub(killedAt).Round(time.Millisecond), last.Sub(killedAt).Round(time.Millisecond), gap.Round(time.Millisecond),
		failoverLeaseMs, failoverHeartbeatMs, failoverRunners, newPrimary)
	if gap >= failoverLeaseMs*time.Millisecond {
		t.Errorf("a runner went %s without a successful heartbeat: longer than its lease", gap)
	}

	// The sweeper and the api's long-poll hub subscribed again, on the new
	// primary, and the sweeper set the keyspace flag there.
	primary := redistest.Client(newPrimary)
	defer primary.Close()
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		flags, err := primary.ConfigGet(ctx, "notify-keyspace-events").Result()
		if err != nil {
			return err
		}
		if f := flags["notify-keyspace-events"]; !strings.Contains(f, "E") || !strings.Contains(f, "x") {
			return fmt.Errorf("notify-keyspace-events %q on the new primary", f)
		}
		subs, err := primary.PubSubNumSub(ctx, "__keyevent@0__:expired", store.DispatchChannel()).Result()
		if err != nil {
			return err
		}
		if subs["__keyevent@0__:expired"] < 1 || subs[store.DispatchChannel()] < 1 {
			return fmt.Errorf("subscribers on the new primary: %v", subs)
		}
		return nil
	}, "the sweeper's and the hub's subscriptions and the keyspace flag on the new primary")

	// The stoppers die after the failover: the sweeper, re-subscribed on the
	// new primary, must take each offline once, with its webhook.
	stoppedAt := time.Now()
	for _, r := range stoppers {
		r.halt()
	}
	testkit.EventuallyNil(t, failoverLeaseMs*time.Millisecond+15*time.Second, func() error {
		for _, r := range stoppers {
			if n := recv.count(wire.EventRunnerOffline, r.id); n == 0 {
				return fmt.Errorf("no runner.offline webhook yet for %s", r.id)
			}
		}
		return nil
	}, "a runner.offline webhook for every runner that stopped")
	t.Logf("the %d stopped runners were offline with their webhooks %s after they stopped",
		len(stoppers), time.Since(stoppedAt).Round(time.Millisecond))
	// Two more renewals of every keeper: time for a doubled or a wrong
	// webhook to show.
	settled := time.Now()
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, r := range keepers {
			if r.successesSince(settled) < 2 {
				return false
			}
		}
		return true
	}, "two more heartbeats of every heartbeating runner")
	for _, r := range keepers {
		r.halt()
	}

	for _, p := range procs {
		if !p.running() {
			t.Errorf("%s exited (%d) during the failover: services must ride it out", p.name, p.code)
		}
	}
	list, err := op.ListRunners(ctx, client.ListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	offline := map[string]bool{}
	for _, info := range list.Runners {
		if info.Status == wire.RunnerOffline {
			offline[info.ID] = true
		}
	}
	for _, r := range stoppers {
		if n := recv.count(wire.EventRunnerOffline, r.id); n != 1 {
			t.Errorf("stopped runner %s: %d runner.offline webhooks, want exactly 1", r.id, n)
		}
		if !offline[r.id] {
			t.Errorf("stopped runner %s is not offline", r.id)
		}
	}
	for _, r := range keepers {
		if n := recv.count(wire.EventRunnerOffline, r.id); n != 0 {
			t.Errorf("heartbeating runner %s got %d runner.offline webhooks: the failover failed it", r.id, n)
		}
		if offline[r.id] {
			t.Errorf("heartbeating runner %s was marked offline by the failover", r.id)
		}
		if err := r.lostErr(); err != nil {
			t.Errorf("heartbeating runner %s: %v", r.id, err)
		}
	}
	// No outbox event lost: every offline transition has its webhook.
	for id := range offline {
		if n := recv.count(wire.EventRunnerOffline, id); n != 1 {
			t.Errorf("runner %s is offline with %d webhooks, want 1", id, n)
		}
	}
	if len(offline) != failoverStoppers {
		t.Errorf("%d runners offline, want the %d that stopped", len(offline), failoverStoppers)
	}
	t.Logf("whole test %s", time.Since(started).Round(time.Millisecond))
}

// simRunner heartbeats like an agent: every interval, each with its own
// timeout, recording when heartbeats succeeded. A 404 or 409 means the
// control plane declared it gone: for a runner that kept heartbeating, the
// failure this test exists to catch.
type simRunner struct {
	id    string
	epoch int64
	cl    *client.Client
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu        sync.Mutex
	successes []time.Time
	lost      error
}

func (r *simRunner) run(ctx context.Context, every time.Duration) {
	defer close(r.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := r.cl.Heartbeat(hctx, wire.HeartbeatPayload{RunnerID: r.id, LeaseEpoch: r.epoch})
		cancel()
		now := time.Now()
		r.mu.Lock()
		var ce *client.Error
		switch {
		case err == nil:
			r.successes = append(r.successes, now)
			r.epoch = resp.LeaseEpoch
		case errors.As(err, &ce) && (ce.Status == http.StatusNotFound || ce.Status == http.StatusConflict) && r.lost == nil:
			r.lost = fmt.Errorf("heartbeat answered %d at %s: declared gone", ce.Status, now.Format(time.StampMilli))
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// halt stops the heartbeats and waits for the last one to end.
func (r *simRunner) halt() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

func (r *simRunner) successesSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.successes {
		if s.After(t) {
			n++
		}
	}
	return n
}

func (r *simRunner) firstSuccessAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.successes, func(s time.Time) bool { return s.After(t) })
	if i < 0 {
		return time.Time{}
	}
	return r.successes[i]
}

func (r *simRunner) lastSuccessBefore(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, s := range r.successes {
		if s.Before(t) {
			last = s
		}
	}
	return last
}

func (r *simRunner) lostErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost
}

// count is how many webhooks of type typ arrived for runnerID.
func (h *hookReceiver) count(typ, runnerID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Type == typ && e.Data.Runner.ID == runnerID {
			n++
		}
	}
	return n
}
