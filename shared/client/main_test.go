package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
)

// The examples and the integration tests of this package run against a
// real bin/api (built from the workspace) on a private redis-server.
var (
	apiURL      string // the api's base URL, e.g. http://127.0.0.1:3000
	apiKey      = "example-runner-key-0123456789"
	operatorKey = "example-operator-key-0123456789"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "yggdrasil-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "client test:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "api")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/yggdrasil-cp/yggdrasil/services/api").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "client test: the examples run against bin/api, which does not build (run them inside the workspace): %v\n%s", err, out)
		return 1
	}
	srv, err := redistest.StartServer(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client test:", err)
		return 1
	}
	defer srv.Stop()
	port, err := freePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client test:", err)
		return 1
	}
	apiURL = "http://127.0.0.1:" + strconv.Itoa(port)
	log, err := os.Create(filepath.Join(dir, "api.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client test:", err)
		return 1
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LOG_FORMAT=simple", "REDIS_URL=" + srv.URL(),
		"PORT=" + strconv.Itoa(port), "API_KEYS=" + apiKey, "ADMIN_API_KEYS=" + operatorKey, "LONG_POLL_MAX_MS=30000"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "client test: start bin/api:", err)
		return 1
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	c := client.New(apiURL, "")
	deadline := time.Now().Add(20 * time.Second)
	for c.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			fmt.Fprintf(os.Stderr, "client test: bin/api not ready after 20 s:\n%s", out)
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
	code := m.Run()
	if code != 0 {
		out, _ := os.ReadFile(log.Name())
		fmt.Fprintf(os.Stderr, "---- bin/api ----\n%s", out)
	}
	return code
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
