// Package healthcheck is the probe behind every binary's `healthcheck`
// subcommand: distroless images have no curl, so each binary can check
// itself for a Docker HEALTHCHECK or a Kubernetes exec probe.
//
// It must stay free of dependencies beyond the standard library (the runner
// agent links it too) and must never print anything itself: the caller
// decides what goes to stderr, and nothing is printed on success.
package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Command is the first argument that turns a binary into its own probe.
const Command = "healthcheck"

// Timeout bounds a whole probe: connect, request and reply.
const Timeout = 2 * time.Second

// Get sends GET url and returns nil when the reply is 200 within Timeout.
// It does not follow redirects: a /health that redirects is not healthy.
func Get(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{
		// A fresh transport: no proxy from the environment, no idle connections kept.
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: status %d, want 200", url, resp.StatusCode)
	}
	return nil
}
