package sim

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/sched"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stats"
)

// taskTracker times dispatched tasks from the operator's POST to the
// runner's PATCH succeeded.
type taskTracker struct {
	mu         sync.Mutex
	sent       map[string]time.Duration
	latency    *stats.Histogram
	dispatched atomic.Int64
	succeeded  atomic.Int64
	skipped    int64 // dispatches not sent: 32 already in flight
}

func (t *taskTracker) init() {
	t.sent = map[string]time.Duration{}
	t.latency = stats.NewHistogram()
}

func (t *taskTracker) dispatchedAt(id string, at time.Duration) {
	t.dispatched.Add(1)
	t.mu.Lock()
	t.sent[id] = at
	t.mu.Unlock()
}

func (t *taskTracker) finished(id string, at time.Duration) {
	t.mu.Lock()
	sent, ok := t.sent[id]
	delete(t.sent, id)
	t.mu.Unlock()
	if ok {
		t.succeeded.Add(1)
		t.latency.Record(at - sent)
	}
}

// randomActive picks an active runner (a few tries), returning its id.
func (e *engine) randomActive() (string, bool) {
	for try := 0; try < 20; try++ {
		r := &e.fleet[rand.IntN(len(e.fleet))]
		r.mu.Lock()
		id, ok := r.id, r.state == stActive
		r.mu.Unlock()
		if ok && id != "" {
			return id, true
		}
	}
	return "", false
}

// paced calls fn rate times a second until ctx ends, on at most 32
// goroutines at once; a call that would exceed them is skipped and counted.
func paced(ctx context.Context, rate float64, fn func(seq int64)) (skipped int64) {
	period := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	for seq := int64(0); ; seq++ {
		due := start.Add(time.Duration(seq) * period)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return skipped
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			return skipped
		}
		select {
		case sem <- struct{}{}:
			wg.Go(func() {
				defer func() { <-sem }()
				fn(seq)
			})
		default:
			skipped++
		}
	}
}

// runDispatch: an operator dispatches tasks at Rate to random runners.
func (e *engine) runDispatch(ctx context.Context) {
	skipped := paced(ctx, e.cfg.Rate, func(seq int64) {
		id, ok := e.randomActive()
		if !ok {
			return
		}
		p := wire.DispatchTaskPayload{Type: "sim.echo", Payload: json.RawMessage(`{"seq":` + itoa(int(seq)) + `}`), TimeoutMs: 600_000}
		sendAt := e.s.Now()
		task, _, err := e.op.Dispatch(ctx, id, p, "")
		doneAt := e.s.Now()
		if ctx.Err() != nil {
			return // cut short by the end of the run
		}
		code := statusOf(err, http.StatusCreated)
		// A runner that just went offline (churn, a re-registration) refuses: 409.
		e.observe(kindDispatch, doneAt-sendAt, code, err != nil && code != http.StatusConflict)
		if err == nil {
			e.tasks.dispatchedAt(task.ID, sendAt)
		}
	})
	e.tasks.mu.Lock()
	e.tasks.skipped = skipped
	e.tasks.mu.Unlock()
}

// churnState counts the churn scenario's graceful leaves and new joins.
type churnState struct {
	left, joined atomic.Int64
}

