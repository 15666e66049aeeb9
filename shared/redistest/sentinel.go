package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// Sentinel timings of StartHA: a primary silent for DownAfter is subjectively
// down; with a quorum of two of three Sentinels it is failed over, and a
// failover that stalls is retried after FailoverTimeout.
const (
	DownAfter       = time.Second
	FailoverTimeout = 3 * time.Second
)

// HA is a primary, one replica of it and three Sentinels monitoring it under
// MasterName, all on free ports of 127.0.0.1, owned by one test.
type HA struct {
	MasterName string
	Primary    *Server
	Replica    *Server
	Sentinels  []*Server
}

// StartHA starts an HA set and waits until the Sentinels know the replica
// and each other, so that a failover can start as soon as the primary fails.
// args go to both data nodes (for example "--notify-keyspace-events", "Ex").
// Everything stops at t.Cleanup.
func StartHA(t testing.TB, masterName string, args ...string) *HA {
	t.Helper()
	h := &HA{MasterName: masterName}
	var err error
	if h.Primary, err = StartServer(dir(t, "primary"), args...); err != nil {
		t.Fatalf("redistest: primary: %v", err)
	}
	t.Cleanup(h.Primary.Stop)
	_, port, _ := net.SplitHostPort(h.Primary.Addr)
	if h.Replica, err = StartServer(dir(t, "replica"), append([]string{"--replicaof", "127.0.0.1", port}, args...)...); err != nil {
		t.Fatalf("redistest: replica: %v", err)
	}
	t.Cleanup(h.Replica.Stop)
	waitInfo(t, h.Replica.Addr, "replication", "master_link_status:up", "the replica in sync with the primary")

	for i := range 3 {
		s, err := startSentinel(dir(t, "sentinel"+strconv.Itoa(i)), masterName, h.Primary.Addr)
		if err != nil {
			t.Fatalf("redistest: sentinel %d: %v", i, err)
		}
		t.Cleanup(s.Stop)
		h.Sentinels = append(h.Sentinels, s)
	}
	for _, s := range h.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		testkit.EventuallyNil(t, 20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			replicas, err := c.Replicas(ctx, masterName).Result()
			if err != nil {
				return err
			}
			peers, err := c.Sentinels(ctx, masterName).Result()
			if err != nil {
				return err
			}
			if len(replicas) != 1 || len(peers) != len(h.Sentinels)-1 {
				return fmt.Errorf("sentinel %s knows %d replicas and %d other sentinels", s.Addr, len(replicas), len(peers))
			}
			return nil
		}, "sentinel %s to discover the replica and its peers", s.Addr)
		_ = c.Close()
	}
	return h
}

// SentinelAddrs is the Sentinels as a REDIS_SENTINEL_ADDRS value.
func (h *HA) SentinelAddrs() string {
	addrs := make([]string, len(h.Sentinels))
	for i, s := range h.Sentinels {
		addrs[i] = s.Addr
	}
	return strings.Join(addrs, ",")
}

// MasterAddr asks the first Sentinel that answers for the current primary.
func (h *HA) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range h.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		addr, err := c.GetMasterAddrByName(ctx, h.MasterName).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("redistest: no sentinel names the primary: %w", last)
}

// Failover asks a Sentinel for a failover without the primary failing (the
// old primary becomes a replica of the new one): the graceful switch of a
// maintenance.
func (h *HA) Failover(ctx context.Context) error {
	c := redis.NewSentinelClient(&redis.Options{Addr: h.Sentinels[0].Addr, MaxRetries: -1})
	defer c.Close()
	return c.Failover(ctx, h.MasterName).Err()
}

func dir(t testing.TB, name string) string {
	d := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return d
}

// startSentinel runs `redis-server <conf> --sentinel` (Debian ships no
// redis-sentinel binary) on a free port, with a config file it may rewrite.
func startSentinel(dir, masterName, primary string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (make test installs it): %w", err)
	}
	host, port, _ := net.SplitHostPort(primary)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(p)+".conf")
		text := strings.Join([]string{
			"port " + strconv.Itoa(p),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "sentinel-"+strconv.Itoa(p)+".log"),
			fmt.Sprintf("sentinel monitor %s %s %s 2", masterName, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", masterName, DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", masterName, FailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", masterName),
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		s, err := startProcess(bin, []string{conf, "--sentinel"}, p, dir)
		if err != nil {
			lastErr = err
			continue
		}
		return s, nil
	}
	return nil, fmt.Errorf("sentinel did not start: %w", lastErr)
}

// waitInfo waits until INFO section of the server at addr contains want.
func waitInfo(t testing.TB, addr, section, want, what string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := c.Info(ctx, section).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, want) {
			return fmt.Errorf("INFO %s lacks %q", section, want)
		}
		return nil
	}, "%s", what)
}
