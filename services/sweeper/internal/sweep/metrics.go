package sweep

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// metrics are the sweeper's series, on a private registry (several services
// may share one process).
type metrics struct {
	transitions      *prometheus.CounterVec
	lag              prometheus.Histogram
	eventsReceived   prometheus.Counter
	eventTrans       prometheus.Counter
	indexTrans       prometheus.Counter
	leaseAlive       prometheus.Counter
	alreadyOffline   prometheus.Counter
	quarantineActive prometheus.Gauge
	quarantined      prometheus.Gauge
	qEntries         prometheus.Counter
	qExits           *prometheus.CounterVec
	qRunners         prometheus.Counter
	taskTimeouts     *prometheus.CounterVec
	errors           *prometheus.CounterVec
	keyspaceEvents   prometheus.Gauge
	subscriptions    prometheus.Counter
	tickSeconds      prometheus.Histogram
	scans            *prometheus.CounterVec
	purged           prometheus.Counter
	taskIndexTrimmed prometheus.Counter
	outages          *prometheus.CounterVec
	graceWindows     prometheus.Counter
	graceRearmed     prometheus.Counter
}

// lagBuckets run from 1 ms to 60 s, fine-grained below the 100 ms tick;
// the upper ones catch a sweeper that fell behind (a stopped replica, a
// Redis outage, a mass expiry worked off in batches).
var lagBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2,
	0.3, 0.5, 0.75, 1, 2, 3, 5, 7.5, 10, 15, 30, 60,
}

// errorOps are the op labels of sweep_errors_total (Service.fail), created
// at start so that rate() and the alerts see 0 rather than no series.
var errorOps = []string{
	"sweep", "expire", "forget", "quarantine", "release", "task_timeout", "subscribe",
	"outage_check", "outage_record", "outage_grace", "backfill_offline_since", "purge", "trim_task_index",
}

func newMetrics(reg prometheus.Registerer, prefix string) *metrics {
	m := &metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "transitions_total",
			Help: "Offline transitions this sweeper performed, by reason.",
		}, []string{"reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    prefix + "detection_lag_seconds",
			Help:    "Offline transition time minus lease deadline (both Redis time).",
			Buckets: lagBuckets,
		}),
		eventsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "events_received_total",
			Help: "Lease keyspace expiry events received.",
		}),
		eventTrans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "event_transitions_total",
			Help: "Offline transitions found by a scan that a keyspace event (or a resubscription) prompted; the scans themselves make Redis expire due keys and publish their events.",
		}),
		indexTrans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "index_transitions_total",
			Help: "Offline transitions found by a scan the sweeper timed itself (the tick, or the wake at the next lease deadline): expiries no event had reported yet.",
		}),
		leaseAlive: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "lease_alive_total",
			Help: "Expiry attempts that found the lease renewed (a heartbeat won the race).",
		}),
		alreadyOffline: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "already_offline_total",
			Help: "Expiry attempts that found the runner offline already (another sweeper won).",
		}),
		quarantineActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prefix + "quarantine_active",
			Help: "1 while a correlated-loss quarantine is active.",
		}),
		quarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prefix + "quarantined_runners",
			Help: "Runners currently quarantined (unreachable).",
		}),
		qEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "quarantine_entries_total",
			Help: "Times this sweeper switched the quarantine on.",
		}),
		qExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "quarantine_exits_total",
			Help: "Times this sweeper ended the quarantine, by reason (recovered, operator, hold_expired).",
		}, []string{"reason"}),
		qRunners: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "quarantined_runners_total",
			Help: "Runners this sweeper moved to unreachable.",
		}),
		taskTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "task_timeouts_total",
			Help: "Tasks failed for running past their timeout, by the status they had.",
		}, []string{"was"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "sweep_errors_total",
			Help: "Errors of the sweeper loops, by operation.",
		}, []string{"op"}),
		keyspaceEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prefix + "keyspace_events_enabled",
			Help: "1 when notify-keyspace-events includes expired events (0: the index tick alone).",
		}),
		subscriptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "keyspace_subscriptions_total",
			Help: "Keyspace event (re)subscriptions; each one is followed by a full index scan.",
		}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    prefix + "sweep_tick_seconds",
			Help:    "Duration of one index tick.",
			Buckets: lagBuckets,
		}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "lease_scans_total",
			Help: "Lease index scans, by what prompted them: tick, deadline (the wake at the next lease deadline) or event (a keyspace event, a resubscription, an operator release).",
		}, []string{"trigger"}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "runners_purged_total",
			Help: "Offline runners this sweeper deleted after RUNNER_RETENTION_MS.",
		}),
		taskIndexTrimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "task_index_trimmed_total",
			Help: "Entries of the fleet task index this sweeper dropped because their task expired.",
		}),
		outages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "outages_detected_total",
			Help: "Control-plane outages this sweeper detected and recorded, by source (restart: a changed Redis run_id; sweeper: its own lost connection).",
		}, []string{"source"}),
		graceWindows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "outage_grace_windows_total",
			Help: "Outage windows (from any source) this sweeper granted the failover grace.",
		}),
		graceRearmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "outage_grace_leases_total",
			Help: "Leases this sweeper re-armed for a failover grace.",
		}),
	}
	for _, src := range []string{store.OutageRestart, store.OutageSweeper} {
		m.outages.WithLabelValues(src)
	}
	for _, by := range []trigger{byTick, byDeadline, byEvent} {
		m.scans.WithLabelValues(string(by))
	}
	m.transitions.WithLabelValues(wire.ReasonLeaseExpired)
	for _, r := range []string{store.QuarantineRecovered, store.QuarantineOperator, store.QuarantineHoldExpired} {
		m.qExits.WithLabelValues(r)
	}
	for _, was := range []wire.TaskStatus{wire.TaskPending, wire.TaskRunning} {
		m.taskTimeouts.WithLabelValues(string(was))
	}
	for _, op := range errorOps {
		m.errors.WithLabelValues(op)
	}
	reg.MustRegister(m.transitions, m.lag, m.eventsReceived, m.eventTrans, m.indexTrans,
		m.leaseAlive, m.alreadyOffline, m.quarantineActive, m.quarantined, m.qEntries, m.qExits, m.qRunners,
		m.taskTimeouts, m.errors, m.keyspaceEvents, m.subscriptions, m.tickSeconds, m.scans,
		m.purged, m.taskIndexTrimmed,
		m.outages, m.graceWindows, m.graceRearmed)
	return m
}
