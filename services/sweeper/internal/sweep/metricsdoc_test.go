package sweep

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The sweeper's metric table in docs/metrics.md is what its /metrics
// serves over real HTTP, both ways, after it has swept one expired lease
// and answered a request.
func TestMetricsTableMatchesExposition(t *testing.T) {
	_, rdb := redistest.Start(t, withEvents...)
	cfg := testConfig()
	svc, err := New(cfg, store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, func(ctx context.Context) error { return svc.Serve(ctx, ln) })
	register(t, store.New(store.Wrap(rdb), store.Options{}), "doc-1", 100*time.Millisecond)
	testkit.Eventually(t, 10*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 1 }, "the lease never expired")

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(path string) string {
		res, err := hc.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	get("/health")
	served := testkit.Exposition(t, get("/metrics"))
	testkit.CompareMetrics(t, testkit.MetricsTable(t, filepath.Join("..", "..", "..", "..", "docs", "metrics.md"), "sweeper"), served)
}
