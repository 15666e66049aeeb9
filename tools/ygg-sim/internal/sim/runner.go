package sim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/sched"
)

// Runner states.
const (
	stIdle        uint8 = iota
	stRegistering       // a register job is scheduled or in flight
	stActive            // registered; its heartbeat chain runs
	stStopped           // lost on purpose (loss scenario): silent until it returns
	stLeaving           // a graceful offline is scheduled or in flight (churn)
)

// runner is one simulated runner. Its jobs may run on several workers at
// once (a heartbeat and a task step), so mu guards every field. gen changes
// whenever the runner's incarnation does (a new registration, a stop, a
// leave): a job carrying an older gen is dropped, so each runner has one
// heartbeat chain at most.
type runner struct {
	mu       sync.Mutex
	slot     int
	state    uint8
	gen      uint32
	admitted bool // registered at least once (for the storm's count)

	id       string
	cl       *client.Client // authenticated with this incarnation's token
	epoch    int64
	interval time.Duration
	ttl      time.Duration
	lastOK   time.Duration // send time of the last renewal (registration or heartbeat)
	// backedOff: the last heartbeat was refused with 429/503, and the
	// runner waits the Retry-After it was told.
	backedOff bool

	tasks   map[string]bool // tasks picked up and not finished
	running int

	cpu, mem float32
	memTotal float32
	disk     float32

	stoppedAt time.Duration // loss: when it went silent; 0 = never
	returning bool          // loss: back from silence, not yet renewed
	fresh     bool          // churn: registers as a new runner (no runnerId)
}

func (r *runner) init(slot int) {
	r.slot = slot
	r.cpu = 5 + rand.Float32()*40
	r.mem = 20 + rand.Float32()*40
	r.memTotal = []float32{4096, 8192, 16384, 32768}[rand.IntN(4)]
	r.disk = 20 + rand.Float32()*60
}

