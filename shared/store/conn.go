package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Conn is a process's connection pool to the control plane's Redis. Every
// Store, OutboxReader and subscription of the process shares one; nothing
// outside this package holds a Redis client (make check fails the build when
// a package other than the store, the test kit and the hooks wiring that
// hands the client to asynq imports go-redis).
type Conn struct {
	rdb redis.UniversalClient
}

// Dial connects to the Redis at url (redis://, rediss:// or unix://). It does
// not wait for Redis to answer: every caller already survives Redis being away.
func Dial(url string) (*Conn, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The parse error may quote the URL, password included: say less.
		return nil, errors.New("store: REDIS_URL is not a valid Redis URL")
	}
	return &Conn{rdb: redis.NewClient(opts)}, nil
}

// Wrap returns a Conn over a client made elsewhere (a test's private
// redis-server, the embedded dev Redis of `make run`).
func Wrap(rdb redis.UniversalClient) *Conn { return &Conn{rdb: rdb} }

// Close closes the pool.
func (c *Conn) Close() error { return c.rdb.Close() }

// Redis returns the client itself, for the one caller that must hand it to a
// library that speaks Redis on its own: the hooks service's asynq client,
// server and inspector. Nothing else may use it.
func (c *Conn) Redis() redis.UniversalClient { return c.rdb }

// Ping checks that Redis answers.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Now returns Redis' clock, the one every deadline is measured against.
func (c *Conn) Now(ctx context.Context) (time.Time, error) {
	t, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("store: time: %w", err)
	}
	return t, nil
}

// Published is one thing a subscription delivers: Subscribed when the
// subscription is (again) in place, a Payload published on the channel, or
// the Err that ended the subscription, after which the channel is closed.
type Published struct {
	// Subscribed says the subscription is in place. It is the first value
	// of every subscription: whatever was published before is lost, so the
	// receiver reconciles from stored state before trusting messages again.
	Subscribed bool
	Payload    string
	Err        error
}

// subscriptionPing is how long a subscription waits for a message before it
// pings its connection, so that a silently dead connection is noticed.
const subscriptionPing = 15 * time.Second

// Subscribe subscribes to channel and delivers what is published on it until
// ctx ends (the channel is closed without an Err) or the connection fails
// (one Published with Err, then closed). Reconnecting is the caller's: each
// call is one subscription. Messages are hints; the store is the truth.
func (c *Conn) Subscribe(ctx context.Context, channel string) <-chan Published {
	out := make(chan Published, 64)
	ps := c.rdb.Subscribe(ctx, channel)
	go func() {
		defer close(out)
		defer ps.Close()
		// A blocked read does not watch ctx: closing the subscription does.
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		defer stop()
		send := func(p Published) bool {
			select {
			case out <- p:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			msg, err := ps.ReceiveTimeout(ctx, subscriptionPing)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if perr := ps.Ping(ctx); perr != nil {
						send(Published{Err: fmt.Errorf("store: ping subscription %s: %w", channel, perr)})
						return
					}
					continue
				}
				send(Published{Err: fmt.Errorf("store: subscription %s: %w", channel, err)})
				return
			}
			var p Published
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				p.Subscribed = true
			case *redis.Message:
				p.Payload = m.Payload
			default:
				continue
			}
			if !send(p) {
				return
			}
		}
	}()
	return out
}

// ExpiredChannel is the keyevent channel on which Redis announces expired
// keys of the database this Conn uses.
func (c *Conn) ExpiredChannel() string {
	db := 0
	if cl, ok := c.rdb.(*redis.Client); ok {
		db = cl.Options().DB
	}
	return fmt.Sprintf("__keyevent@%d__:expired", db)
}

// ExpiredLease returns the runner id of an expired-key event's payload when
// the key was a lease (ok false for any other key).
func ExpiredLease(payload string) (runnerID string, ok bool) {
	id, ok := strings.CutPrefix(payload, LeaseKeyPrefix)
	return id, ok && id != ""
}

// EnableExpiryEvents merges "Ex" into the server's notify-keyspace-events
// without dropping the flags already set. It returns the value before and
// after (equal when nothing had to change). A managed Redis may refuse
// CONFIG: the error says so, and the sweeper works from its deadline index.
func (c *Conn) EnableExpiryEvents(ctx context.Context) (was, now string, err error) {
	cur, err := c.rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return "", "", fmt.Errorf("store: config get notify-keyspace-events: %w", err)
	}
	flags, ok := cur["notify-keyspace-events"]
	if !ok {
		return "", "", errors.New("store: config get notify-keyspace-events: no such parameter")
	}
	merged := mergeKeyspaceFlags(flags)
	if merged == flags {
		return flags, flags, nil
	}
	if err := c.rdb.ConfigSet(ctx, "notify-keyspace-events", merged).Err(); err != nil {
		return flags, flags, fmt.Errorf("store: config set notify-keyspace-events %q: %w", merged, err)
	}
	return flags, merged, nil
}

// mergeKeyspaceFlags adds E (keyevent channel) and x (expired events) to a
// notify-keyspace-events value; "A" already includes x.
func mergeKeyspaceFlags(flags string) string {
	out := flags
	if !strings.Contains(out, "E") {
		out += "E"
	}
	if !strings.Contains(out, "x") && !strings.Contains(out, "A") {
		out += "x"
	}
	return out
}

// Probe reports whether a Redis answers at url within about half a second,
// without retrying: for choosing a Redis (`make run`), not for serving.
func Probe(ctx context.Context, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return errors.New("store: not a valid Redis URL")
	}
	opts.DialTimeout = 300 * time.Millisecond
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	return nil
}
