package runners

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// Outage sources as the api records them in Redis (store.RecordOutage).
const (
	// OutageSourceAPI is a store outage the admission breaker saw.
	OutageSourceAPI = store.OutageBreaker
	// OutageSourceOverload is a window in which this api shed heartbeats.
	OutageSourceOverload = store.OutageOverload
)

// maxPendingOutages bounds the windows kept while Redis cannot take them.
const maxPendingOutages = 64

// OutageRecorder collects outage windows off the hot path and writes them to
// Redis from its own loop, at most once per flush interval: Add never blocks
// nor talks to Redis, a window that starts within mergeGap of the previous
// one's end (same source) extends it, and a write that fails is retried on
// the next flush. A window still going on (overload being shed) is written
// as it grows; the store replaces the earlier, shorter record of it.
type OutageRecorder struct {
	record   func(ctx context.Context, from, to time.Time, source string) error
	every    time.Duration
	mergeGap time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending []outage
	written map[string]outage // the last window written per source
	kick    chan struct{}
}

type outage struct {
	source   string
	from, to time.Time
}

// NewOutageRecorder returns a recorder writing through record (the store's
// RecordOutage) at most once per every.
func NewOutageRecorder(record func(ctx context.Context, from, to time.Time, source string) error, every time.Duration, log *slog.Logger) *OutageRecorder {
	return &OutageRecorder{record: record, every: every, mergeGap: every, log: log, written: map[string]outage{}, kick: make(chan struct{}, 1)}
}

// Add queues the window [from, to] seen by source. It never blocks.
func (r *OutageRecorder) Add(source string, from, to time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	merged := false
	for i := len(r.pending) - 1; i >= 0; i-- {
		p := &r.pending[i]
		if p.source == source && !from.After(p.to.Add(r.mergeGap)) && !to.Before(p.from) {
			if from.Before(p.from) {
				p.from = from
			}
			if to.After(p.to) {
				p.to = to
			}
			merged = true
			break
		}
	}
	if w, ok := r.written[source]; !merged && ok && !from.After(w.to.Add(r.mergeGap)) && !to.Before(w.from) {
		// It continues the window written last: write that one again, longer.
		if w.from.Before(from) {
			from = w.from
		}
	}
	if !merged {
		if len(r.pending) >= maxPendingOutages {
			r.pending = r.pending[1:]
		}
		r.pending = append(r.pending, outage{source: source, from: from, to: to})
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run writes the queued windows until ctx ends, then once more.
func (r *OutageRecorder) Run(ctx context.Context) error {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), r.every)
			r.flush(fctx)
			cancel()
			return nil
		case <-r.kick:
		}
		if wait := r.every - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				continue
			case <-time.After(wait):
			}
		}
		last = time.Now()
		r.flush(ctx)
	}
}

// flush writes every queued window; those that fail stay queued (and the
// next Add or the retry below brings the loop back).
func (r *OutageRecorder) flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	var failed []outage
	for _, o := range batch {
		wctx, cancel := context.WithTimeout(ctx, r.every)
		err := r.record(wctx, o.from, o.to, o.source)
		cancel()
		if err != nil {
			r.log.Warn("cannot record the outage window yet; retrying", "source", o.source,
				"from", o.from, "to", o.to, "err", err)
			failed = append(failed, o)
			continue
		}
		r.mu.Lock()
		r.written[o.source] = o
		r.mu.Unlock()
	}
	if len(failed) == 0 {
		return
	}
	r.mu.Lock()
	// Later Adds may extend what failed: put the failed ones first, merged
	// on the next Add or flush.
	r.pending = append(failed, r.pending...)
	if len(r.pending) > maxPendingOutages {
		r.pending = r.pending[len(r.pending)-maxPendingOutages:]
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}
