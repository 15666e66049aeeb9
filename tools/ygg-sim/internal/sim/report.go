package sim

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stats"
)

// Report is the JSON summary of one run. Durations are in seconds unless the
// name says Ms; latencies are quantiles in milliseconds.
type Report struct {
	Tool      string    `json:"tool"`
	Scenario  string    `json:"scenario"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"startedAt"`
	Config    struct {
		Runners      int     `json:"runners"`
		DurationS    float64 `json:"durationS"`
		Concurrency  int     `json:"concurrency"`
		RegisterRate float64 `json:"registerRate"`
		Jitter       float64 `json:"jitter"`
	} `json:"config"`
	// As the controller returned them at registration.
	HeartbeatIntervalMs int64 `json:"heartbeatIntervalMs"`
	LeaseTTLMs          int64 `json:"leaseTtlMs"`

	// Admitted is how many of the runners registered at least once;
	// AllAdmittedS the time from the first registration until all had (0 =
	// never, within the ramp timeout or the run).
	Admitted     int64   `json:"admitted"`
	AllAdmittedS float64 `json:"allAdmittedS"`
	ActiveAtEnd  int64   `json:"activeAtEnd"`

	Ramp    Phase `json:"ramp"`
	Measure Phase `json:"measure"`
	// BacklogAtMeasureStart/End: jobs that were due and released but that
	// no worker had started yet (every connection busy). A backlog at the
	// start is the ramp's, carried into the measurement.
	BacklogAtMeasureStart int `json:"backlogAtMeasureStart"`
	BacklogAtMeasureEnd   int `json:"backlogAtMeasureEnd"`

	Loss      *LossReport    `json:"loss,omitempty"`
	Tasks     *TaskReport    `json:"tasks,omitempty"`
	Churn     *ChurnReport   `json:"churn,omitempty"`
	Generator GeneratorUsage `json:"generator"`
	Stack     any            `json:"stack,omitempty"` // filled by the caller that spawned the controller
	Notes     []string       `json:"notes,omitempty"`
}

// Phase is what one phase measured. Errors leave out what the simulator
// expects: 429/503 refusals (backpressure, honoured), and 404/409 answers to
// heartbeats (counted as FalseOffline when the runner was on time, and
// followed by a re-registration either way).
type Phase struct {
	ElapsedS            float64                     `json:"elapsedS"`
	Requests            map[string]stats.KindReport `json:"requests"`
	Errors              int64                       `json:"errors"`
	ErrorsByStatus      map[string]int64            `json:"errorsByStatus"`
	HeartbeatsPerSecond float64                     `json:"heartbeatsPerSecond"`
	// HeartbeatsScheduled is what the fleet should have sent in the phase
	// had every heartbeat left on schedule (active runners x elapsed / mean
	// interval); compare with Requests["heartbeat"].Requests.
	HeartbeatsScheduled int64 `json:"heartbeatsScheduled,omitempty"`
	FalseOffline        int64 `json:"falseOffline"`
	// OfflineAfterBackoff: a heartbeat answered 404/409 that was late only
	// because the runner had been refused (429/503) and waited the
	// Retry-After it was told: the controller's doing as much as a false
	// offline (an overloaded api must grant the grace that covers it).
	OfflineAfterBackoff int64 `json:"offlineAfterBackoff"`
	// LateHeartbeats were sent after the lease had run out by the runner's
	// own clock: the generator (or a backoff) made them late.
	LateHeartbeats  int64 `json:"lateHeartbeats"`
	Reregistrations int64 `json:"reregistrations"`
	// ScheduleLag is how late jobs started against their schedule; it is
	// DispatchLag (the timer released them late: the generator's own CPU)
	// plus QueueWait (every connection was busy: a slow server, or too low
	// -concurrency).
	ScheduleLag stats.Quantiles `json:"scheduleLag"`
	DispatchLag stats.Quantiles `json:"dispatchLag"`
	QueueWait   stats.Quantiles `json:"queueWait"`
}

// LossReport is the correlated-loss scenario's result.
type LossReport struct {
	Stopped int `json:"stopped"`
	// Detected: stopped runners the controller listed as offline or
	// unreachable; AllDetectedS after the stop (0 = not all, within the
	// outage); DetectLatency per runner, to the poll that saw it.
	Detected      int             `json:"detected"`
	AllDetectedS  float64         `json:"allDetectedS"`
	DetectLatency stats.Quantiles `json:"detectLatency"`
	// FalseDetected: runners listed offline or unreachable that were not stopped.
	FalseDetected int             `json:"falseDetected"`
	OutageS       float64         `json:"outageS"`
	Back          int             `json:"back"`
	AllBackS      float64         `json:"allBackS"`
	BackLatency   stats.Quantiles `json:"backLatency"`
	Polls         int             `json:"polls"`
	PollErrors    int             `json:"pollErrors"`
	PollEveryS    float64         `json:"pollEveryS"`
	// Webhooks: the stopped runners' offline/unreachable webhooks (with -hooks).
	Webhooks *WebhookReport `json:"webhooks,omitempty"`
}

