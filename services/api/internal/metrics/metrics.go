// Package metrics builds the API's Prometheus registry: fleet gauges and task
// counters read from Redis (so every replica reports the same truth at O(1)
// cost), optional per-runner series from a cached scan, HTTP request metrics
// by route template, the admission state and the Go/process collectors.
// docs/metrics.md lists every series; a test holds the two together.
//
// The per-runner series are those of the original controller:
// runner_leases{runner_id} is the lease expiry as a Unix time in seconds and
// runner_uptime_seconds{runner_id} the time since the runner process started
// (as its heartbeats report it, else since its registration). They come from
// a scan of the live runner index, so a deleted runner's series vanish with
// the next scan.
//
// It uses its own registry, never the global default, so that several
// services can live in one process. It must never label a series with a raw
// path or anything unbounded other than runner ids (switchable).
package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Source is what the collectors read; *store.Store satisfies it.
type Source interface {
	Counts(ctx context.Context) (store.FleetCounts, error)
	Stats(ctx context.Context) (map[string]int64, error)
	ListRunners(ctx context.Context, p store.ListRunnersParams) (wire.RunnerList, error)
}

// RealmSource is the per-realm part of Source (*store.Store has it); a
// Source without it exports no realm series.
type RealmSource interface {
	RealmRunnerCounts(ctx context.Context) ([]store.RealmRunnerCount, error)
}

// Options configures New.
type Options struct {
	Prefix    string
	PerRunner bool
	CacheTTL  time.Duration
	// Admission returns the current admission state (for the state gauge).
	Admission func(ctx context.Context) wire.AdmissionState
	// BreakerOpen reports whether the Redis breaker is open (for
	// breaker_open); nil: no series.
	BreakerOpen func() bool
	// Collectors are registered too (the Redis command metrics of the
	// store's Conn).
	Collectors []prometheus.Collector
	Now        func() time.Time
}

// Metrics is the registry plus the HTTP instruments.
type Metrics struct {
	Registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	heartbeat prometheus.Histogram
}

// HeartbeatRoute is the route whose requests heartbeat_duration_seconds
// times.
const HeartbeatRoute = "/runners/heartbeat"

// heartbeatBuckets are ms-scale: a heartbeat is one script on loopback
// Redis (well under 1 ms) plus HTTP; the upper buckets catch a slow Redis
// or the overload queue (OVERLOAD_QUEUE_MS).
var heartbeatBuckets = []float64{.00025, .0005, .001, .002, .003, .005, .0075, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New builds the registry.
func New(src Source, o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: o.Prefix + "http_requests_total", Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: o.Prefix + "http_request_duration_seconds", Help: "HTTP request duration by method and route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		heartbeat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: o.Prefix + "heartbeat_duration_seconds", Help: "Heartbeat request duration as the API served it (any status); exemplars carry the trace id.",
			Buckets: heartbeatBuckets,
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.heartbeat,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newFleet(src, o.Prefix),
	)
	if o.Admission != nil {
		reg.MustRegister(&admission{fn: o.Admission, desc: prometheus.NewDesc(o.Prefix+"admission_state",
			"Admission state: 1 for the current state.", []string{"state"}, nil),
			admitting: prometheus.NewDesc(o.Prefix+"admission_admitting", "1 when registrations are admitted.", nil, nil)})
	}
	if o.BreakerOpen != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: o.Prefix + "breaker_open", Help: "1 while this replica's Redis breaker is open or half-open (registrations refused).",
		}, func() float64 {
			if o.BreakerOpen() {
				return 1
			}
			return 0
		}))
	}
	if rs, ok := src.(RealmSource); ok {
		reg.MustRegister(newRealms(rs, o.Prefix))
	}
	reg.MustRegister(o.Collectors...)
	if o.PerRunner {
		reg.MustRegister(newPerRunner(src, o.Prefix, o.CacheTTL, o.Now))
	}
	return m
}

