// Package redistest starts a private redis-server for a test and stops it
// when the test ends, so tests never share state with each other or with a
// Redis that happens to run on the machine. Tests only: never import it from
// a service.
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
)

// Server is a running redis-server owned by one test.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// Start runs redis-server on a free port with extra config args (for example
// "--notify-keyspace-events", "Ex"), and returns a client to it. Both are
// closed by t.Cleanup. It fails the test when redis-server is not installed:
// `make test` installs it.
func Start(t testing.TB, args ...string) (*Server, *redis.Client) {
	t.Helper()
	srv, err := StartServer(t.TempDir(), args...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(srv.Stop)
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	return srv, rdb
}

// StartServer is Start for callers without a testing.TB (benchmark mains).
// The caller must Stop it.
func StartServer(dir string, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (make test installs it): %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		base := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log"),
		}
		srv, err := startProcess(bin, append(base, args...), port, dir)
		if err != nil {
			lastErr = err
			continue
		}
		return srv, nil
	}
	return nil, fmt.Errorf("redis-server did not start: %w", lastErr)
}

// startProcess runs a redis-server (or a sentinel) listening on port and
// waits until it answers; a server that does not is stopped again.
func startProcess(bin string, args []string, port int, dir string) (*Server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, dir: dir}
	if err := srv.waitReady(5 * time.Second); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

// Client returns a new client to the server.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, PoolSize: 64})
}

// URL is the server as a REDIS_URL.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart stops the server and starts a new, empty one on the same address
// (Redis keeps nothing on disk here): what a Redis restart looks like to clients.
func (s *Server) Restart(args ...string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	s.Stop()
	bin, _ := exec.LookPath("redis-server")
	base := []string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis-"+port+"-restart.log"),
	}
	cmd := exec.Command(bin, append(base, args...)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	return s.waitReady(5 * time.Second)
}

func (s *Server) waitReady(d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		// a server with requirepass answers too: with NOAUTH
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client returns a new client to the server at addr (a node of an HA set
// after its roles changed, say).
func Client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
}
