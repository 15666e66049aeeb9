package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// errHooksOff says HOOKS_URL is not set.
var errHooksOff = errors.New("ui: HOOKS_URL is not configured")

// HooksError is a non-2xx answer of the hooks service: its status and the
// detail of its problem body (never the request, which carries the key).
type HooksError struct {
	Status int
	Detail string
}

func (e *HooksError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("the hooks service answered %d", e.Status)
	}
	return fmt.Sprintf("the hooks service answered %d: %s", e.Status, e.Detail)
}

// hooksClient calls the hooks service's archive endpoints on the operator's
// behalf, with the operator's key.
type hooksClient struct {
	base string // "" = not configured
	http *http.Client
}

// hooksTimeout bounds every call to the hooks service.
const hooksTimeout = 5 * time.Second

func (h *hooksClient) do(ctx context.Context, method, path, key string, out any) error {
	if h.base == "" {
		return errHooksOff
	}
	ctx, cancel := context.WithTimeout(ctx, hooksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(h.base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("ui: hooks request: %w", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := h.http.Do(req)
	if err != nil {
		// The error names the URL (no key in it) and the cause.
		return fmt.Errorf("ui: hooks %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("ui: hooks %s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &p)
		return &HooksError{Status: res.StatusCode, Detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("ui: hooks %s %s: %w", method, path, err)
	}
	return nil
}

func (h *hooksClient) archived(ctx context.Context, key string) (wire.ArchivedList, error) {
	var l wire.ArchivedList
	err := h.do(ctx, http.MethodGet, "/deliveries/archived?size=100", key, &l)
	return l, err
}

func (h *hooksClient) replay(ctx context.Context, key, id string) error {
	return h.do(ctx, http.MethodPost, "/deliveries/archived/"+url.PathEscape(id)+"/retry", key, nil)
}

func (h *hooksClient) replayAll(ctx context.Context, key string) error {
	return h.do(ctx, http.MethodPost, "/deliveries/archived/retry", key, nil)
}
