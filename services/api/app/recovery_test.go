package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// A real redis-server stopped and restarted: /admission reports the outage
// from the first failed request, /ready answers 503 within 250 ms while
// Redis is down, registrations are admitted again within 250 ms of Redis
// answering (the probe PINGs every 250 ms, no cool-down), and the window is
// recorded in Redis as an outage of source "api".
func TestBreakerRecoversWithinAProbeIntervalAndRecordsTheOutage(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a"})
	runner, keyed := e.client(reg.Token), e.client(apiKey)
	if st, err := keyed.Admission(ctx); err != nil || st.State != "closed" {
		t.Fatalf("admission before = %+v %v", st, err)
	}

	down := time.Now()
	e.redis.Stop()
	t0 := time.Now()
	_, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "a"})
	if s := client.StatusOf(err); s != http.StatusServiceUnavailable {
		t.Fatalf("heartbeat with Redis down = %v", err)
	}
	t.Logf("the first failed request took %s", time.Since(t0))
	// The very next look at /admission sees the outage (no key check needs
	// Redis: auth of API keys is local).
	st, err := keyed.Admission(ctx)
	if err != nil || st.Admitting || st.State == "closed" || st.Reason != "redis_unavailable" {
		t.Fatalf("admission right after the first failed request = %+v %v", st, err)
	}
	for range 5 {
		t0 := time.Now()
		r := e.do("GET", "/ready", "", "")
		if d := time.Since(t0); r.status != 503 || d > 250*time.Millisecond {
			t.Fatalf("/ready with Redis down = %d after %s, want 503 within 250 ms", r.status, d)
		}
		if p := r.problem(t); p.Type != problem.TypeNotReady {
			t.Fatalf("/ready problem = %+v", p)
		}
	}
	time.Sleep(time.Second) // a 1 s outage, as in the issue

	if err := e.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	up := time.Now() // Restart returns once Redis answers PING
	body := `{"name":"n","version":"1"}`
	var admittedAfter time.Duration
	for {
		r := e.do("POST", "/runners/register", apiKey, body)
		if r.status == 201 {
			admittedAfter = time.Since(up)
			break
		}
		if time.Since(up) > 5*time.Second {
			t.Fatalf("registration still refused 5 s after Redis answered: %d %s", r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("registrations admitted %s after Redis answered", admittedAfter)
	if admittedAfter > 300*time.Millisecond { // 250 ms probe interval + one registration's round trip
		t.Fatalf("registrations admitted %s after Redis answered, want within the 250 ms probe interval", admittedAfter)
	}
	// The outage window reaches Redis (at most OutageRecordEvery later).
	st2 := store.New(store.Wrap(e.rdb), store.Options{})
	out := testkit.WaitFor(t, 5*time.Second, func() ([]store.OutageRecord, error) {
		o, err := st2.Outages(ctx, 100)
		if err == nil && len(o) == 0 {
			err = errNone
		}
		return o, err
	}, "the outage recorded")
	o := out[0]
	// The outage starts at the first failed call, which go-redis's own dial
	// retries let fail up to about 2 s after Redis went.
	if len(out) != 1 || o.Source != store.OutageBreaker || o.From.Before(down.Add(-time.Second)) || o.From.After(down.Add(2500*time.Millisecond)) ||
		o.To.Before(up.Add(-time.Second)) || o.To.After(time.Now()) {
		t.Fatalf("outages = %+v, want one api window from about %s to about %s", out, down, up)
	}
}

var errNone = errorString("nothing yet")

type errorString string

func (e errorString) Error() string { return string(e) }