func walk(v, step, lo, hi float32) float32 {
	v += (rand.Float32()*2 - 1) * step
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// resources is what a host reports, drifting a little each heartbeat.
// Callers hold r.mu.
func (r *runner) resources(uptime time.Duration) *wire.SystemResources {
	r.cpu = walk(r.cpu, 8, 1, 99)
	r.mem = walk(r.mem, 2, 5, 95)
	load := float64(r.cpu) / 100 * 4
	return &wire.SystemResources{
		CPUPercent:    float64(r.cpu),
		MemoryPercent: float64(r.mem),
		MemoryUsedMB:  float64(r.mem / 100 * r.memTotal),
		MemoryTotalMB: float64(r.memTotal),
		DiskPercent:   float64(r.disk),
		LoadAvg:       []float64{load, load * 0.9, load * 0.8},
		UptimeSeconds: 86400 + uptime.Seconds(),
	}
}

var zones = []string{"eu-west-1a", "eu-west-1b", "us-east-1a", "us-east-1b"}

func (e *engine) register(r *runner, f sched.Fired, now time.Duration) {
	r.mu.Lock()
	if r.state != stRegistering || r.gen != f.Gen {
		r.mu.Unlock()
		return
	}
	p := wire.RegisterRunnerPayload{
		RunnerID: r.id,
		Name:     "sim-" + itoa(r.slot),
		Version:  "1.0.0",
		Realm:    "sim",
		Labels:   map[string]string{"simulated": "true", "zone": zones[r.slot%len(zones)]},
		Capacity: 4,
	}
	r.mu.Unlock()

	sendAt := e.s.Now()
	resp, err := e.api.Register(e.ctx, p)
	doneAt := e.s.Now()
	status := statusOf(err, http.StatusCreated)
	switch {
	case err == nil:
		e.observe(kindRegister, doneAt-sendAt, status, false)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		e.observe(kindRegister, doneAt-sendAt, status, false)
		e.s.Schedule(sched.Item{At: doneAt + backoff(err), Runner: f.Runner, Kind: jobRegister, Gen: f.Gen})
		return
	default:
		e.observe(kindRegister, doneAt-sendAt, status, true)
		if e.ctx.Err() == nil {
			e.s.Schedule(sched.Item{At: doneAt + time.Second + time.Duration(rand.Int64N(int64(time.Second))), Runner: f.Runner, Kind: jobRegister, Gen: f.Gen})
		}
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stRegistering || r.gen != f.Gen {
		return
	}
	r.id = resp.ID
	r.cl = e.api.WithCredential(resp.Token)
	r.epoch = resp.LeaseEpoch
	r.interval = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
	r.ttl = time.Duration(resp.LeaseTTLMs) * time.Millisecond
	e.interval.Store(resp.HeartbeatIntervalMs)
	e.leaseTTL.Store(resp.LeaseTTLMs)
	r.lastOK = sendAt
	r.state = stActive
	r.gen++
	r.tasks = nil
	r.running = 0
	e.active.Add(1)
	if r.fresh {
		r.fresh = false
		e.churn.joined.Add(1)
	}
	if !r.admitted {
		r.admitted = true
		if n := e.admitted.Add(1); int(n) == len(e.fleet) {
			e.firstAdmitAll.CompareAndSwap(0, int64(doneAt))
		}
	}
	e.backFromLoss(r, doneAt)
	// The first heartbeat of a new runner falls anywhere in its first
	// interval, so a fleet registered in a burst does not heartbeat in one.
	next := time.Duration(rand.Int64N(int64(r.interval) + 1))
	if f.Gen > 0 {
		next = e.jitter(r.interval)
	}
	e.s.Schedule(sched.Item{At: doneAt + next, Runner: f.Runner, Kind: jobHeartbeat, Gen: r.gen})
}

// reRegister starts a new incarnation after the controller refused the old
// one (r.mu held). keepID comes back as the same runner (409); an unknown
// runner (404) registers afresh.
func (e *engine) reRegister(r *runner, at time.Duration, keepID bool) {
	if !keepID {
		r.id = ""
	}
	r.state = stRegistering
	r.gen++
	e.active.Add(-1)
	e.cur.Load().reregistrations.Add(1)
	e.s.Schedule(sched.Item{At: at, Runner: int32(r.slot), Kind: jobRegister, Gen: r.gen})
}

func (e *engine) heartbeat(r *runner, f sched.Fired, now time.Duration) {
	r.mu.Lock()
	if r.state != stActive || r.gen != f.Gen {
		r.mu.Unlock()
		return
	}
	running := r.running
	status := wire.RunnerIdle
	if running > 0 {
		status = wire.RunnerBusy
	}
	p := wire.HeartbeatPayload{
		RunnerID: r.id, LeaseEpoch: r.epoch, Status: status,
		Resources: r.resources(now), TasksRunning: &running, Version: "1.0.0",
	}
	cl, lastOK, ttl, returning, backedOff := r.cl, r.lastOK, r.ttl, r.returning, r.backedOff
	r.mu.Unlock()

	ph := e.cur.Load()
	sendAt := e.s.Now()
	// On time: sent while the lease the runner last renewed still runs by its
	// own clock (which started before the controller's, so this never flatters).
	// A runner back from a deliberate silence is late by design.
	onTime := !returning && sendAt < lastOK+ttl
	if !onTime && !returning {
		ph.lateHeartbeats.Add(1)
	}
	resp, err := cl.Heartbeat(e.ctx, p)
	doneAt := e.s.Now()
	code := statusOf(err, http.StatusOK)
	refused := code == http.StatusNotFound || code == http.StatusConflict
	backpressure := code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
	e.observe(kindHeartbeat, doneAt-sendAt, code, err != nil && !refused && !backpressure)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stActive || r.gen != f.Gen || e.ctx.Err() != nil {
		return // the runner moved on while the request was in flight
	}
	switch {
	case err == nil:
		r.lastOK = sendAt
		r.backedOff = false
		r.epoch = resp.LeaseEpoch
		if resp.HeartbeatIntervalMs > 0 {
			r.interval = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
		}
		e.backFromLoss(r, doneAt)
		for _, t := range resp.Tasks {
			if r.tasks == nil {
				r.tasks = map[string]bool{}
			}
			if r.tasks[t.ID] {
				continue // still pending: picked up by the previous heartbeat
			}
			r.tasks[t.ID] = true
			e.s.Schedule(sched.Item{At: doneAt, Runner: f.Runner, Kind: jobTaskRunning, Gen: r.gen, Task: t.ID})
		}
		for _, id := range resp.CancelTaskIDs {
			delete(r.tasks, id)
		}
		e.s.Schedule(sched.Item{At: doneAt + e.jitter(r.interval), Runner: f.Runner, Kind: jobHeartbeat, Gen: r.gen})
	case refused:
		switch {
		case onTime:
			// The controller declared a healthy runner offline.
			ph.falseOffline.Add(1)
		case backedOff && !returning:
			// Late only because it waited as the controller told it to.
			ph.offlineAfterBackoff.Add(1)
		}
		r.backedOff = false
		e.reRegister(r, doneAt, code == http.StatusConflict)
	case backpressure:
		r.backedOff = true
		e.s.Schedule(sched.Item{At: doneAt + backoff(err), Runner: f.Runner, Kind: jobHeartbeat, Gen: r.gen})
	default:
		retry := min(time.Second, r.interval/4)
		e.s.Schedule(sched.Item{At: doneAt + retry, Runner: f.Runner, Kind: jobHeartbeat, Gen: r.gen})
	}
}

var simResult = json.RawMessage(`{"exitCode":0,"stdout":"simulated\n"}`)

// taskStep moves a picked-up task to running, then (TaskDuration later) to
// succeeded, with the epoch of the incarnation that picked it up.
func (e *engine) taskStep(r *runner, f sched.Fired, now time.Duration) {
	r.mu.Lock()
	if r.gen != f.Gen || r.state != stActive || !r.tasks[f.Task] {
		r.mu.Unlock()
		return
	}
	cl, id, epoch := r.cl, r.id, r.epoch
	r.mu.Unlock()

	p := wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: epoch}
	kind := kindTaskRunning
	if f.Kind == jobTaskSucceeded {
		p = wire.TaskUpdatePayload{Status: wire.TaskSucceeded, LeaseEpoch: epoch, Result: simResult}
		kind = kindTaskSucceeded
	}
	sendAt := e.s.Now()
	_, err := cl.UpdateTask(e.ctx, id, f.Task, p)
	doneAt := e.s.Now()
	code := statusOf(err, http.StatusOK)

	r.mu.Lock()
	defer r.mu.Unlock()
	stale := r.gen != f.Gen
	// A 409 after the runner lost its incarnation (or a cancel) is expected.
	e.observe(kind, doneAt-sendAt, code, err != nil && !(stale && code == http.StatusConflict))
	if err != nil {
		delete(r.tasks, f.Task)
		if f.Kind == jobTaskSucceeded && r.running > 0 {
			r.running--
		}
		return
	}
	if f.Kind == jobTaskRunning {
		r.running++
		e.s.Schedule(sched.Item{At: doneAt + e.cfg.TaskDuration, Runner: f.Runner, Kind: jobTaskSucceeded, Gen: f.Gen, Task: f.Task})
		return
	}
	if r.running > 0 {
		r.running--
	}
	delete(r.tasks, f.Task)
	e.tasks.finished(f.Task, doneAt)
}

// leave deregisters gracefully (churn) and schedules the slot's return as a
// new runner ChurnGap later.
func (e *engine) leave(r *runner, f sched.Fired, now time.Duration) {
	r.mu.Lock()
	if r.state != stLeaving || r.gen != f.Gen {
		r.mu.Unlock()
		return
	}
	cl, id := r.cl, r.id
	r.mu.Unlock()

	sendAt := e.s.Now()
	_, err := cl.Offline(e.ctx, wire.OfflinePayload{RunnerID: id, Reason: "ygg-sim churn"})
	doneAt := e.s.Now()
	code := statusOf(err, http.StatusOK)
	e.observe(kindOffline, doneAt-sendAt, code, err != nil)
	if err == nil {
		e.churn.left.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != f.Gen {
		return
	}
	r.id = ""
	r.fresh = true
	r.state = stRegistering
	r.gen++
	e.s.Schedule(sched.Item{At: doneAt + e.cfg.ChurnGap, Runner: f.Runner, Kind: jobRegister, Gen: r.gen})
}
