package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// The dev launcher runs every service on an embedded miniredis: the relay
// (streams, consumer groups, XAUTOCLAIM, XTRIM MINID) and asynq (its Lua
// scripts, retries, archive) must work there too.
func TestRunsOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	inst := start(t, testConfig(recv.URL), rdb, options{})
	registerRunners(t, s, "r", 3, time.Minute)
	for _, id := range []string{"r-0000", "r-0001", "r-0002"} {
		if _, err := s.Deregister(context.Background(), id, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return delivered(inst.metrics) == 3 }, "three deliveries after one retry each")
	hits, per := recv.snapshot()
	if len(hits) != 6 || len(per) != 3 {
		t.Fatalf("%d requests over %d ids, want 6 over 3", len(hits), len(per))
	}
	for _, h := range hits {
		if err := verify(testSecret, h); err != nil {
			t.Error(err)
		}
	}
	testkit.Eventually(t, 2*time.Second, func() bool { st := outboxStats(t, rdb); return st.Pending == 0 && st.Length == 0 }, "outbox drained")
	resp, err := http.Get("http://" + inst.addr + "/metrics")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	defer resp.Body.Close()
	// The backlog collector (XINFO GROUPS, XPENDING, asynq's queue stats)
	// reads fine on miniredis too.
	if body := mustRead(t, resp); !strings.Contains(body, "yggdrasil_hooks_backlog_scrape_ok 1") {
		t.Errorf("backlog collector failed on miniredis:\n%s", grepLines(body, "yggdrasil_hooks_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
