// Package metrics holds the hooks service's Prometheus metrics, on a private
// registry (several services share one process under the dev launcher, so
// nothing goes to the global default registry), and the collector that reads
// the outbox backlog and the asynq queue at scrape time.
//
// It must never change state: collectors only read.
package metrics

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// Delivery outcomes (the outcome label of deliveries_total).
const (
	OutcomeDelivered = "delivered" // 2xx
	OutcomeRetry     = "retry"     // 408, 429, 5xx, network error: retried later
	OutcomeFailed    = "failed"    // other 4xx, 3xx: archived at once
	OutcomeExhausted = "exhausted" // retryable, but HOOK_MAX_RETRIES used up: archived
)

// Relay results (the result label of relay_events_total).
const (
	RelayEnqueued  = "enqueued"  // one or more delivery tasks created
	RelayDuplicate = "duplicate" // every task existed already (a re-read after a crash)
	RelayMalformed = "malformed" // undecodable entry: acknowledged and dropped
	RelayFiltered  = "filtered"  // type not in HOOK_EVENTS
	RelayHooksOff  = "hooks_off" // no RUNNER_OFFLINE_HOOK: drained
)

// Metrics are the hooks service's instruments.
type Metrics struct {
	Registry *prometheus.Registry

	// Deliveries counts delivery attempts by outcome and status class
	// (2xx, 3xx, 4xx, 5xx, network).
	Deliveries *prometheus.CounterVec
	// Latency is the duration of one delivery attempt (the HTTP exchange);
	// observe it with ObserveLatency for the exemplar.
	Latency prometheus.Histogram
	// Attempts is the number of attempts a delivery took, observed once on
	// its final outcome (delivered, failed or exhausted).
	Attempts *prometheus.HistogramVec
	// EventAge is the time from the event being recorded to its successful
	// delivery: the end-to-end latency receivers see.
	EventAge prometheus.Histogram
	// RelayEvents counts outbox entries handled by the relay.
	RelayEvents *prometheus.CounterVec
	// Trimmed counts outbox entries trimmed after acknowledgement.
	Trimmed prometheus.Counter
}

// latencyBuckets are the delivery_duration_seconds buckets for a hook
// timeout: 5 ms up to the timeout itself, since no attempt lasts longer (a
// receiver that does not answer in time is cut at HOOK_TIMEOUT_MS and lands
// in the last bucket).
func latencyBuckets(timeout time.Duration) []float64 {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	top := timeout.Seconds()
	var out []float64
	for _, b := range []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 120} {
		if b < top {
			out = append(out, b)
		}
	}
	return append(out, top)
}

// New registers the instruments on a new registry; every name starts with
// prefix + "hooks_". hookTimeout (HOOK_TIMEOUT_MS) bounds the delivery
// latency buckets.
func New(prefix string, hookTimeout time.Duration) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := prefix + "hooks_"
	m := &Metrics{
		Registry: reg,
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "deliveries_total", Help: "Webhook delivery attempts by outcome and HTTP status class.",
		}, []string{"outcome", "status_class"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: p + "delivery_duration_seconds", Help: "Duration of one webhook delivery attempt; exemplars carry the attempt's trace id.",
			Buckets: latencyBuckets(hookTimeout),
		}),
		Attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: p + "delivery_attempts", Help: "Attempts a delivery took, observed on its final outcome.",
			Buckets: []float64{1, 2, 3, 4, 5, 7, 10, 15, 21},
		}, []string{"outcome"}),
		EventAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: p + "event_delivery_latency_seconds", Help: "Time from an event being recorded in the outbox to its successful delivery.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		RelayEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "relay_events_total", Help: "Outbox entries handled by the relay, by result.",
		}, []string{"result"}),
		Trimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: p + "outbox_trimmed_total", Help: "Outbox entries trimmed after every delivery task was enqueued.",
		}),
	}
	// Every outcome's series exists from the start, so that rate() and the
	// alerts on failures see 0 rather than nothing.
	for _, o := range []string{OutcomeDelivered, OutcomeRetry, OutcomeFailed, OutcomeExhausted} {
		for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "network"} {
			m.Deliveries.WithLabelValues(o, c)
		}
	}
	for _, o := range []string{OutcomeDelivered, OutcomeFailed, OutcomeExhausted} {
		m.Attempts.WithLabelValues(o)
	}
	for _, r := range []string{RelayEnqueued, RelayDuplicate, RelayMalformed, RelayFiltered, RelayHooksOff} {
		m.RelayEvents.WithLabelValues(r)
	}
	reg.MustRegister(m.Deliveries, m.Latency, m.Attempts, m.EventAge, m.RelayEvents, m.Trimmed)
	return m
}

