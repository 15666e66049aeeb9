package app_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestRunServesAndShutsDown runs the service as main does and stops it with
// a long poll in flight: the poll is answered at once and Run returns nil.
func TestRunServesAndShutsDown(t *testing.T) {
	_, rdb := redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := config.DefaultAPI()
	cfg.Port = port
	run := testkit.Start(t, func(ctx context.Context) error { return app.Run(ctx, cfg, store.Wrap(rdb), logging.Discard()) })

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := client.New("http://127.0.0.1:"+strconv.Itoa(port), "", client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: tr}))
	testkit.Eventually(t, 5*time.Second, func() bool { return c.Health(context.Background()) == nil }, "health")
	reg, err := c.Register(context.Background(), wire.RegisterRunnerPayload{Name: "r", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		_, err := c.ListTasks(context.Background(), reg.ID, client.TaskQuery{Status: wire.TaskPending, Wait: 25 * time.Second})
		polled <- err
	}()
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	run.Cancel()
	select {
	case err := <-polled:
		if err != nil {
			t.Fatalf("long poll during shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll held the shutdown")
	}
	if err := run.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("shut down in %v", time.Since(t0))
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, rdb := redistest.Start(t)
	cfg := config.DefaultAPI()
	cfg.ExpectedRunnerVersion = ">>nonsense"
	if _, err := app.New(cfg, store.Wrap(rdb), logging.Discard()); err == nil {
		t.Fatal("bad EXPECTED_RUNNER_VERSION accepted")
	}
}
