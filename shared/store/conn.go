package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

// Conn is a process's connection pool to the control plane's Redis. Every
// Store, OutboxReader and subscription of the process shares one; nothing
// outside this package holds a Redis client (make check fails the build when
// a package other than the store, the test kit and the hooks wiring that
// hands the client to asynq imports go-redis).
//
// In Sentinel mode the client asks the Sentinels for the primary on every
// new connection and drops its pooled connections when they announce a new
// one; a Conn also notices which server its connections reach (Server,
// ServerChanged), so that subscriptions follow the primary and the
// outage detection of a later change can see a master switch.
type Conn struct {
	rdb redis.UniversalClient
	db  int

	mu       sync.Mutex
	server   string        // address the last successful dial reached
	switched chan struct{} // closed, and replaced, when server changes
}

// ErrServerChanged ends a subscription whose connection may still reach a
// server that is no longer the one the pool talks to (a Sentinel failover
// demoted it): the caller re-subscribes, which reaches the new primary.
// Sentinel kills the pub/sub clients of the instances it reconfigures, but
// not of an old primary it cannot reach (a partition), which would keep a
// subscription open that hears no expiry ever again.
var ErrServerChanged = errors.New("store: the Redis server changed (failover)")

// Dial builds the process's client from cfg: a single node (REDIS_URL) or
// the primary behind Sentinels (REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME). It
// does not wait for Redis to answer: every caller already survives Redis
// being away. cfg is expected to be validated (config.Load...); the errors
// here never quote a URL or a password.
func Dial(cfg config.Redis) (*Conn, error) {
	return dial(cfg, func(*tuning) {})
}

// The client's failure detection. go-redis's defaults (a 5 s dial timeout,
// five dial attempts 100 ms apart, three command retries backing off up to
// 1 s) make the first command against a dead Redis fail only after about
// 1.7 s, which delays everything that reacts to the failure (the api's
// breaker and /admission, the sweeper's outage record). Here a refused dial
// fails the command within milliseconds, and a dial that hangs (a host that
// drops packets) within dialTimeout + one retry.
//
// Normal operation keeps its tolerance where it matters: a pooled
// connection the server closed (idle timeout, restart) is retried once on a
// fresh one, and 200 ms is far above a healthy dial on a LAN, TLS included
// (pooled connections are dialed rarely; a slow dial only delays that one
// command's retry, it never fails a request that the retry serves).
const (
	dialTimeout     = 200 * time.Millisecond
	dialAttempts    = 1 // go-redis DialerRetries: attempts per dial, not retries
	commandRetries  = 1
	minRetryBackoff = 8 * time.Millisecond
	maxRetryBackoff = 64 * time.Millisecond
)

// tuning is the failure detection of a client; Probe changes it.
type tuning struct {
	dialTimeout time.Duration
	maxRetries  int
}

func dial(cfg config.Redis, tune func(*tuning)) (*Conn, error) {
	tl, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	tn := tuning{dialTimeout: dialTimeout, maxRetries: commandRetries}
	tune(&tn)
	c := &Conn{switched: make(chan struct{})}
	if cfg.Sentinel() {
		fo := &redis.FailoverOptions{
			MasterName:       cfg.MasterName,
			SentinelAddrs:    cfg.SentinelAddrs,
			SentinelPassword: cfg.SentinelPassword,
			Username:         cfg.Username,
			Password:         cfg.Password,
			TLSConfig:        tl,
			DialTimeout:      tn.dialTimeout,
			MaxRetries:       tn.maxRetries,
			// DialerRetries and the retry backoffs stay go-redis's: with a
			// single dial attempt the failover client's pub/sub never
			// reached the promoted replica (the e2e Sentinel test caught it).
		}
		c.rdb = redis.NewFailoverClient(fo)
	} else {
		opts, err := redis.ParseURL(cfg.NodeURL())
		if err != nil {
			// The parse error may quote the URL, password included: say less.
			return nil, errors.New("store: REDIS_URL is not a valid Redis URL")
		}
		if cfg.Username != "" {
			opts.Username = cfg.Username
		}
		if cfg.Password != "" {
			opts.Password = cfg.Password
		}
		if tl != nil {
			if opts.TLSConfig != nil && opts.TLSConfig.ServerName != "" {
				tl.ServerName = opts.TLSConfig.ServerName
			}
			opts.TLSConfig = tl
		}
		// The URL's own dial_timeout / max_retries / *_retry_backoff, when
		// it sets them, win: an operator tuned them for their network.
		if opts.DialTimeout == 0 {
			opts.DialTimeout = tn.dialTimeout
		}
		if opts.MaxRetries == 0 {
			opts.MaxRetries = tn.maxRetries
		}
		if opts.DialerRetries == 0 {
			opts.DialerRetries = dialAttempts
		}
		if opts.MinRetryBackoff == 0 {
			opts.MinRetryBackoff = minRetryBackoff
		}
		if opts.MaxRetryBackoff == 0 {
			opts.MaxRetryBackoff = maxRetryBackoff
		}
		c.db = opts.DB
		c.rdb = redis.NewClient(opts)
	}
	c.rdb.AddHook(serverHook{c})
	return c, nil
}

