package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// An api with two request slots, hammered by 64 clients, sheds the excess
// with 503 overloaded + a Retry-After jittered from half an interval to 60 %
// of the lease (2-4 s for a 4 s interval and an 8 s lease), answers
// those at once, keeps serving the rest, counts them in /metrics and records
// the overload window in Redis (source api-overload) for the sweeper.
func TestOverloadShedsFastWithRetryAfterAndRecordsTheWindow(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg, func(c *config.API) {
		c.MaxInflight, c.OverloadQueueMs, c.HeartbeatIntervalMs, c.LeaseTTLMs = 2, 5, 4000, 8000
	})
	regs := make([]wire.RegisterRunnerResponse, 64)
	for i := range regs {
		regs[i] = e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: fmt.Sprintf("r%02d", i)})
	}
	began := time.Now()
	var mu sync.Mutex
	var shedTimes []time.Duration
	var ok, other atomic.Int64
	retryAfters := map[string]int{}
	var stretched atomic.Int64 // served replies that asked for 3/4 of the lease
	var wg sync.WaitGroup
	for _, r := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := mustJSON(wire.HeartbeatPayload{RunnerID: r.ID, LeaseEpoch: r.LeaseEpoch})
			for time.Since(began) < time.Second {
				t0 := time.Now()
				req, _ := http.NewRequest("POST", e.base+"/runners/heartbeat", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+r.Token)
				res, err := e.http.Do(req)
				if err != nil {
					other.Add(1)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				switch {
				case res.StatusCode == 200:
					ok.Add(1)
					var hb wire.HeartbeatResponse
					if json.Unmarshal(b, &hb) == nil && hb.HeartbeatIntervalMs == 6000 {
						stretched.Add(1)
					}
				case res.StatusCode == 503 && strings.Contains(string(b), problem.TypeOverloaded) &&
					res.Header.Get("Content-Type") == problem.ContentType:
					mu.Lock()
					shedTimes = append(shedTimes, time.Since(t0))
					retryAfters[res.Header.Get("Retry-After")]++
					mu.Unlock()
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if other.Load() != 0 || ok.Load() == 0 || len(shedTimes) == 0 {
		t.Fatalf("%d served, %d shed, %d other answers or errors: want both of the first, none of the last", ok.Load(), len(shedTimes), other.Load())
	}
	slices.Sort(shedTimes)
	p99 := shedTimes[len(shedTimes)*99/100]
	t.Logf("%d served, %d shed; 503 answered in p50 %s, p99 %s; Retry-After %v", ok.Load(), len(shedTimes),
		shedTimes[len(shedTimes)/2], p99, retryAfters)
	if p99 > 250*time.Millisecond {
		t.Errorf("503 p99 %s: a refusal must come at once (budget 5 ms)", p99)
	}
	for ra := range retryAfters {
		if n, err := strconv.Atoi(ra); err != nil || n < 2 || n > 4 {
			t.Errorf("Retry-After %q, want 2 to 4 s (half the 4 s interval to 60 %% of the 8 s lease)", ra)
		}
	}
	if stretched.Load() == 0 {
		t.Errorf("none of the %d heartbeats served while shedding was told to come back at 3/4 of the 8 s lease (6000 ms)", ok.Load())
	}
	if len(shedTimes) >= 50 && len(retryAfters) < 2 {
		t.Errorf("Retry-After %v: %d refusals all told the same wait, want them spread", retryAfters, len(shedTimes))
	}
	if r := e.do("GET", "/metrics", "", ""); !strings.Contains(string(r.body), "yggdrasil_api_overload_shed_total "+strconv.Itoa(len(shedTimes))) {
		t.Errorf("/metrics does not count the %d refusals", len(shedTimes))
	}
	st := store.New(store.Wrap(e.rdb), store.Options{})
	out := testkit.WaitFor(t, 5*time.Second, func() ([]store.OutageRecord, error) {
		o, err := st.Outages(ctx, 100)
		if err == nil && len(o) == 0 {
			err = errNone
		}
		return o, err
	}, "the overload window recorded")
	// A window still being shed is written again as it grows: every record
	// is an overload window inside the run.
	for _, o := range out {
		if o.Source != store.OutageOverload || o.From.Before(began.Add(-time.Second)) || o.To.After(time.Now()) {
			t.Fatalf("outages = %+v, want overload windows within the run only", out)
		}
	}
}

// BenchmarkOverload offers an api about twice the heartbeats it serves and
// reports what happens, with and without the admission controller. First
// the capacity: 32 clients heartbeating in a closed loop for 3 s. Then a
// simulated fleet of 2 x capacity runners heartbeating every second (lease
// 2 s), over a pool of 2,048 connections, each backing off as told on 503 (the
// reference agent's behaviour), for 8 s: served and shed rates, latency of
// the served heartbeats and of the refusals, and the runners whose lease
// would have lapsed (a gap between renewals beyond the TTL) before any
// failover grace. Run it with
//
//	cd services/api && go test -run '^$' -bench Overload -benchtime 1x -timeout 10m ./app/
func BenchmarkOverload(b *testing.B) {
	const interval, lease, load = time.Second, 2 * time.Second, 8 * time.Second
	srv, rdb := redistest.Start(b)
	fleet := func(c *config.API) {
		c.HeartbeatIntervalMs, c.LeaseTTLMs = interval.Milliseconds(), lease.Milliseconds()
	}
	shed := startWith(b, srv, rdb, logging.Discard(), nil, authCfg, fleet)
	unlimited := startWith(b, srv, rdb, logging.Discard(), nil, authCfg, fleet, func(c *config.API) { c.MaxInflight = 0 })

	capacity := closedLoop(b, shed, 32, 3*time.Second)
	n := int(2 * capacity * interval.Seconds())
	b.Logf("capacity %.0f heartbeats/s (32 clients, closed loop); fleet of %d runners every %s offers %.0f/s", capacity, n, interval, float64(n)/interval.Seconds())
	regs := registerMany(b, shed, n)
	for _, e := range []struct {
		name string
		e    *env
	}{{"shed", shed}, {"unlimited", unlimited}} {
		b.Run(e.name, func(b *testing.B) {
			r := simulateFleet(b, e.e, regs, interval, lease, load)
			b.ReportMetric(r.offered, "offered/s")
			b.ReportMetric(r.served, "served/s")
			b.ReportMetric(r.served/capacity*100, "served_%_of_capacity")
			b.ReportMetric(r.shed, "shed/s")
			b.ReportMetric(float64(r.okP99.Milliseconds()), "ok_p99_ms")
			b.ReportMetric(float64(r.shedP99.Milliseconds()), "503_p99_ms")
			b.ReportMetric(float64(r.lapsed), "leases_lapsed")
			b.ReportMetric(float64(r.errors), "errors")
			b.Logf("%s: offered %.0f/s, served %.0f/s (%.0f %% of capacity), shed %.0f/s; ok p50 %s p99 %s; 503 p50 %s p99 %s; %d of %d runners with a renewal gap > %s; %d errors",
				e.name, r.offered, r.served, r.served/capacity*100, r.shed, r.okP50, r.okP99, r.shedP50, r.shedP99, r.lapsed, len(regs), lease, r.errors)
		})
	}
}

func closedLoop(b *testing.B, e *env, clients int, d time.Duration) float64 {
	regs := registerMany(b, e, clients)
	hc := hostClient(b, e, clients)
	var served atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, r := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(t0) < d {
				if st, _ := heartbeatOnce(hc, r); st == 200 {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(served.Load()) / time.Since(t0).Seconds()
}

func registerMany(b *testing.B, e *env, n int) []wire.RegisterRunnerResponse {
	regs := make([]wire.RegisterRunnerResponse, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.client(apiKey)
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				out, err := c.Register(context.Background(), wire.RegisterRunnerPayload{
					RunnerID: fmt.Sprintf("sim-%s-%06d", prefix, i), Name: "sim", Version: "1.0.0"})
				if err != nil {
					b.Errorf("register: %v", err)
					return
				}
				regs[i] = out
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return regs
}

// heartbeatOnce returns the status and the Retry-After of one heartbeat.
// It uses fasthttp's client: net/http's costs about twice the server's work
// per request, and the load generator shares the two cores with the api.
func heartbeatOnce(hc *fasthttp.HostClient, r wire.RegisterRunnerResponse) (int, time.Duration) {
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://" + hc.Addr + "/runners/heartbeat")
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+r.Token)
	req.SetBodyString(`{"runnerId":"` + r.ID + `","leaseEpoch":` + strconv.FormatInt(r.LeaseEpoch, 10) + `}`)
	if err := hc.DoTimeout(req, res, 10*time.Second); err != nil {
		return 0, 0
	}
	ra, _ := strconv.Atoi(string(res.Header.Peek("Retry-After")))
	return res.StatusCode(), time.Duration(ra) * time.Second
}

// hostClient is a fasthttp client of conns connections to e. Closed with
// the test, it waits for the client's cleaner goroutine to end (goleak).
func hostClient(b testing.TB, e *env, conns int) *fasthttp.HostClient {
	hc := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.base, "http://"), MaxConns: conns, MaxIdleConnDuration: 3 * time.Second,
		MaxConnWaitTimeout: 10 * time.Second}
	b.Cleanup(func() {
		hc.CloseIdleConnections()
		testkit.Eventually(b, 10*time.Second, func() bool {
			buf := make([]byte, 1<<22)
			return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "HostClient).connsCleaner")
		}, "the fasthttp client's cleaner to stop")
	})
	return hc
}

const maxFleetConns = 2048

type fleetResult struct {
	offered, served, shed float64
	okP50, okP99          time.Duration
	shedP50, shedP99      time.Duration
	lapsed, errors        int
}

// simulateFleet runs every runner for d: a heartbeat every interval after
// the last reply (from a random phase), Retry-After after a 503 (1 s when
// absent), and records the longest gap between its renewals.
func simulateFleet(b *testing.B, e *env, regs []wire.RegisterRunnerResponse, interval, lease, d time.Duration) fleetResult {
	// Runners share up to maxFleetConns keep-alive connections (a load
	// balancer's pool, in effect): one each would need two descriptors per
	// runner in this one process.
	hc := hostClient(b, e, maxFleetConns)
	var mu sync.Mutex
	var okLat, shedLat []time.Duration
	var attempts, errs atomic.Int64
	lapsed := 0
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(d)
	for _, r := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(rand.N(interval))
			last := time.Now() // as if renewed just before the run
			var maxGap time.Duration
			var myOK, myShed []time.Duration
			for time.Now().Before(end) {
				s := time.Now()
				st, ra := heartbeatOnce(hc, r)
				lat := time.Since(s)
				attempts.Add(1)
				wait := interval
				switch st {
				case 200:
					myOK = append(myOK, lat)
					maxGap = max(maxGap, time.Since(last))
					last = time.Now()
				case 503:
					myShed = append(myShed, lat)
					wait = max(ra, time.Second)
				default:
					errs.Add(1)
				}
				time.Sleep(wait)
			}
			maxGap = max(maxGap, time.Since(last))
			mu.Lock()
			okLat = append(okLat, myOK...)
			shedLat = append(shedLat, myShed...)
			if maxGap > lease {
				lapsed++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(t0).Seconds()
	pct := func(v []time.Duration, p int) time.Duration {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)*p/100]
	}
	return fleetResult{
		offered: float64(attempts.Load()) / el, served: float64(len(okLat)) / el, shed: float64(len(shedLat)) / el,
		okP50: pct(okLat, 50), okP99: pct(okLat, 99), shedP50: pct(shedLat, 50), shedP99: pct(shedLat, 99),
		lapsed: lapsed, errors: int(errs.Load()),
	}
}
