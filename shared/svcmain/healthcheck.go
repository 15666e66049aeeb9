package svcmain

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/yggdrasil-cp/yggdrasil/shared/healthcheck"
)

// runHealthcheck is `<service> healthcheck`: it loads the configuration the
// service itself would load (same variables, same defaults, same
// validation), then GETs http://127.0.0.1:PORT/health. It returns the exit
// status: 0 on 200 within two seconds, printing nothing; 1 otherwise, with
// the reason on stderr. It never connects to Redis: /health is liveness,
// and a probe must not fail because Redis is down.
func runHealthcheck[C any](s Service[C], environ map[string]string, stderr io.Writer) int {
	if s.Port == nil {
		fmt.Fprintf(stderr, "%s healthcheck: this service has no HTTP port\n", s.Name)
		return 1
	}
	cfg, err := s.Load(environ)
	if err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", s.Name, err)
		return 1
	}
	port := s.Port(cfg)
	if port == 0 {
		fmt.Fprintf(stderr, "%s healthcheck: PORT is 0 (any free port): no fixed port to probe\n", s.Name)
		return 1
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/health"
	if err := healthcheck.Get(context.Background(), url); err != nil {
		fmt.Fprintf(stderr, "%s %v\n", s.Name, err)
		return 1
	}
	return 0
}
