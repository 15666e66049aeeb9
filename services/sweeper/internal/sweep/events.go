package sweep

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// subscribeLoop keeps a subscription to expiry events, reconnecting with
// backoff. Every (re)subscription asks for a full index scan, since events
// published while it was away are gone for good.
func (s *Service) subscribeLoop(ctx context.Context) {
	channel := s.st.ExpiredChannel()
	warned := false
	var failures int
	for ctx.Err() == nil {
		if err := s.enableNotifications(ctx); err != nil {
			s.m.keyspaceEvents.Set(0)
			if !warned && ctx.Err() == nil {
				warned = true
				s.log.Warn("keyspace notifications unavailable (CONFIG refused or unsupported): "+
					"working from the lease deadline index alone", "err", err)
			}
		} else {
			s.m.keyspaceEvents.Set(1)
		}
		err := s.receive(ctx, channel, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		failures++
		d := backoff(failures)
		s.fail(ctx, "subscribe", err)
		s.log.Warn("keyspace subscription lost; reconnecting", "err", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// backoff is the wait before reconnect attempt n (1-based): exponential from
// 100 ms to 5 s with jitter, so replicas do not reconnect in step.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 5*time.Second; i++ {
		d *= 2
	}
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// receive subscribes once and forwards lease expiries until the connection
// fails (returns the error) or ctx ends.
func (s *Service) receive(ctx context.Context, channel string, connected func()) error {
	for p := range s.st.Subscribe(ctx, channel) {
		switch {
		case p.Err != nil:
			return p.Err
		case p.Subscribed:
			connected()
			s.m.subscriptions.Inc()
			s.log.Debug("subscribed to expiry events", "channel", channel)
			// events published while we were not listening are lost:
			// reconcile from the index before trusting them again
			s.requestScan()
		default:
			// the id only says "a lease just ran out": the scan decides on
			// everything due at once, so a correlated loss is seen as one
			if _, ok := store.ExpiredLease(p.Payload); !ok {
				continue
			}
			s.m.eventsReceived.Inc()
			s.requestEventScan()
		}
	}
	return ctx.Err()
}

// enableNotifications merges "Ex" into notify-keyspace-events without
// dropping the flags already set, and says so when it changed the server.
func (s *Service) enableNotifications(ctx context.Context) error {
	was, now, err := s.st.EnableExpiryEvents(ctx)
	if err != nil {
		return err
	}
	if was != now {
		// a server-wide setting other programs may depend on: say it at warn,
		// with both values, so whoever owns this Redis can see and undo it
		s.log.Warn("changed this Redis server's notify-keyspace-events (server-wide, every client sees it) "+
			"to receive lease expiry events; set it in redis.conf to make this permanent, or CONFIG SET it back",
			"notify-keyspace-events", now, "was", was)
	}
	return nil
}
