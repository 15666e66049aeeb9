package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The sweeper (:3001) and the hooks service (:3002) have operator endpoints
// of their own: make a Client with their base URL and an operator key.

// QuarantineState is GET /quarantine on the sweeper.
type QuarantineState struct {
	Active      bool       `json:"active"`
	Since       *time.Time `json:"since,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Count       int64      `json:"count"`
	Quarantined int64      `json:"quarantined"`
	ExitedAt    *time.Time `json:"exitedAt,omitempty"`
	ExitReason  string     `json:"exitReason,omitempty"`
}

// QuarantineRelease is the answer of POST /quarantine/release.
type QuarantineRelease struct {
	Released  bool   `json:"released"`
	Reason    string `json:"reason"`
	Remaining int64  `json:"remaining"`
}

// Quarantine reads the sweeper's correlated-loss quarantine (sweeper URL).
func (c *Client) Quarantine(ctx context.Context) (QuarantineState, error) {
	var out QuarantineState
	_, err := c.do(ctx, http.MethodGet, "/quarantine", nil, &out, nil)
	return out, err
}

// ReleaseQuarantine confirms the loss (sweeper URL, operator key): the
// runners still quarantined go offline now. No active quarantine is a 409.
func (c *Client) ReleaseQuarantine(ctx context.Context) (QuarantineRelease, error) {
	var out QuarantineRelease
	_, err := c.do(ctx, http.MethodPost, "/quarantine/release", nil, &out, nil)
	return out, err
}

// ArchivedDelivery and ArchivedList are the hooks archive's wire types.
type (
	ArchivedDelivery = wire.ArchivedDelivery
	ArchivedList     = wire.ArchivedList
)

// ArchivedDeliveries lists archived deliveries (hooks URL, operator key);
// page from 1, size up to 1000 (0: the service's defaults, 1 and 50).
func (c *Client) ArchivedDeliveries(ctx context.Context, page, size int) (ArchivedList, error) {
	q := url.Values{}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if size > 0 {
		q.Set("size", strconv.Itoa(size))
	}
	var out ArchivedList
	_, err := c.do(ctx, http.MethodGet, "/deliveries/archived"+query(q), nil, &out, nil)
	return out, err
}

// ReplayDelivery queues one archived delivery again (hooks URL, operator
// key), with the same webhook-id.
func (c *Client) ReplayDelivery(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/deliveries/archived/"+url.PathEscape(id)+"/retry", nil, nil, nil)
	return err
}

// ReplayAllDeliveries queues every archived delivery again and returns how
// many (hooks URL, operator key).
func (c *Client) ReplayAllDeliveries(ctx context.Context) (int, error) {
	var out struct {
		Retried int `json:"retried"`
	}
	_, err := c.do(ctx, http.MethodPost, "/deliveries/archived/retry", nil, &out, nil)
	return out.Retried, err
}
