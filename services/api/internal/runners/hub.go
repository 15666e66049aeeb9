package runners

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// ErrTooManyWaiters refuses a long poll when the process holds its maximum.
var ErrTooManyWaiters = errors.New("too many long polls in progress")

// Hub wakes long polls when a task is dispatched or changes status. One Redis
// subscription per channel and API process (dispatch.lua and task_update.lua
// publish the runner id) fans out in-process to the waiters of that runner, so it works with any number
// of replicas. Messages are hints: a woken waiter re-reads the store, and
// every (re)subscription wakes all waiters, since messages published while
// the subscription was down are lost.
type Hub struct {
	sub      Subscriber
	channels []string
	max      int
	log      *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[*Waiter]struct{}
	n       int
}

// Waiter is one long poll. C receives a value when it should re-check.
type Waiter struct {
	C        chan struct{}
	runnerID string
	hub      *Hub
}

// Subscriber is the store's pub/sub door (*store.Store).
type Subscriber interface {
	Subscribe(ctx context.Context, channel string) <-chan store.Published
}

// NewHub returns a hub listening on channels for at most max concurrent
// waiters (0 = no limit).
func NewHub(sub Subscriber, channels []string, max int, log *slog.Logger) *Hub {
	return &Hub{sub: sub, channels: channels, max: max, log: log, waiters: map[string]map[*Waiter]struct{}{}}
}

// Wait registers a waiter for runnerID; the caller must Cancel it.
func (h *Hub) Wait(runnerID string) (*Waiter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.max > 0 && h.n >= h.max {
		return nil, ErrTooManyWaiters
	}
	w := &Waiter{C: make(chan struct{}, 1), runnerID: runnerID, hub: h}
	set := h.waiters[runnerID]
	if set == nil {
		set = map[*Waiter]struct{}{}
		h.waiters[runnerID] = set
	}
	set[w] = struct{}{}
	h.n++
	return w, nil
}

// Cancel unregisters w. It is safe to call twice.
func (w *Waiter) Cancel() {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.waiters[w.runnerID]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(h.waiters, w.runnerID)
	}
	h.n--
}

// Waiting returns the number of waiters.
func (h *Hub) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Notify wakes the waiters of runnerID.
func (h *Hub) Notify(runnerID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.waiters[runnerID] {
		wake(w)
	}
}

func (h *Hub) notifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.waiters {
		for w := range set {
			wake(w)
		}
	}
}

func wake(w *Waiter) {
	select {
	case w.C <- struct{}{}:
	default:
	}
}

// Run holds one subscription per channel until ctx ends, re-subscribing
// with jittered exponential backoff whenever Redis goes away.
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, ch := range h.channels {
		wg.Add(1)
		go func() { defer wg.Done(); h.run(ctx, ch) }()
	}
	wg.Wait()
	return nil
}

func (h *Hub) run(ctx context.Context, channel string) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		var err error
		for p := range h.sub.Subscribe(ctx, channel) {
			switch {
			case p.Err != nil:
				err = p.Err
			case p.Subscribed:
				backoff = minBackoff
				h.notifyAll()
			default:
				h.Notify(p.Payload)
			}
		}
		if ctx.Err() != nil {
			break
		}
		h.log.Warn("long-poll subscription lost; re-subscribing", "channel", channel, "err", err, "backoff", backoff)
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(sleep):
		}
		if backoff *= 2; backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}
