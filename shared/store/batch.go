package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// batcher sends the calls of one script made by concurrent requests in
// shared pipelines, so that a burst of heartbeats costs Redis a few round
// trips instead of one each. Every call stays one EVALSHA, atomic on its
// own: a pipeline only shares the trip.
//
// It runs no goroutine of its own. At most lanes pipelines are in flight;
// a call that finds a free lane sends at once (no waiting for company when
// the store is idle), and a call that finds every lane busy queues. When a
// pipeline returns, its lane passes to the first queued call, which sends
// everything queued behind it, up to max calls: the batch is whatever
// arrived while the last pipeline was away, so it grows with the load and
// costs no timer.
type batcher struct {
	script *redis.Script
	max    int // calls per pipeline; 1 or less: every call on its own
	lanes  int // pipelines in flight at once

	mu       sync.Mutex
	queue    []*batchCall
	inflight int
}

type batchCall struct {
	ctx  context.Context
	keys []string
	args []any
	res  []any
	err  error
	// wake says true when the call was answered, false when its caller
	// now holds a lane and sends the next pipeline.
	wake chan bool
}

func newBatcher(script *redis.Script, max, lanes int) *batcher {
	if lanes < 1 {
		lanes = 1
	}
	return &batcher{script: script, max: max, lanes: lanes}
}

// run calls the script with keys and args, alone or in a shared pipeline.
// A call whose context carries a recording span goes alone, so that its
// trace shows its own script span.
func (b *batcher) run(ctx context.Context, s *Store, keys []string, args []any) ([]any, error) {
	if b.max <= 1 || trace.SpanFromContext(ctx).IsRecording() {
		return b.script.Run(ctx, s.rdb, keys, args...).Slice()
	}
	c := &batchCall{ctx: ctx, keys: keys, args: args, wake: make(chan bool, 1)}
	b.mu.Lock()
	if b.inflight < b.lanes {
		// With a free lane the queue is empty: a returning pipeline hands
		// its lane to the queue before it frees one.
		b.inflight++
		b.mu.Unlock()
	} else {
		b.queue = append(b.queue, c)
		b.mu.Unlock()
		if answered := <-c.wake; answered {
			return c.res, c.err
		}
	}
	b.send(s, c)
	return c.res, c.err
}

// send runs lead and what queued behind it in one pipeline on lead's lane,
// answers them, then passes the lane on.
func (b *batcher) send(s *Store, lead *batchCall) {
	b.mu.Lock()
	n := min(len(b.queue), b.max-1)
	batch := make([]*batchCall, 0, n+1)
	batch = append(append(batch, lead), b.queue[:n]...)
	clear(b.queue[:n])
	b.queue = b.queue[n:]
	b.mu.Unlock()

	if len(batch) == 1 {
		// Alone (the store is idle): a plain call, which also fails
		// faster than a pipeline when Redis is away (fewer dial retries).
		lead.res, lead.err = b.script.Run(lead.ctx, s.rdb, lead.keys, lead.args...).Slice()
		b.release()
		return
	}
	calls := make([]scriptCall, 0, len(batch))
	live := make([]*batchCall, 0, len(batch))
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			continue
		}
		calls = append(calls, scriptCall{keys: c.keys, args: c.args})
		live = append(live, c)
	}
	// The pipeline outlives no caller's cancellation by more than the
	// client's own read and write timeouts.
	cmds := s.runPipelined(context.WithoutCancel(lead.ctx), b.script, calls)
	for i, c := range live {
		c.res, c.err = cmds[i].Slice()
	}
	for _, c := range batch[1:] {
		c.wake <- true
	}
	b.release()
}

// release passes the caller's lane to the first queued call, or frees it.
func (b *batcher) release() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	next := b.queue[0]
	b.queue[0] = nil
	b.queue = b.queue[1:]
	b.mu.Unlock()
	next.wake <- false
}
