package ui

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Topics of the console's event stream. The browser refreshes the parts of
// the page that listen to a topic; an event's runner id narrows it.
const (
	// TopicFleet: a runner registered, went offline, unreachable or came back
	// (an outbox event).
	TopicFleet = "fleet"
	// TopicTasks: a task was dispatched to a runner or changed status.
	TopicTasks = "tasks"
	// TopicResync: a subscription was (re)made and events may have been
	// missed: refresh everything.
	TopicResync = "resync"
)

// Event is one hint on the stream: something about RunnerID ("" = any) changed.
type Event struct {
	Topic    string
	RunnerID string
}

// Source is what the feed reads: the store's pub/sub and its outbox
// (*store.Store).
type Source interface {
	Subscribe(ctx context.Context, channel string) <-chan store.Published
	TailOutbox(ctx context.Context, after string, count int, block time.Duration) ([]store.OutboxEntry, string, error)
	OutboxLastID(ctx context.Context) (string, error)
}

// ErrTooManyStreams refuses an event stream beyond the feed's maximum.
var ErrTooManyStreams = errors.New("ui: too many console event streams")

// Feed fans the store's change hints out to the console's open event
// streams: one subscription to the dispatch channel (the one that wakes long
// polls), one to the task events channel, and one plain XREAD tail of the
// outbox for lifecycle events, shared by every stream of the process.
// Events are hints: a page that receives one re-reads the store.
type Feed struct {
	src Source
	max int
	log *slog.Logger

	mu      sync.Mutex
	streams map[*Stream]struct{}
}

// Stream is one open event stream. C is buffered; when it is full the
// newest events are dropped, which costs nothing: the browser re-reads
// whole regions, and the next event refreshes them.
type Stream struct {
	C    chan Event
	feed *Feed
}

// NewFeed returns a feed holding at most max streams.
func NewFeed(src Source, max int, log *slog.Logger) *Feed {
	return &Feed{src: src, max: max, log: log, streams: map[*Stream]struct{}{}}
}

// Open opens a stream; the caller must Close it.
func (f *Feed) Open() (*Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.streams) >= f.max {
		return nil, ErrTooManyStreams
	}
	s := &Stream{C: make(chan Event, 16), feed: f}
	f.streams[s] = struct{}{}
	return s, nil
}

// Close unregisters s; it is safe to call twice.
func (s *Stream) Close() {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	delete(s.feed.streams, s)
}

// Streams is the number of open streams.
func (f *Feed) Streams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

func (f *Feed) publish(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.streams {
		select {
		case s.C <- e:
		default:
		}
	}
}

// Run feeds the streams until ctx ends, re-subscribing with jittered
// backoff whenever Redis goes away.
func (f *Feed) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); f.subscribe(ctx, store.DispatchChannel(), TopicTasks) }()
	go func() { defer wg.Done(); f.subscribe(ctx, store.TaskEventsChannel(), TopicTasks) }()
	go func() { defer wg.Done(); f.tail(ctx) }()
	wg.Wait()
	return nil
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// tailBlock bounds one XREAD, and so how long Run takes to return.
	tailBlock = time.Second
)

func (f *Feed) subscribe(ctx context.Context, channel, topic string) {
	backoff := minBackoff
	for ctx.Err() == nil {
		var err error
		for p := range f.src.Subscribe(ctx, channel) {
			switch {
			case p.Err != nil:
				err = p.Err
			case p.Subscribed:
				backoff = minBackoff
				f.publish(Event{Topic: TopicResync})
			default:
				f.publish(Event{Topic: topic, RunnerID: p.Payload})
			}
		}
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("console: subscription lost; re-subscribing", "channel", channel, "err", err, "backoff", backoff)
		backoff = pause(ctx, backoff)
	}
}

func (f *Feed) tail(ctx context.Context) {
	backoff := minBackoff
	after := ""
	for ctx.Err() == nil {
		if after == "" {
			id, err := f.src.OutboxLastID(ctx)
			if err != nil {
				if ctx.Err() == nil {
					f.log.Warn("console: outbox tail failed; retrying", "err", err, "backoff", backoff)
					backoff = pause(ctx, backoff)
				}
				continue
			}
			after = id
			f.publish(Event{Topic: TopicResync})
		}
		entries, next, err := f.src.TailOutbox(ctx, after, 100, tailBlock)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("console: outbox tail failed; retrying", "err", err, "backoff", backoff)
				after = "" // resync from the newest entry: what came meanwhile is covered by the resync
				backoff = pause(ctx, backoff)
			}
			continue
		}
		backoff = minBackoff
		after = next
		for _, e := range entries {
			f.publish(Event{Topic: TopicFleet, RunnerID: eventRunner(e)})
		}
	}
}

// eventRunner is the runner id of an outbox entry ("" when it has none).
func eventRunner(e store.OutboxEntry) string {
	ev, err := store.DecodeEvent(e)
	if err != nil {
		return ""
	}
	var d wire.RunnerEventData
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	return d.Runner.ID
}

// pause sleeps a jittered backoff (or until ctx ends) and returns the next one.
func pause(ctx context.Context, backoff time.Duration) time.Duration {
	t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(backoff*2, maxBackoff)
}