// ObserveRequest records one HTTP request; a heartbeat is also timed in
// heartbeat_duration_seconds, with the trace of ctx's sampled span as its
// exemplar (served with OpenMetrics only).
func (m *Metrics) ObserveRequest(ctx context.Context, method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, statusLabel(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
	if route == HeartbeatRoute && method == "POST" {
		if ex := telemetry.Exemplar(ctx); ex != nil {
			m.heartbeat.(prometheus.ExemplarObserver).ObserveWithExemplar(d.Seconds(), ex)
		} else {
			m.heartbeat.Observe(d.Seconds())
		}
	}
}

func statusLabel(s int) string {
	if s < 100 || s > 599 {
		return "other"
	}
	b := [3]byte{byte('0' + s/100), byte('0' + s/10%10), byte('0' + s%10)}
	return string(b[:])
}

const scrapeTimeout = 3 * time.Second

// fleet exports the fleet gauges (store.Counts) and task counters
// (store.Stats): two pipelined reads per scrape, whatever the fleet size.
type fleet struct {
	src                                              Source
	registered, online, offline, unreachable, leases *prometheus.Desc
	quarantined, dispatched, completed, transitions  *prometheus.Desc
	registrations, up                                *prometheus.Desc
}

func newFleet(src Source, p string) *fleet {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(p+name, help, labels, nil)
	}
	return &fleet{
		src:           src,
		registered:    d("runners_registered", "Runners ever registered (all statuses)."),
		online:        d("runners_online", "Runners holding a lease."),
		offline:       d("runners_offline", "Runners offline."),
		unreachable:   d("runners_unreachable", "Runners quarantined as unreachable."),
		leases:        d("leases_active", "Live leases in the deadline index (the fleet count; runner_leases is per runner)."),
		quarantined:   d("runners_quarantined", "Runners in the quarantine set."),
		dispatched:    d("tasks_dispatched_total", "Tasks dispatched, fleet-wide."),
		completed:     d("tasks_completed_total", "Tasks finished, fleet-wide, by final status.", "status"),
		transitions:   d("runner_transitions_total", "Runner offline transitions, fleet-wide, by reason.", "reason"),
		up:            d("store_up", "1 when the last scrape could read Redis."),
		registrations: d("runner_registrations_total", "Registrations, fleet-wide, by kind: new, returned (the runner was offline), renewed (it was live).", "kind"),
	}
}

func (f *fleet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.registered, f.online, f.offline, f.unreachable, f.leases, f.quarantined, f.dispatched, f.completed, f.transitions, f.registrations, f.up} {
		ch <- d
	}
}

func (f *fleet) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	c, err := f.src.Counts(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(f.up, prometheus.GaugeValue, 0)
		return
	}
	g := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(f.registered, c.Registered)
	g(f.online, c.Online)
	g(f.offline, c.Offline)
	g(f.unreachable, c.Unreachable)
	g(f.leases, c.Leases)
	g(f.quarantined, c.Quarantined)
	stats, err := f.src.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(f.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(f.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(f.dispatched, prometheus.CounterValue, float64(stats["tasks_dispatched"]))
	for _, s := range []wire.TaskStatus{wire.TaskSucceeded, wire.TaskFailed, wire.TaskCancelled} {
		ch <- prometheus.MustNewConstMetric(f.completed, prometheus.CounterValue, float64(stats["tasks_completed:"+string(s)]), string(s))
	}
	for _, kind := range []string{"new", "returned", "renewed"} {
		ch <- prometheus.MustNewConstMetric(f.registrations, prometheus.CounterValue, float64(stats["registrations:"+kind]), kind)
	}
	for k, v := range stats {
		if reason, ok := strings.CutPrefix(k, "transitions:"); ok && reason != "" && len(reason) <= 64 {
			ch <- prometheus.MustNewConstMetric(f.transitions, prometheus.CounterValue, float64(v), reason)
		}
	}
}

// admission exports the admission state.
type admission struct {
	fn        func(ctx context.Context) wire.AdmissionState
	desc      *prometheus.Desc
	admitting *prometheus.Desc
}

func (a *admission) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc; ch <- a.admitting }

func (a *admission) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st := a.fn(ctx)
	for _, s := range []string{"closed", "open", "half-open", "full", "quarantine"} {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, v, s)
	}
	v := 0.0
	if st.Admitting {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(a.admitting, prometheus.GaugeValue, v)
}

// perRunner exports per-runner series from a scan of the runner index,
// repeated at most once per ttl whatever the scrape rate.
type perRunner struct {
	src                                     Source
	ttl                                     time.Duration
	now                                     func() time.Time
	info, uptime, cpu, mem, running, leases *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	runners []wire.RunnerInfo
}

