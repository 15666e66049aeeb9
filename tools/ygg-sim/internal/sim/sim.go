package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/sched"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stats"
)

// Job kinds carried by sched.Item.Kind.
const (
	jobRegister uint8 = iota
	jobHeartbeat
	jobTaskRunning
	jobTaskSucceeded
	jobLeave
)

// Request kinds in the report.
const (
	kindRegister      = "register"
	kindHeartbeat     = "heartbeat"
	kindTaskRunning   = "task_running"
	kindTaskSucceeded = "task_succeeded"
	kindOffline       = "offline"
	kindDispatch      = "dispatch"
	kindList          = "list"
)

// phase holds what one phase (ramp, measure) records.
type phase struct {
	name        string
	start       time.Duration
	kinds       *stats.Set
	schedLag    *stats.Histogram // start of the request - due time
	dispatchLag *stats.Histogram // release by the dispatcher - due time
	queueWait   *stats.Histogram // start of the request - release
	lagWindow   *stats.Histogram

	falseOffline atomic.Int64
	// offlineAfterBackoff: 404/409 to a heartbeat that was late only
	// because the runner waited the Retry-After of a 429/503.
	offlineAfterBackoff atomic.Int64
	lateHeartbeats      atomic.Int64
	reregistrations     atomic.Int64
	heartbeatsDue       atomic.Int64
}

func newPhase(name string, start time.Duration) *phase {
	return &phase{name: name, start: start, kinds: stats.NewSet(), schedLag: stats.NewHistogram(),
		dispatchLag: stats.NewHistogram(), queueWait: stats.NewHistogram(), lagWindow: stats.NewHistogram()}
}

type engine struct {
	cfg   Config
	ctx   context.Context
	s     *sched.Scheduler
	api   *client.Client // the runners' API key
	op    *client.Client // the operator key
	fleet []runner

	cur     atomic.Pointer[phase]
	ramp    *phase
	measure *phase

	admitted atomic.Int64 // slots admitted at least once
	active   atomic.Int64 // runners holding a registration now
	busy     atomic.Int64 // workers inside a request

	leaseTTL, interval atomic.Int64 // as the controller returned them (ms)
	firstAdmitAll      atomic.Int64 // offset (ns) when every slot was admitted; 0 = not yet

	measureActive int64  // active runners when the measurement started
	backlog       [2]int // released jobs no worker had taken, at the measure phase's start and end

	tasks taskTracker
	loss  lossState
	churn churnState
}

// Run simulates the fleet and returns the report. It ends by itself after
// the ramp (at most RampTimeout) and Duration, or when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := &http.Client{Timeout: cfg.RequestTimeout, Transport: transport(cfg.Concurrency)}
	opc := &http.Client{Timeout: cfg.RequestTimeout, Transport: transport(16)}
	e := &engine{
		cfg: cfg, ctx: ctx, s: sched.New(),
		api:   client.New(cfg.URL, cfg.APIKey, client.WithHTTPClient(hc), client.WithUserAgent("ygg-sim")),
		op:    client.New(cfg.URL, cfg.OperatorKey, client.WithHTTPClient(opc), client.WithUserAgent("ygg-sim-operator")),
		fleet: make([]runner, cfg.Runners),
	}
	e.tasks.init()
	for i := range e.fleet {
		e.fleet[i].init(i)
	}
	self0, _ := sampleSelf()

	var wg sync.WaitGroup
	for i := 0; i < cfg.Concurrency; i++ {
		wg.Go(e.worker)
	}
	wg.Go(func() { e.s.Run(ctx) })
	progressDone := make(chan struct{})
	go func() { defer close(progressDone); e.progress(ctx) }()

	// Ramp: every slot registers, paced by RegisterRate (the storm: at once).
	e.ramp = newPhase("ramp", 0)
	e.cur.Store(e.ramp)
	e.hook("ramp-start")
	rate := cfg.RegisterRate
	if cfg.Scenario == Storm {
		rate = 0
	}
	for i := range e.fleet {
		var at time.Duration
		if rate > 0 {
			at = time.Duration(float64(i) / rate * float64(time.Second))
		}
		e.fleet[i].state = stRegistering
		e.s.Schedule(sched.Item{At: e.s.Now() + at, Runner: int32(i), Kind: jobRegister})
	}
	rampEnd := e.waitAdmitted(ctx, cfg.RampTimeout)

	// Measure: the scenario runs for Duration.
	e.measure = newPhase("measure", rampEnd)
	e.cur.Store(e.measure)
	e.measureActive = e.active.Load()
	e.backlog[0] = e.s.Ready()
	e.hook("measure-start")
	selfM, _ := sampleSelf()
	mctx, mcancel := context.WithTimeout(ctx, cfg.Duration)
	var sw sync.WaitGroup
	switch cfg.Scenario {
	case Loss:
		sw.Go(func() { e.runLoss(mctx) })
	case Dispatch:
		sw.Go(func() { e.runDispatch(mctx) })
	case Churn:
		sw.Go(func() { e.runChurn(mctx) })
	}
	<-mctx.Done()
	measureEnd := e.s.Now()
	e.backlog[1] = e.s.Ready()
	e.hook("measure-end")
	selfE, _ := sampleSelf()
	mcancel()
	sw.Wait()
	cancel()
	wg.Wait()
	<-progressDone

	rep := e.report(started, rampEnd, measureEnd)
	rep.Generator = generatorUsage(self0, selfM, selfE)
	return rep, nil
}

