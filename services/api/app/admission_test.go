package app_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestMaxRunners(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg, func(c *config.API) { c.MaxRunners = 2; c.HeartbeatIntervalMs = 2000 })
	a := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a"})
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "b"})

	r := e.do("POST", "/runners/register", apiKey, `{"runnerId":"c","name":"c","version":"1"}`)
	if r.status != 503 || r.problem(t).Type != httpapi.ProblemBase+"fleet-full" {
		t.Fatalf("third registration = %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// existing runners keep heartbeating, and may re-register
	if _, err := e.client(a.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "a"}); err != nil {
		t.Fatal(err)
	}
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a"})
	c := e.client(apiKey)
	testkit.Eventually(t, 5*time.Second, func() bool {
		st, err := c.Admission(ctx)
		return err == nil && !st.Admitting && st.State == "full" && st.Reason == "max_runners"
	}, "admission full")
	// one leaves: admission reopens (counts are cached about a second)
	if _, err := e.client(opKey).Offline(ctx, wire.OfflinePayload{RunnerID: "b"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		st, err := c.Admission(ctx)
		return err == nil && st.Admitting && st.State == "closed"
	}, "admission closed again")
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "c"})
}

func TestBreakerOpensWhenRedisDiesAndClosesWhenItReturns(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg, func(c *config.API) { c.BreakerFailures = 3; c.BreakerCooldownMs = 300 })
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a"})
	runner := e.client(reg.Token)
	keyed := e.client(apiKey)

	e.redis.Stop()
	// heartbeats fail while Redis is gone (503, never a Redis error), and
	// count towards the breaker
	testkit.Eventually(t, 20*time.Second, func() bool {
		_, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "a"})
		if s := client.StatusOf(err); s != http.StatusServiceUnavailable && s != http.StatusUnauthorized {
			t.Fatalf("heartbeat with Redis down = %v", err)
		}
		st, err := keyed.Admission(ctx)
		return err == nil && st.State == "open" && !st.Admitting && st.Reason == "redis_unavailable"
	}, "breaker open")
	r := e.do("POST", "/runners/register", apiKey, `{"name":"n","version":"1"}`)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("register while open = %d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Type != httpapi.ProblemBase+"admission-closed" && p.Type != httpapi.ProblemBase+"unavailable" {
		t.Fatalf("register while open: %+v", p)
	}
	if r := e.do("GET", "/ready", "", ""); r.status != 503 || r.problem(t).Type != httpapi.ProblemBase+"not-ready" {
		t.Fatalf("/ready with Redis down = %d %s", r.status, r.body)
	}

	if err := e.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		st, err := keyed.Admission(ctx)
		return err == nil && st.Admitting && st.State == "closed"
	}, "breaker closed")
	// the restarted Redis is empty: the runner registers again under its id
	back := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a"})
	if _, err := e.client(back.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "a", LeaseEpoch: back.LeaseEpoch}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/ready", "", ""); r.status != 200 {
		t.Fatalf("/ready = %d", r.status)
	}
	// the dispatch subscription came back too: a dispatch wakes a long poll
	// well before its wait ends
	rc, op := e.client(back.Token), e.client(opKey)
	testkit.Eventually(t, 15*time.Second, func() bool {
		type res struct {
			n int
			d time.Duration
		}
		ch := make(chan res, 1)
		go func() {
			t0 := time.Now()
			l, _ := rc.ListTasks(ctx, "a", client.TaskQuery{Status: wire.TaskPending, Wait: 3 * time.Second})
			ch <- res{len(l.Tasks), time.Since(t0)}
		}()
		time.Sleep(100 * time.Millisecond)
		task, _, err := op.Dispatch(ctx, "a", wire.DispatchTaskPayload{Type: "probe"}, "")
		if err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if _, err := op.UpdateTask(ctx, "a", task.ID, wire.TaskUpdatePayload{Status: wire.TaskCancelled}); err != nil {
			t.Fatal(err)
		}
		return r.n == 1 && r.d < 2*time.Second
	}, "long poll woken after the Redis restart")
}

func TestAdmissionReportsQuarantine(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	since := time.Now().Add(-time.Minute).UnixMilli()
	if err := e.rdb.HSet(ctx, store.QuarantineStateKey(), "active", "1", "since", since, "reason", "correlated_loss", "count", "12").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := e.client("").Admission(ctx)
	if err != nil || st.State != "quarantine" || st.Reason != "correlated_loss" || st.Since.UnixMilli() != since {
		t.Fatalf("admission = %+v, %v", st, err)
	}
	e.rdb.HSet(ctx, store.QuarantineStateKey(), "active", "0")
	st, _ = e.client("").Admission(ctx)
	if st.State != "closed" || !st.Admitting {
		t.Fatalf("admission after quarantine = %+v", st)
	}
}
