package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// pingEvery is how long the subscriber waits for a message before it pings
// the connection, so that a silently dead connection is noticed.
const pingEvery = 15 * time.Second

// expiredChannel is the keyevent channel of expirations in the client's database.
func expiredChannel(rdb redis.UniversalClient) string {
	db := 0
	if c, ok := rdb.(*redis.Client); ok {
		db = c.Options().DB
	}
	return fmt.Sprintf("__keyevent@%d__:expired", db)
}

// subscribeLoop keeps a subscription to expiry events, reconnecting with
// backoff. Every (re)subscription asks for a full index scan, since events
// published while it was away are gone for good.
func (s *Service) subscribeLoop(ctx context.Context) {
	channel := expiredChannel(s.rdb)
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
	ps := s.rdb.Subscribe(ctx, channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if perr := ps.Ping(ctx); perr != nil {
					return fmt.Errorf("ping subscription: %w", perr)
				}
				continue
			}
			return fmt.Errorf("receive expiry events: %w", err)
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				connected()
				s.m.subscriptions.Inc()
				s.log.Debug("subscribed to expiry events", "channel", m.Channel)
				// events published while we were not listening are lost:
				// reconcile from the index before trusting them again
				s.requestScan()
			}
		case *redis.Message:
			id, ok := strings.CutPrefix(m.Payload, store.LeaseKeyPrefix)
			// the id only says "a lease just ran out": the scan decides on
			// everything due at once, so a correlated loss is seen as one
			if !ok {
				continue
			}
			if id == "" {
				continue
			}
			s.m.eventsReceived.Inc()
			s.requestEventScan()
		}
	}
}

// enableNotifications merges "Ex" into notify-keyspace-events without
// dropping the flags already set.
func (s *Service) enableNotifications(ctx context.Context) error {
	cur, err := s.rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return fmt.Errorf("config get notify-keyspace-events: %w", err)
	}
	flags, ok := cur["notify-keyspace-events"]
	if !ok {
		return errors.New("config get notify-keyspace-events: no such parameter")
	}
	merged := mergeFlags(flags)
	if merged == flags {
		return nil
	}
	if err := s.rdb.ConfigSet(ctx, "notify-keyspace-events", merged).Err(); err != nil {
		return fmt.Errorf("config set notify-keyspace-events %q: %w", merged, err)
	}
	s.log.Info("enabled keyspace expiry events", "notify-keyspace-events", merged, "was", flags)
	return nil
}

// mergeFlags adds E (keyevent channel) and x (expired events) to a
// notify-keyspace-events value; "A" already includes x.
func mergeFlags(flags string) string {
	out := flags
	if !strings.Contains(out, "E") {
		out += "E"
	}
	if !strings.Contains(out, "x") && !strings.Contains(out, "A") {
		out += "x"
	}
	return out
}
