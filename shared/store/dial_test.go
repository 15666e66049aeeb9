package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// TestDialSingleNode: REDIS_PASSWORD and REDIS_USERNAME override the URL's,
// the URL's database names the expiry channel, and Probe tells a Redis that
// answers from one that does not.
func TestDialSingleNode(t *testing.T) {
	const password = "dial-test-password"
	srv, _ := redistest.Start(t, "--requirepass", password)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good := config.Redis{URL: "redis://" + srv.Addr + "/3", Password: password}
	conn, err := store.Dial(good)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping with REDIS_PASSWORD: %v", err)
	}
	if got := conn.ExpiredChannel(); got != "__keyevent@3__:expired" {
		t.Errorf("ExpiredChannel = %q, want database 3's", got)
	}
	if got := conn.Server(); got != srv.Addr {
		t.Errorf("Server = %q, want %s", got, srv.Addr)
	}
	if id, err := conn.RunID(ctx); err != nil || len(id) != 40 {
		t.Errorf("RunID = %q, %v", id, err)
	}
	if err := store.Probe(ctx, good); err != nil {
		t.Errorf("Probe of a Redis that answers: %v", err)
	}
	wrong := config.Redis{URL: "redis://:" + password + "@" + srv.Addr + "/0", Password: "not-the-password"}
	if err := store.Probe(ctx, wrong); err == nil {
		t.Error("REDIS_PASSWORD did not override the URL's password")
	}
	if err := store.Probe(ctx, config.Redis{URL: "redis://127.0.0.1:1/0"}); err == nil {
		t.Error("Probe of a closed port succeeded")
	}
	if _, err := store.Dial(config.Redis{URL: "rediss://h:1", TLSCAFile: t.TempDir() + "/missing.pem"}); err == nil ||
		!strings.Contains(err.Error(), "REDIS_TLS_CA_FILE") {
		t.Errorf("Dial with a CA file that does not load: %v", err)
	}
}

// TestDialSentinelFollowsFailover: in Sentinel mode the Conn reaches the
// primary, and after a failover (here the graceful one of a maintenance, in
// which the old primary lives on as a replica and keeps subscriptions open)
// it reaches the new primary, reports the switch, ends the subscription held
// on the old one with ErrServerChanged, and a new subscription hears what is
// published on the new primary.
func TestDialSentinelFollowsFailover(t *testing.T) {
	t.Parallel()
	ha := redistest.StartHA(t, "ygg-store", "--notify-keyspace-events", "Ex")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	conn, err := store.Dial(config.Redis{SentinelAddrs: strings.Split(ha.SentinelAddrs(), ","), MasterName: ha.MasterName})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := conn.Server(); got != ha.Primary.Addr {
		t.Fatalf("Server = %q, want the primary %s", got, ha.Primary.Addr)
	}
	if got := conn.ExpiredChannel(); got != "__keyevent@0__:expired" {
		t.Errorf("ExpiredChannel = %q", got)
	}
	firstRun, err := conn.RunID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub := conn.Subscribe(ctx, "dial-test")
	if p := <-sub; !p.Subscribed {
		t.Fatalf("first value %+v, want Subscribed", p)
	}
	switched := conn.ServerChanged()

	if err := ha.Failover(ctx); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	testkit.EventuallyNil(t, 20*time.Second, func() error {
		// every command is a chance to dial, and a dial after the switch
		// reaches the new primary
		if err := conn.Ping(ctx); err != nil {
			return err
		}
		if got := conn.Server(); got != ha.Replica.Addr {
			return errors.New("still on " + got)
		}
		return nil
	}, "the Conn on the promoted replica %s", ha.Replica.Addr)
	select {
	case <-switched:
	default:
		t.Fatal("ServerChanged not closed after the switch")
	}
	select {
	case p := <-sub:
		if !errors.Is(p.Err, store.ErrServerChanged) {
			t.Fatalf("old subscription delivered %+v, want ErrServerChanged", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription on the demoted primary did not end")
	}
	if id, err := conn.RunID(ctx); err != nil || id == firstRun {
		t.Errorf("RunID after the failover = %q (%v), want another than %q", id, err, firstRun)
	}

	sub = conn.Subscribe(ctx, "dial-test")
	if p := <-sub; !p.Subscribed {
		t.Fatalf("first value of the new subscription %+v", p)
	}
	newPrimary := redistest.Client(ha.Replica.Addr)
	defer newPrimary.Close()
	if err := newPrimary.Publish(ctx, "dial-test", "after").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-sub:
		if p.Payload != "after" {
			t.Fatalf("new subscription got %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new subscription heard nothing from the new primary")
	}
}

// TestDialNoticesDeadRedisQuickly: once Redis dies, the first command fails
// within 250 ms (go-redis's own defaults took about 1.7 s: five dial
// attempts per retry, three retries), and so does one to a port nobody
// listens on; a connection the server closed is retried once, so the first
// command after a restart succeeds.
func TestDialNoticesDeadRedisQuickly(t *testing.T) {
	srv, _ := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := store.Dial(config.Redis{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Errorf("first ping over a pooled connection the restarted server closed: %v (want one retry on a fresh one)", err)
	}
	srv.Stop()
	failsFast := func(what string, c *store.Conn) {
		t.Helper()
		start := time.Now()
		err := c.Ping(ctx)
		if took := time.Since(start); err == nil || took > 250*time.Millisecond {
			t.Errorf("%s: ping = %v after %s, want an error within 250ms", what, err, took.Round(time.Millisecond))
		}
	}
	failsFast("Redis stopped", conn)
	failsFast("Redis stopped, second command", conn)
	closed, err := store.Dial(config.Redis{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	failsFast("closed port", closed)
}