// runChurn: ChurnRate runners a second leave gracefully; each slot comes
// back as a new runner ChurnGap later.
func (e *engine) runChurn(ctx context.Context) {
	paced(ctx, e.cfg.ChurnRate, func(int64) {
		for try := 0; try < 20; try++ {
			r := &e.fleet[rand.IntN(len(e.fleet))]
			r.mu.Lock()
			if r.state == stActive {
				r.state = stLeaving
				r.gen++
				e.active.Add(-1)
				e.s.Schedule(sched.Item{At: e.s.Now(), Runner: int32(r.slot), Kind: jobLeave, Gen: r.gen})
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
		}
	})
}

// lossState is the correlated-loss scenario's bookkeeping.
type lossState struct {
	mu            sync.Mutex
	stopped       map[string]int // runner id -> slot
	stopAt        time.Duration
	stopWall      time.Time
	returnAt      time.Duration
	detected      map[string]time.Duration
	falseDetected map[string]bool
	allDetected   time.Duration
	detectLatency *stats.Histogram
	backLatency   *stats.Histogram
	back          int
	allBack       time.Duration
	polls         int
	pollErrors    int
}

// backFromLoss notes a returned runner's first renewal (r.mu held).
func (e *engine) backFromLoss(r *runner, at time.Duration) {
	if !r.returning {
		return
	}
	r.returning = false
	r.stoppedAt = 0
	l := &e.loss
	l.mu.Lock()
	defer l.mu.Unlock()
	l.back++
	l.backLatency.Record(at - l.returnAt)
	if l.back == len(l.stopped) {
		l.allBack = at
	}
}

// runLoss stops LossPercent of the fleet at once LossAfter into the
// measurement, watches the controller (as an operator) until it reports all
// of them offline or unreachable, and brings them back LossDuration after the
// stop.
func (e *engine) runLoss(ctx context.Context) {
	l := &e.loss
	l.stopped = map[string]int{}
	l.detected = map[string]time.Duration{}
	l.falseDetected = map[string]bool{}
	l.detectLatency = stats.NewHistogram()
	l.backLatency = stats.NewHistogram()
	select {
	case <-ctx.Done():
		return
	case <-time.After(e.cfg.LossAfter):
	}
	want := int(float64(len(e.fleet))*e.cfg.LossPercent/100 + 0.5)
	now := e.s.Now()
	l.mu.Lock()
	l.stopAt = now
	l.stopWall = time.Now()
	for _, slot := range rand.Perm(len(e.fleet)) {
		if len(l.stopped) >= want {
			break
		}
		r := &e.fleet[slot]
		r.mu.Lock()
		if r.state == stActive && r.id != "" {
			r.state = stStopped
			r.gen++ // its scheduled heartbeat and task steps die
			r.stoppedAt = now
			e.active.Add(-1)
			l.stopped[r.id] = slot
		}
		r.mu.Unlock()
	}
	l.mu.Unlock()

	outage := e.cfg.LossDuration
	if outage == 0 {
		outage = 2 * time.Duration(e.leaseTTL.Load()) * time.Millisecond
	}
	returnTimer := time.NewTimer(outage)
	defer returnTimer.Stop()
	poll := time.NewTicker(e.cfg.PollEvery)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-returnTimer.C:
			e.returnLost()
			// Keep polling for false detections until the end? Not needed: the
			// returned runners report their own recovery.
			<-ctx.Done()
			return
		case <-poll.C:
			if e.pollLost(ctx) {
				poll.Stop() // every stopped runner is detected
			}
		}
	}
}

// pollLost lists offline and unreachable runners and notes the stopped ones
// seen for the first time. It reports whether all are detected.
func (e *engine) pollLost(ctx context.Context) bool {
	l := &e.loss
	at := e.s.Now()
	seen := map[string]bool{}
	for _, status := range []client.RunnerFilter{client.RunnersOffline, client.RunnersUnreachable} {
		cursor := ""
		for {
			sendAt := e.s.Now()
			page, err := e.op.ListRunners(ctx, client.ListOptions{Status: status, Limit: 1000, Cursor: cursor})
			if ctx.Err() != nil {
				return false // cut short by the end of the run
			}
			e.observe(kindList, e.s.Now()-sendAt, statusOf(err, http.StatusOK), err != nil)
			if err != nil {
				l.mu.Lock()
				l.pollErrors++
				l.mu.Unlock()
				return false
			}
			for _, r := range page.Runners {
				seen[r.ID] = true
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.polls++
	for id := range seen {
		if _, ok := l.stopped[id]; !ok {
			l.falseDetected[id] = true
			continue
		}
		if _, ok := l.detected[id]; !ok {
			l.detected[id] = at
			l.detectLatency.Record(at - l.stopAt)
		}
	}
	if len(l.detected) == len(l.stopped) && l.allDetected == 0 {
		l.allDetected = at
		return true
	}
	return false
}

// returnLost brings every stopped runner back: it heartbeats at once, gets
// 409 if it went offline and registers again under its id.
func (e *engine) returnLost() {
	l := &e.loss
	l.mu.Lock()
	l.returnAt = e.s.Now()
	slots := make([]int, 0, len(l.stopped))
	for _, s := range l.stopped {
		slots = append(slots, s)
	}
	l.mu.Unlock()
	for _, slot := range slots {
		r := &e.fleet[slot]
		r.mu.Lock()
		if r.state == stStopped {
			r.state = stActive
			r.gen++
			r.returning = true
			r.tasks = nil
			r.running = 0
			e.active.Add(1)
			e.s.Schedule(sched.Item{At: e.s.Now(), Runner: int32(slot), Kind: jobHeartbeat, Gen: r.gen})
		}
		r.mu.Unlock()
	}
}