func newPerRunner(src Source, p string, ttl time.Duration, now func() time.Time) *perRunner {
	id := []string{"runner_id"}
	return &perRunner{
		src: src, ttl: ttl, now: now,
		info:    prometheus.NewDesc(p+"runner_info", "Runner identity (value 1).", []string{"runner_id", "name", "version", "status"}, nil),
		uptime:  prometheus.NewDesc(p+"runner_uptime_seconds", "Seconds since the runner process started, as it reports it (else since its registration); not for offline runners.", id, nil),
		leases:  prometheus.NewDesc(p+"runner_leases", "The runner's lease expiry, Unix time in seconds; only for runners holding a lease.", id, nil),
		cpu:     prometheus.NewDesc(p+"runner_cpu_percent", "CPU use the runner last reported.", id, nil),
		mem:     prometheus.NewDesc(p+"runner_memory_percent", "Memory use the runner last reported.", id, nil),
		running: prometheus.NewDesc(p+"runner_tasks_running", "Tasks the runner last reported running.", id, nil),
	}
}

func (r *perRunner) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.info
	ch <- r.uptime
	ch <- r.cpu
	ch <- r.mem
	ch <- r.running
	ch <- r.leases
}

func (r *perRunner) snapshot() []wire.RunnerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runners != nil && r.now().Sub(r.at) < r.ttl {
		return r.runners
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	all := []wire.RunnerInfo{}
	cursor := ""
	for {
		page, err := r.src.ListRunners(ctx, store.ListRunnersParams{Cursor: cursor, Limit: store.MaxListLimit})
		if err != nil {
			return r.runners // keep serving the last good scan
		}
		all = append(all, page.Runners...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	r.runners, r.at = all, r.now()
	return all
}

func (r *perRunner) Collect(ch chan<- prometheus.Metric) {
	now := r.now()
	for _, x := range r.snapshot() {
		// NewConstMetric (not Must): a label value that is not valid UTF-8
		// must cost one series, never the scrape.
		if m, err := prometheus.NewConstMetric(r.info, prometheus.GaugeValue, 1, x.ID, x.Name, x.Version, string(x.Status)); err == nil {
			ch <- m
		}
		ch <- prometheus.MustNewConstMetric(r.running, prometheus.GaugeValue, float64(x.TasksRunning), x.ID)
		if x.LeaseExpiresAt != nil {
			ch <- prometheus.MustNewConstMetric(r.leases, prometheus.GaugeValue, float64(x.LeaseExpiresAt.UnixMilli())/1000, x.ID)
		}
		if x.Status != wire.RunnerOffline {
			start := x.RegisteredAt
			if x.StartedAt != nil {
				start = *x.StartedAt
			}
			ch <- prometheus.MustNewConstMetric(r.uptime, prometheus.GaugeValue, max(0, now.Sub(start).Seconds()), x.ID)
		}
		if x.Resources != nil {
			ch <- prometheus.MustNewConstMetric(r.cpu, prometheus.GaugeValue, x.Resources.CPUPercent, x.ID)
			ch <- prometheus.MustNewConstMetric(r.mem, prometheus.GaugeValue, x.Resources.MemoryPercent, x.ID)
		}
	}
}

// realms exports realm_runners{realm, status}: one series per realm and
// status. The realm label is bounded: realms are created by global
// operators (or by a global key registering into a new one), and at most
// store.MaxMetricRealms of them are read.
type realms struct {
	src  RealmSource
	desc *prometheus.Desc
}

func newRealms(src RealmSource, p string) *realms {
	return &realms{src: src, desc: prometheus.NewDesc(p+"realm_runners",
		"Runners of each realm by status (online, offline, unreachable).", []string{"realm", "status"}, nil)}
}

func (r *realms) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *realms) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := r.src.RealmRunnerCounts(ctx)
	if err != nil {
		return // store_up says Redis could not be read
	}
	for _, c := range counts {
		for _, v := range []struct {
			status wire.RunnerStatus
			n      int64
		}{{wire.RunnerOnline, c.Online}, {wire.RunnerOffline, c.Offline}, {wire.RunnerUnreachable, c.Unreachable}} {
			ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, float64(v.n), c.Realm, string(v.status))
		}
	}
}
