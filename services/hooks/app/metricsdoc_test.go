package app

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// The hooks service's metric table in docs/metrics.md is what its /metrics
// serves over real HTTP, both ways, after one delivered webhook.
func TestMetricsTableMatchesExposition(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	recv := newReceiver(t, nil)
	inst := start(t, testConfig(recv.URL+"/hook"), rdb, options{})
	registerRunners(t, s, "doc", 1, time.Minute)
	if _, err := s.Deregister(context.Background(), "doc-0000", 0, "maintenance"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return recv.count() == 1 }, "one delivery")

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(path string) string {
		res, err := hc.Get("http://" + inst.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	get("/health")
	served := testkit.Exposition(t, get("/metrics"))
	testkit.CompareMetrics(t, testkit.MetricsTable(t, filepath.Join("..", "..", "..", "docs", "metrics.md"), "hooks"), served)
}
