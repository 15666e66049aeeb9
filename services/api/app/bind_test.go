package app_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// otherAddress is an address of this machine that is not 127.0.0.1: a
// non-loopback interface address when there is one, else 127.0.0.2 (Linux
// answers all of 127/8 on lo, but a socket bound to 127.0.0.1 accepts only
// connections to 127.0.0.1, while one bound to 0.0.0.0 accepts both).
func otherAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return "127.0.0.2"
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dials reports whether a TCP connection to addr is accepted.
func dials(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestAuthOffListensOnLoopbackOnly: with no keys the api must not be reachable
// from the network, and its log names the address really bound; HOST=0.0.0.0
// opens it on every interface.
func TestAuthOffListensOnLoopbackOnly(t *testing.T) {
	_, rdb := redistest.Start(t)
	other := otherAddress(t)
	t.Logf("the other address of this machine: %s", other)
	for _, tc := range []struct {
		name      string
		host      string
		wantOther bool
		wantLog   []string // one of these, then the port
	}{
		{name: "default", host: "", wantOther: false, wantLog: []string{"addr=127.0.0.1:"}},
		// Go opens a dual-stack socket for the wildcard and reports it as [::]
		{name: "HOST=0.0.0.0", host: "0.0.0.0", wantOther: true, wantLog: []string{"addr=0.0.0.0:", "addr=[::]:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testkit.SyncBuffer
			cfg, err := config.LoadAPI(map[string]string{"HOST": tc.host, "PORT": strconv.Itoa(freePort(t))})
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(&logs, nil))
			run := testkit.Start(t, func(ctx context.Context) error { return app.Run(ctx, cfg, store.Wrap(rdb), log) })
			port := strconv.Itoa(cfg.Port)
			testkit.Eventually(t, 5*time.Second, func() bool { return dials("127.0.0.1:" + port) }, "the api on 127.0.0.1:%s", port)
			if got := dials(net.JoinHostPort(other, port)); got != tc.wantOther {
				t.Errorf("a connection to %s:%s accepted = %v, want %v", other, port, got, tc.wantOther)
			}
			logged := false
			for _, w := range tc.wantLog {
				logged = logged || strings.Contains(logs.String(), w+port+" ")
			}
			if !logged {
				t.Errorf("the start-up log does not say %q + %s:\n%s", tc.wantLog, port, logs.String())
			}
			if err := run.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
