package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// withEvents starts redis-server with expiry events already on.
var withEvents = []string{"--notify-keyspace-events", "Ex"}

// testConfig is the sweeper configuration of the tests: a fast tick and
// mass-expiry protection off (100% can never be exceeded) unless a test
// turns it on.
func testConfig() config.Sweeper {
	cfg := config.DefaultSweeper()
	cfg.SweepIntervalMs = 20
	cfg.LeaseTTLMs = 300
	cfg.HeartbeatIntervalMs = 100 // heartbeatLoop beats every 80 ms
	cfg.MassExpiryPercent = 100
	cfg.TaskTimeoutGraceMs = 0
	return cfg
}

// startSweeper runs one sweeper replica until the test ends (or stop is called).
func startSweeper(t *testing.T, rdb redis.UniversalClient, cfg config.Sweeper) (*Service, func()) {
	t.Helper()
	svc, err := New(cfg, store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return svc, testkit.Serve(t, svc.Run)
}

func register(t testing.TB, st *store.Store, id string, ttl time.Duration) store.Lease {
	t.Helper()
	_, lease, err := st.Register(context.Background(), store.RegisterParams{
		ID: id, Name: "n-" + id, Version: "1.0.0", Realm: "eu", Capacity: 2, TokenHash: "h", LeaseTTL: ttl,
		ActsForAnyRunner: true, // the runner itself: re-registering a live one is allowed
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return lease
}

func count(t *testing.T, rdb *redis.Client, status wire.RunnerStatus) int64 {
	t.Helper()
	n, err := rdb.ZCard(context.Background(), store.StatusIndexKey(string(status))).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// outboxEvents counts the outbox events of type typ by runner id.
func outboxEvents(t *testing.T, rdb *redis.Client, typ string) map[string]int {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range msgs {
		if m.Values["type"] != typ {
			continue
		}
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil {
			t.Fatalf("outbox %s: %v", m.ID, err)
		}
		var d wire.RunnerEventData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("outbox %s: %v", m.ID, err)
		}
		out[d.Runner.ID]++
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// val reads a counter or gauge.
func val(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// runnerIDs returns n ids with a prefix.
func runnerIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return ids
}
