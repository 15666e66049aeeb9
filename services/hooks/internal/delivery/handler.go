package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
)

// maxResponseBody bounds how much of a receiver's answer is read (and
// discarded) so that the connection can be reused.
const maxResponseBody = 64 << 10

// UserAgent is sent with every delivery.
const UserAgent = "yggdrasil-hooks/1"

// Handler is the asynq handler that performs one delivery attempt.
type Handler struct {
	client  *http.Client
	signer  *Signer
	timeout time.Duration
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
}

// NewHandler returns a handler sending with a per-attempt timeout. Redirects
// are not followed: a 3xx is the receiver's answer (a permanent failure).
func NewHandler(signer *Signer, timeout time.Duration, concurrency int, m *metrics.Metrics, log *slog.Logger) *Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	tr.MaxIdleConns = 4 * concurrency
	return &Handler{
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		signer: signer, timeout: timeout, metrics: m, log: log, now: time.Now,
	}
}

// Close releases idle connections.
func (h *Handler) Close() { h.client.CloseIdleConnections() }

// ProcessTask implements asynq.Handler: one attempt to POST the event to one
// URL. nil means delivered; a *RetryableError is retried by asynq after
// RetryDelay; an error wrapping ErrPermanent is archived at once.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodePayload(t.Payload())
	if err != nil {
		h.log.Error("hooks: undecodable delivery task archived", "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	attempt := retried + 1

	start := h.now()
	status, hdr, sendErr := h.send(ctx, p, start)
	elapsed := h.now().Sub(start)
	h.metrics.Latency.Observe(elapsed.Seconds())

	var result error
	if sendErr != nil {
		result = &RetryableError{Err: sendErr}
	} else {
		result = Classify(status, hdr, h.now())
	}
	outcome := metrics.OutcomeDelivered
	var re *RetryableError
	switch {
	case result == nil:
	case errors.As(result, &re) && retried >= maxRetry:
		outcome = metrics.OutcomeExhausted
	case errors.As(result, &re):
		outcome = metrics.OutcomeRetry
	default:
		outcome = metrics.OutcomeFailed
	}
	h.metrics.Deliveries.WithLabelValues(outcome, metrics.StatusClass(status)).Inc()
	if outcome != metrics.OutcomeRetry {
		h.metrics.Attempts.WithLabelValues(outcome).Observe(float64(attempt))
	}
	log := h.log.With("webhook_id", p.WebhookID(), "type", p.EventType, "url", redactURL(p.URL),
		"attempt", attempt, "status", status, "ms", elapsed.Milliseconds())
	switch outcome {
	case metrics.OutcomeDelivered:
		if p.EventTimeMs > 0 {
			h.metrics.EventAge.Observe(h.now().Sub(time.UnixMilli(p.EventTimeMs)).Seconds())
		}
		log.Debug("hooks: delivered")
	case metrics.OutcomeRetry:
		log.Info("hooks: delivery failed, will retry", "err", result)
	default:
		log.Warn("hooks: delivery archived", "outcome", outcome, "err", result)
	}
	return result
}

// send makes one POST and returns the status and headers (status 0 and an
// error when no answer came).
func (h *Handler) send(ctx context.Context, p Payload, at time.Time) (int, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	body := []byte(p.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, p.WebhookID())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	if h.signer.Enabled() {
		sig, err := h.signer.Sign(p.WebhookID(), at, body)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set(HeaderSignature, sig)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// redactURL drops credentials and the query (which may carry tokens) from
// a URL before it is logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