// tlsConfig is the TLS of every connection (nodes and Sentinels), nil
// without TLS.
func tlsConfig(cfg config.Redis) (*tls.Config, error) {
	if !cfg.UseTLS() {
		return nil, nil
	}
	pool, err := cfg.CAPool()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// Wrap returns a Conn over a client made elsewhere (a test's private
// redis-server, the embedded dev Redis of `make run`).
func Wrap(rdb redis.UniversalClient) *Conn {
	c := &Conn{rdb: rdb, switched: make(chan struct{})}
	if cl, ok := rdb.(*redis.Client); ok {
		c.db = cl.Options().DB
	}
	rdb.AddHook(serverHook{c})
	return c
}

// serverHook records the server each new connection reaches.
type serverHook struct{ c *Conn }

func (h serverHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := next(ctx, network, addr)
		if err == nil {
			h.c.noteServer(nc.RemoteAddr().String())
		}
		return nc, err
	}
}

func (serverHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (serverHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (c *Conn) noteServer(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == c.server {
		return
	}
	if c.server != "" {
		close(c.switched)
		c.switched = make(chan struct{})
	}
	c.server = addr
}

// Server returns the address of the Redis the pool's newest connection
// reached ("" before the first): in Sentinel mode, the primary as of the last
// dial. A hook for outage detection: a change is a master switch.
func (c *Conn) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// ServerChanged returns a channel closed when a new connection reaches
// another server than Server does now.
func (c *Conn) ServerChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.switched
}

// RunID returns the run_id of the Redis that answers (INFO server): it
// changes with every restart and with every failover, so a changed run_id
// tells that the server's state may not be the one seen before.
func (c *Conn) RunID(ctx context.Context) (string, error) {
	info, err := c.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("store: info server: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("store: info server: no run_id")
}

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
	// Taken after Subscribe dialed: a switch from now on may leave the
	// subscription on a demoted primary, which publishes no expiry.
	switched := c.ServerChanged()
	go func() {
		defer close(out)
		defer ps.Close()
		// A blocked read watches neither ctx nor a master switch: closing
		// the subscription does.
		var moved atomic.Bool
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-switched:
				moved.Store(true)
				_ = ps.Close()
			case <-ctx.Done():
				_ = ps.Close()
			case <-done:
			}
		}()
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
				if moved.Load() {
					send(Published{Err: fmt.Errorf("store: subscription %s: %w", channel, ErrServerChanged)})
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
	return fmt.Sprintf("__keyevent@%d__:expired", c.db)
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

// Probe reports whether the Redis cfg names answers within about a second,
// without retrying: for choosing a Redis (`make run`), not for serving.
func Probe(ctx context.Context, cfg config.Redis) error {
	c, err := dial(cfg, func(t *tuning) { t.dialTimeout, t.maxRetries = 300*time.Millisecond, -1 })
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	return nil
}
