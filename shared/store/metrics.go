package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisLatencyBuckets run from 100 µs (a PING on loopback) to 2.5 s (a
// command stuck behind a slow script or a failover).
var redisLatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// blocking are the commands that wait on the server by design (the relay's
// XREADGROUP BLOCK, asynq's dequeue, subscriptions): their duration is the
// wait, not Redis being slow, so they are counted but not timed.
var blocking = map[string]bool{
	"xread": true, "xreadgroup": true, "blpop": true, "brpop": true, "brpoplpush": true, "blmove": true,
	"bzpopmin": true, "bzpopmax": true, "subscribe": true, "psubscribe": true, "wait": true,
}

// RedisMetrics is the Prometheus collector of the commands a Conn sends:
// redis_commands_total{op}, redis_command_duration_seconds{op} and
// redis_errors_total{op,class}. op is the store script's name for an
// EVALSHA or EVAL of one of ours (heartbeat, expire_lease, ...), "pipeline"
// for a pipeline or transaction, else the lower-case command name: a set
// fixed by the code, never a key or an argument.
type RedisMetrics struct {
	commands *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// Describe implements prometheus.Collector.
func (m *RedisMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.commands.Describe(ch)
	m.duration.Describe(ch)
	m.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *RedisMetrics) Collect(ch chan<- prometheus.Metric) {
	m.commands.Collect(ch)
	m.duration.Collect(ch)
	m.errors.Collect(ch)
}

// metricsOnce holds one collector per client: store.Wrap may give one
// client several Conns (tests do), and one hook must count each command once.
var metricsOnce sync.Map // redis.UniversalClient -> *RedisMetrics

// Metrics returns the collector of c's commands, installing its hook on the
// first call; later calls (several services sharing one process and one
// Conn, as under make run) return the same collector, named with the first
// call's prefix. Register it on the service's registry.
func (c *Conn) Metrics(prefix string) *RedisMetrics {
	if m, ok := metricsOnce.Load(c.rdb); ok {
		return m.(*RedisMetrics)
	}
	m := &RedisMetrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "redis_commands_total", Help: "Redis commands sent, by operation (script name, pipeline or command).",
		}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: prefix + "redis_command_duration_seconds", Help: "Round trip of a Redis command or pipeline, by operation (blocking reads excluded).",
			Buckets: redisLatencyBuckets,
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "redis_errors_total", Help: "Redis commands that failed, by operation and error class (connection, timeout, canceled, or the Redis error prefix).",
		}, []string{"op", "class"}),
	}
	// Series that exist before the first failure, so that rate() and the
	// alert see 0 and not an absent series.
	m.errors.WithLabelValues("pipeline", "connection")
	if prev, loaded := metricsOnce.LoadOrStore(c.rdb, m); loaded {
		return prev.(*RedisMetrics)
	}
	c.rdb.AddHook(&metricsHook{m: m, scripts: ScriptNames()})
	return m
}

type metricsHook struct {
	m       *RedisMetrics
	scripts map[string]string
}

func (h *metricsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *metricsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	sn := &redisHook{scripts: h.scripts}
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if connSetup[name] {
			return next(ctx, cmd)
		}
		op := name
		if s := sn.scriptName(cmd); s != "" {
			op = s
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(op, !blocking[name], time.Since(start), err)
		return err
	}
}

func (h *metricsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if allConnSetup(cmds) {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		h.observe("pipeline", true, time.Since(start), err)
		return err
	}
}

func (h *metricsHook) observe(op string, timed bool, d time.Duration, err error) {
	h.m.commands.WithLabelValues(op).Inc()
	if timed {
		h.m.duration.WithLabelValues(op).Observe(d.Seconds())
	}
	if class := errorClass(err); class != "" {
		h.m.errors.WithLabelValues(op, class).Inc()
	}
}

// errorClass is the bounded class of a command's error: "" for none, for
// redis.Nil (a miss) and for NOSCRIPT (go-redis answers it with EVAL);
// "timeout", "canceled", "connection", or the Redis error prefix (ERR,
// WRONGTYPE, READONLY, LOADING, ...; "redis" when it is not a short
// upper-case word).
func errorClass(err error) string {
	if err == nil || errors.Is(err, redis.Nil) {
		return ""
	}
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr):
		prefix, _, _ := strings.Cut(rerr.Error(), " ")
		if prefix == "NOSCRIPT" {
			return ""
		}
		if len(prefix) == 0 || len(prefix) > 16 || strings.ToUpper(prefix) != prefix || strings.ContainsFunc(prefix, func(r rune) bool { return r < 'A' || r > 'Z' }) {
			return "redis"
		}
		return prefix
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "connection"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