// TaskReport is the dispatch scenario's result: dispatch -> succeeded.
type TaskReport struct {
	Dispatched int64           `json:"dispatched"`
	Succeeded  int64           `json:"succeeded"`
	Unfinished int64           `json:"unfinished"`
	Skipped    int64           `json:"skipped"`
	Latency    stats.Quantiles `json:"latency"`
}

// ChurnReport is the churn scenario's result.
type ChurnReport struct {
	Left   int64 `json:"left"`
	Joined int64 `json:"joined"`
}

func (e *engine) phaseReport(p *phase, end time.Duration, scheduled int64) Phase {
	elapsed := end - p.start
	out := Phase{
		ElapsedS:            elapsed.Seconds(),
		Requests:            p.kinds.Report(elapsed),
		ErrorsByStatus:      map[string]int64{},
		HeartbeatsScheduled: scheduled,
		FalseOffline:        p.falseOffline.Load(),
		OfflineAfterBackoff: p.offlineAfterBackoff.Load(),
		LateHeartbeats:      p.lateHeartbeats.Load(),
		Reregistrations:     p.reregistrations.Load(),
		ScheduleLag:         p.schedLag.Snapshot(false),
		DispatchLag:         p.dispatchLag.Snapshot(false),
		QueueWait:           p.queueWait.Snapshot(false),
	}
	for _, k := range out.Requests {
		out.Errors += k.Errors
		for s, n := range k.ErrorsByCS {
			out.ErrorsByStatus[s] += n
		}
	}
	out.HeartbeatsPerSecond = out.Requests[kindHeartbeat].PerSecond
	return out
}

func (e *engine) report(started time.Time, rampEnd, measureEnd time.Duration) *Report {
	r := &Report{Tool: "ygg-sim", Scenario: e.cfg.Scenario, URL: e.cfg.URL, StartedAt: started.UTC()}
	r.Config.Runners = e.cfg.Runners
	r.Config.DurationS = e.cfg.Duration.Seconds()
	r.Config.Concurrency = e.cfg.Concurrency
	r.Config.RegisterRate = e.cfg.RegisterRate
	r.Config.Jitter = e.cfg.Jitter
	r.HeartbeatIntervalMs = e.interval.Load()
	r.LeaseTTLMs = e.leaseTTL.Load()
	r.Admitted = e.admitted.Load()
	if t := e.firstAdmitAll.Load(); t > 0 {
		r.AllAdmittedS = time.Duration(t).Seconds()
	}
	r.ActiveAtEnd = e.active.Load()
	r.BacklogAtMeasureStart, r.BacklogAtMeasureEnd = e.backlog[0], e.backlog[1]

	var scheduled int64
	if iv := time.Duration(r.HeartbeatIntervalMs) * time.Millisecond; iv > 0 {
		mean := float64(iv) * (1 - e.cfg.Jitter/2)
		scheduled = int64(float64(e.measureActive) * float64(measureEnd-rampEnd) / mean)
	}
	r.Ramp = e.phaseReport(e.ramp, rampEnd, 0)
	r.Measure = e.phaseReport(e.measure, measureEnd, scheduled)

	switch e.cfg.Scenario {
	case Loss:
		l := &e.loss
		l.mu.Lock()
		lr := &LossReport{Stopped: len(l.stopped), Detected: len(l.detected), FalseDetected: len(l.falseDetected),
			Back: l.back, Polls: l.polls, PollErrors: l.pollErrors, PollEveryS: e.cfg.PollEvery.Seconds()}
		if l.detectLatency != nil {
			lr.DetectLatency = l.detectLatency.Snapshot(false)
			lr.BackLatency = l.backLatency.Snapshot(false)
		}
		if l.allDetected > 0 {
			lr.AllDetectedS = (l.allDetected - l.stopAt).Seconds()
		}
		if l.returnAt > 0 {
			lr.OutageS = (l.returnAt - l.stopAt).Seconds()
		}
		if l.allBack > 0 {
			lr.AllBackS = (l.allBack - l.returnAt).Seconds()
		}
		if e.cfg.Webhooks != nil && !l.stopWall.IsZero() {
			lr.Webhooks = e.cfg.Webhooks.report(l.stopped, l.stopWall)
		}
		l.mu.Unlock()
		r.Loss = lr
	case Dispatch:
		e.tasks.mu.Lock()
		r.Tasks = &TaskReport{Dispatched: e.tasks.dispatched.Load(), Succeeded: e.tasks.succeeded.Load(),
			Unfinished: int64(len(e.tasks.sent)), Skipped: e.tasks.skipped, Latency: e.tasks.latency.Snapshot(false)}
		e.tasks.mu.Unlock()
	case Churn:
		r.Churn = &ChurnReport{Left: e.churn.left.Load(), Joined: e.churn.joined.Load()}
	}
	if r.Admitted < int64(e.cfg.Runners) {
		r.Notes = append(r.Notes, fmt.Sprintf("only %d of %d runners were admitted within the ramp", r.Admitted, e.cfg.Runners))
	}
	return r
}

