// Package relay moves lifecycle events from the Redis outbox stream into the
// asynq delivery queue: read with a consumer group, enqueue one task per
// (event, URL) with a task id derived from the event id, acknowledge only
// after the enqueue, claim what a dead relay left pending, trim what is done.
//
// Crash safety comes from the order of those steps: an entry is acknowledged
// only once its tasks exist, so a crash before the ack leaves it pending and
// a relay re-reads or claims it; the re-enqueue then conflicts on the task id
// (asynq keeps finished tasks for the dedup retention), so nothing is sent
// twice. It must never deliver anything itself.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/delivery"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// Enqueuer is the part of asynq.Client the relay uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config tunes a Relay.
type Config struct {
	URLs []string
	// Realms, when set, adds each event's realm's own webhookUrls to its
	// destinations (delivery.EventRealm names the realm); nil: global only.
	Realms    *delivery.RealmCache
	Delivers  func(eventType string) bool // nil delivers every type
	MaxRetry  int
	Timeout   time.Duration // per-attempt timeout; the task timeout adds a margin
	Retention time.Duration // how long finished tasks keep their id taken
	ClaimIdle time.Duration // XAUTOCLAIM min idle time
	Batch     int           // entries per read or claim (config.Hooks.RelayBatch)
	Block     time.Duration // XREADGROUP block (config.Hooks.RelayBlock): bounds shutdown time
	// BeforeAck, when set, runs before each acknowledgement; an error stops
	// Run with it, leaving the entries pending (tests simulate a crash here).
	BeforeAck func(ids []string) error
	// TracerProvider and Propagator make the span of each relayed event and
	// write its context into the delivery tasks; nil takes the process's
	// global ones (no-ops unless main installed shared/telemetry).
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// Scope is the instrumentation scope of the relay spans.
const Scope = "github.com/yggdrasil-cp/yggdrasil/services/hooks/relay"

// SpanName names the producer span of each relayed event: the messaging
// conventions' "{operation} {destination}".
const SpanName = "send " + delivery.Queue

// MessagingSystem is the messaging.system of the relay's spans (asynq is
// not among the conventions' well-known values, which allow others).
const MessagingSystem = "asynq"

// Relay is the outbox-to-queue loop.
type Relay struct {
	cfg     Config
	outbox  *store.OutboxReader
	queue   Enqueuer
	metrics *metrics.Metrics
	log     *slog.Logger
	ready   atomic.Bool
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
}

// New returns a relay reading outbox and enqueueing into queue.
func New(cfg Config, outbox *store.OutboxReader, queue Enqueuer, m *metrics.Metrics, log *slog.Logger) *Relay {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return &Relay{cfg: cfg, outbox: outbox, queue: queue, metrics: m, log: log,
		tracer: cfg.TracerProvider.Tracer(Scope), prop: cfg.Propagator}
}

// Ready reports whether the relay is connected and reading.
func (r *Relay) Ready() bool { return r.ready.Load() }

// errCrash marks a BeforeAck failure: Run returns instead of retrying.
var errCrash = errors.New("relay: stopped before acknowledging")

// Run relays until ctx ends. Redis errors are logged and retried with a
// capped backoff; every (re)connection starts by re-reading this consumer's
// own pending entries, so nothing read before an error is forgotten.
func (r *Relay) Run(ctx context.Context) error {
	wait := 100 * time.Millisecond
	for {
		err := r.session(ctx)
		r.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errCrash) {
			return err
		}
		r.log.Warn("hooks relay: redis error, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (r *Relay) session(ctx context.Context) error {
	if err := r.outbox.EnsureGroup(ctx); err != nil {
		return err
	}
	r.ready.Store(true)
	r.log.Info("hooks relay: reading the outbox", "group", r.outbox.Group(), "consumer", r.outbox.Consumer(), "urls", len(r.cfg.URLs))
	for {
		msgs, err := r.outbox.ReadOwnPending(ctx, r.cfg.Batch)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		if err := r.handle(ctx, msgs); err != nil {
			return err
		}
	}
	var lastClaim, lastPrune time.Time
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(lastClaim) >= r.cfg.ClaimIdle/2 {
			lastClaim = time.Now()
			claimed, err := r.outbox.Claim(ctx, r.cfg.ClaimIdle, r.cfg.Batch)
			if err != nil && !store.IsNoGroup(err) {
				return err
			}
			if len(claimed) > 0 {
				r.log.Info("hooks relay: claimed entries a stopped relay left pending", "count", len(claimed))
				if err := r.handle(ctx, claimed); err != nil {
					return err
				}
			}
		}
		if time.Since(lastPrune) >= time.Hour {
			lastPrune = time.Now()
			if n, err := r.outbox.PruneConsumers(ctx, 24*time.Hour); err != nil {
				r.log.Debug("hooks relay: prune consumers", "err", err)
			} else if n > 0 {
				r.log.Info("hooks relay: removed idle consumer names", "count", n)
			}
		}
		msgs, err := r.outbox.Read(ctx, r.cfg.Batch, r.cfg.Block)
		if store.IsNoGroup(err) { // Redis restarted or the stream was deleted
			if err := r.outbox.EnsureGroup(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := r.handle(ctx, msgs); err != nil {
			return err
		}
	}
}

// handle enqueues the deliveries of msgs, then acknowledges them and trims
// the stream. Entries whose enqueue failed are not acknowledged.
func (r *Relay) handle(ctx context.Context, msgs []store.OutboxEntry) error {
	if len(msgs) == 0 {
		return nil
	}
	done := make([]string, 0, len(msgs))
	var enqErr error
	for _, msg := range msgs {
		if err := r.relay(ctx, msg); err != nil {
			enqErr = err
			break
		}
		done = append(done, msg.ID)
	}
	if len(done) > 0 {
		if r.cfg.BeforeAck != nil {
			if err := r.cfg.BeforeAck(done); err != nil {
				return fmt.Errorf("%w: %w", errCrash, err)
			}
		}
		if err := r.outbox.Ack(ctx, done...); err != nil {
			return err
		}
		n, err := r.outbox.Trim(ctx)
		if err != nil {
			r.log.Warn("hooks relay: trim", "err", err)
		}
		r.metrics.Trimmed.Add(float64(n))
	}
	return enqErr
}

// relay enqueues one entry's deliveries. An error means the entry must stay
// pending (Redis failed); everything else (malformed, filtered, duplicate)
// is done.
func (r *Relay) relay(ctx context.Context, msg store.OutboxEntry) error {
	ev, err := store.DecodeEvent(msg)
	if err != nil {
		r.metrics.RelayEvents.WithLabelValues(metrics.RelayMalformed).Inc()
		r.log.Error("hooks relay: malformed outbox entry acknowledged and dropped", "entry", msg.ID, "err", err)
		return nil
	}
	if r.cfg.Delivers != nil && !r.cfg.Delivers(ev.Type) { // HOOK_EVENTS filters realm destinations too
		if len(r.cfg.URLs) == 0 && r.cfg.Realms == nil {
			r.metrics.RelayEvents.WithLabelValues(metrics.RelayHooksOff).Inc()
		} else {
			r.metrics.RelayEvents.WithLabelValues(metrics.RelayFiltered).Inc()
		}
		return nil
	}
	// The realm's own destinations, read at relay time (a realm deleted
	// since has none: realm.deleted reaches the global destinations only).
	var realm string
	var realmURLs []string
	if r.cfg.Realms != nil {
		if realm = delivery.EventRealm(ev); realm != "" {
			h, err := r.cfg.Realms.Get(ctx, realm)
			if err != nil {
				return fmt.Errorf("hooks relay: realm %s destinations for %s: %w", realm, ev.ID, err)
			}
			realmURLs = h.URLs
		}
	}
	if len(r.cfg.URLs) == 0 && len(realmURLs) == 0 {
		r.metrics.RelayEvents.WithLabelValues(metrics.RelayHooksOff).Inc()
		return nil
	}
	// One producer span per event, following the messaging conventions: a
	// send to the asynq queue, the child of the span that recorded the event
	// (the offline transition, the registering request), so that the
	// delivery attempts, its children, and the webhook's traceparent belong
	// to that trace. Without a stored context it starts a trace of its own.
	ctx = telemetry.ContextWithTraceparent(ctx, ev.Traceparent)
	ctx, span := r.tracer.Start(ctx, SpanName, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(MessagingSystem), semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("enqueue"), semconv.MessagingDestinationName(delivery.Queue),
			semconv.MessagingMessageID(ev.ID),
			telemetry.AttrEventID.String(ev.ID), telemetry.AttrEventType.String(ev.Type)))
	defer span.End()
	carrier := propagation.MapCarrier{}
	r.prop.Inject(ctx, carrier)
	type dest struct{ realm, url string }
	dests := make([]dest, 0, len(r.cfg.URLs)+len(realmURLs))
	for _, u := range r.cfg.URLs {
		dests = append(dests, dest{url: u})
	}
	for _, u := range realmURLs {
		dests = append(dests, dest{realm: realm, url: u})
	}
	created := 0
	for _, d := range dests {
		task, err := delivery.NewRealmTask(ev, d.realm, d.url, carrier)
		if err != nil { // cannot happen with a decoded event; drop rather than block
			r.metrics.RelayEvents.WithLabelValues(metrics.RelayMalformed).Inc()
			r.log.Error("hooks relay: cannot build delivery", "entry", msg.ID, "err", err)
			return nil
		}
		id := delivery.TaskID(ev.ID, d.url)
		if d.realm != "" {
			id = delivery.RealmTaskID(ev.ID, d.realm, d.url)
		}
		_, err = r.queue.EnqueueContext(ctx, task,
			asynq.TaskID(id), asynq.Queue(delivery.Queue),
			asynq.MaxRetry(r.cfg.MaxRetry), asynq.Timeout(r.cfg.Timeout+5*time.Second),
			asynq.Retention(r.cfg.Retention))
		switch {
		case errors.Is(err, asynq.ErrTaskIDConflict):
		case err != nil:
			span.SetStatus(codes.Error, "enqueue failed")
			return fmt.Errorf("hooks relay: enqueue %s: %w", ev.ID, err)
		default:
			created++
		}
	}
	result := metrics.RelayEnqueued
	if created == 0 {
		result = metrics.RelayDuplicate
	}
	r.metrics.RelayEvents.WithLabelValues(result).Inc()
	r.log.DebugContext(ctx, "hooks relay: enqueued", "entry", ev.ID, "type", ev.Type, "realm", realm, "tasks", created)
	return nil
}