func (e *engine) hook(p string) {
	if e.cfg.Hook != nil {
		e.cfg.Hook(p)
	}
}

func transport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// waitAdmitted returns when every slot has been admitted once, or after
// limit, or when ctx ends; it returns the scheduler time of that moment.
func (e *engine) waitAdmitted(ctx context.Context, limit time.Duration) time.Duration {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(limit)
	for {
		if int(e.admitted.Load()) >= len(e.fleet) {
			return e.s.Now()
		}
		select {
		case <-ctx.Done():
			return e.s.Now()
		case <-deadline:
			return e.s.Now()
		case <-t.C:
		}
	}
}

func (e *engine) worker() {
	for {
		f, ok := e.s.Next()
		if !ok || e.ctx.Err() != nil {
			return
		}
		now := e.s.Now()
		ph := e.cur.Load()
		ph.schedLag.Record(now - f.At)
		ph.lagWindow.Record(now - f.At)
		ph.dispatchLag.Record(f.FiredAt - f.At)
		ph.queueWait.Record(now - f.FiredAt)
		e.busy.Add(1)
		e.run(f, now)
		e.busy.Add(-1)
	}
}

func (e *engine) run(f sched.Fired, now time.Duration) {
	r := &e.fleet[f.Runner]
	switch f.Kind {
	case jobRegister:
		e.register(r, f, now)
	case jobHeartbeat:
		e.heartbeat(r, f, now)
	case jobTaskRunning, jobTaskSucceeded:
		e.taskStep(r, f, now)
	case jobLeave:
		e.leave(r, f, now)
	}
}

// observe records one request in the current phase unless the run is
// ending (requests cut short by the end are not the server's doing).
func (e *engine) observe(kind string, d time.Duration, status int, isError bool) {
	if e.ctx.Err() != nil {
		return
	}
	e.cur.Load().kinds.Kind(kind).Observe(d, status, isError)
}

// statusOf is the HTTP status of err (0 without an answer), okStatus when nil.
func statusOf(err error, okStatus int) int {
	if err == nil {
		return okStatus
	}
	return client.StatusOf(err)
}

// backoff is how long to wait after a refusal: the server's Retry-After (1 s
// when it gave none) plus up to 50 % jitter, so refused runners do not come
// back in one wave.
func backoff(err error) time.Duration {
	d := client.RetryAfterOf(err)
	if d <= 0 {
		d = time.Second
	}
	return d + time.Duration(rand.Float64()*0.5*float64(d))
}

func (e *engine) jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Float64()*e.cfg.Jitter*float64(d))
}

func itoa(i int) string { return strconv.Itoa(i) }