// WriteText prints the human summary.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "ygg-sim %s: %d runners against %s (interval %d ms, lease %d ms)\n", r.Scenario, r.Config.Runners, r.URL, r.HeartbeatIntervalMs, r.LeaseTTLMs)
	fmt.Fprintf(w, "  admitted %d/%d", r.Admitted, r.Config.Runners)
	if r.AllAdmittedS > 0 {
		fmt.Fprintf(w, ", all after %.2f s", r.AllAdmittedS)
	}
	fmt.Fprintf(w, "; ramp %.1f s, measured %.1f s; active at end %d; backlog of due jobs at measure start %d, end %d\n",
		r.Ramp.ElapsedS, r.Measure.ElapsedS, r.ActiveAtEnd, r.BacklogAtMeasureStart, r.BacklogAtMeasureEnd)
	for _, ph := range []struct {
		name string
		p    Phase
	}{{"ramp", r.Ramp}, {"measure", r.Measure}} {
		p := ph.p
		fmt.Fprintf(w, "  [%s] errors %d %v, false offline %d, offline after a backoff %d, late heartbeats %d, re-registrations %d\n",
			ph.name, p.Errors, p.ErrorsByStatus, p.FalseOffline, p.OfflineAfterBackoff, p.LateHeartbeats, p.Reregistrations)
		names := make([]string, 0, len(p.Requests))
		for n := range p.Requests {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			k := p.Requests[n]
			fmt.Fprintf(w, "    %-15s %9d req %9.1f ok/s  p50 %7.2f  p90 %7.2f  p99 %7.2f  max %8.2f ms  %s\n",
				n, k.Requests, k.PerSecond, k.Latency.P50Ms, k.Latency.P90Ms, k.Latency.P99Ms, k.Latency.MaxMs, statuses(k.ByStatus))
			if q := k.RefusedLatency; q != nil {
				fmt.Fprintf(w, "      2xx p50 %.2f p99 %.2f max %.2f ms; 429/503 (%d) p50 %.2f p99 %.2f max %.2f ms\n",
					k.OKLatency.P50Ms, k.OKLatency.P99Ms, k.OKLatency.MaxMs, q.Count, q.P50Ms, q.P99Ms, q.MaxMs)
			}
		}
		if p.HeartbeatsScheduled > 0 {
			fmt.Fprintf(w, "    heartbeats sent %d of %d scheduled\n", p.Requests[kindHeartbeat].Requests, p.HeartbeatsScheduled)
		}
		fmt.Fprintf(w, "    schedule lag p50 %.2f p99 %.2f max %.2f ms (dispatcher p99 %.2f max %.2f; waiting for a connection p99 %.2f max %.2f)\n",
			p.ScheduleLag.P50Ms, p.ScheduleLag.P99Ms, p.ScheduleLag.MaxMs, p.DispatchLag.P99Ms, p.DispatchLag.MaxMs, p.QueueWait.P99Ms, p.QueueWait.MaxMs)
	}
	if l := r.Loss; l != nil {
		fmt.Fprintf(w, "  loss: stopped %d, detected %d (all after %.2f s; per runner p50 %.0f p99 %.0f max %.0f ms, poll every %.2f s), false detections %d; back %d/%d (all after %.2f s)\n",
			l.Stopped, l.Detected, l.AllDetectedS, l.DetectLatency.P50Ms, l.DetectLatency.P99Ms, l.DetectLatency.MaxMs, l.PollEveryS, l.FalseDetected, l.Back, l.Stopped, l.AllBackS)
		if h := l.Webhooks; h != nil {
			fmt.Fprintf(w, "  webhooks: %d of %d stopped runners (all after %.2f s; per runner p50 %.0f p99 %.0f max %.0f ms), %d for other runners, %d received in all\n",
				h.Stopped, l.Stopped, h.AllS, h.Latency.P50Ms, h.Latency.P99Ms, h.Latency.MaxMs, h.Others, h.Received)
		}
	}
	if t := r.Tasks; t != nil {
		fmt.Fprintf(w, "  tasks: dispatched %d, succeeded %d, unfinished %d; dispatch->succeeded p50 %.1f p90 %.1f p99 %.1f max %.1f ms\n",
			t.Dispatched, t.Succeeded, t.Unfinished, t.Latency.P50Ms, t.Latency.P90Ms, t.Latency.P99Ms, t.Latency.MaxMs)
	}
	if c := r.Churn; c != nil {
		fmt.Fprintf(w, "  churn: left %d, joined %d\n", c.Left, c.Joined)
	}
	g := r.Generator.Measure
	fmt.Fprintf(w, "  generator (this process) while measuring: cpu %.0f %% of a core, rss %.0f MiB (peak %.0f)\n", g.CPUPercent, g.RSSMiB, g.PeakRSSMiB)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func statuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}