// ObserveLatency records one attempt's duration, with the trace of ctx's
// sampled span (the attempt's) as the exemplar: served with OpenMetrics, a
// slow bucket leads to the trace of a delivery that landed in it.
func (m *Metrics) ObserveLatency(ctx context.Context, d time.Duration) {
	if ex := telemetry.Exemplar(ctx); ex != nil {
		m.Latency.(prometheus.ExemplarObserver).ObserveWithExemplar(d.Seconds(), ex)
		return
	}
	m.Latency.Observe(d.Seconds())
}

// StatusClass is the status_class label of an HTTP status (0 = network error).
func StatusClass(status int) string {
	switch {
	case status == 0:
		return "network"
	case status < 300:
		return "2xx"
	case status < 400:
		return "3xx"
	case status < 500:
		return "4xx"
	}
	return "5xx"
}

// Backlog is a collector reading the outbox backlog and the asynq queue at
// scrape time, each read bounded by a timeout.
type Backlog struct {
	outbox    *store.OutboxReader
	inspector *asynq.Inspector
	queue     string
	log       *slog.Logger

	outboxLength, outboxPending, outboxLag, outboxOldest, queueTasks, archived, up *prometheus.Desc
}

// NewBacklog returns the collector; register it on Metrics.Registry.
func NewBacklog(prefix string, outbox *store.OutboxReader, inspector *asynq.Inspector, queue string, log *slog.Logger) *Backlog {
	p := prefix + "hooks_"
	return &Backlog{
		outbox: outbox, inspector: inspector, queue: queue, log: log,
		outboxLength:  prometheus.NewDesc(p+"outbox_length", "Entries in the outbox stream.", nil, nil),
		outboxPending: prometheus.NewDesc(p+"outbox_pending", "Outbox entries read by a relay and not acknowledged yet.", nil, nil),
		outboxLag:     prometheus.NewDesc(p+"outbox_lag_entries", "Outbox entries no relay has read yet.", nil, nil),
		outboxOldest:  prometheus.NewDesc(p+"outbox_oldest_undelivered_seconds", "Age of the oldest outbox entry not acknowledged yet (0 when none).", nil, nil),
		queueTasks:    prometheus.NewDesc(p+"queue_tasks", "Delivery tasks in the asynq queue by state.", []string{"state"}, nil),
		archived:      prometheus.NewDesc(p+"archived_deliveries", "Deliveries archived after a permanent failure or exhausted retries.", nil, nil),
		up:            prometheus.NewDesc(p+"backlog_scrape_ok", "1 when the outbox and queue could be read at this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{b.outboxLength, b.outboxPending, b.outboxLag, b.outboxOldest, b.queueTasks, b.archived, b.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	ok := 1.0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if st, err := b.outbox.Stats(ctx); err != nil {
		ok = 0
		b.log.Debug("metrics: outbox stats", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(b.outboxLength, prometheus.GaugeValue, float64(st.Length))
		ch <- prometheus.MustNewConstMetric(b.outboxPending, prometheus.GaugeValue, float64(st.Pending))
		if st.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(b.outboxLag, prometheus.GaugeValue, float64(st.Lag))
		}
		ch <- prometheus.MustNewConstMetric(b.outboxOldest, prometheus.GaugeValue, st.OldestUndelivered.Seconds())
	}
	qi, err := b.queueInfo()
	if err != nil {
		ok = 0
		b.log.Debug("metrics: queue info", "err", err)
	}
	if qi != nil {
		for state, n := range map[string]int{
			"pending": qi.Pending, "active": qi.Active, "scheduled": qi.Scheduled,
			"retry": qi.Retry, "archived": qi.Archived, "completed": qi.Completed,
		} {
			ch <- prometheus.MustNewConstMetric(b.queueTasks, prometheus.GaugeValue, float64(n), state)
		}
		ch <- prometheus.MustNewConstMetric(b.archived, prometheus.GaugeValue, float64(qi.Archived))
	}
	ch <- prometheus.MustNewConstMetric(b.up, prometheus.GaugeValue, ok)
}

// queueInfo reads the queue's counts; a queue that has never held a task
// does not exist yet and counts as empty.
func (b *Backlog) queueInfo() (*asynq.QueueInfo, error) {
	qs, err := b.inspector.Queues()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(qs, b.queue) {
		return &asynq.QueueInfo{Queue: b.queue}, nil
	}
	return b.inspector.GetQueueInfo(b.queue)
}
