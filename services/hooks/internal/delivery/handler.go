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
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

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
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	realms  *RealmCache // realm deliveries' secrets; nil: realm deliveries are archived
	// signedOnly archives a realm delivery whose realm has no secret
	// instead of sending it unsigned (production, as for the global one).
	signedOnly bool
}

// WithRealms signs realm deliveries (Payload.Realm) with the realm's secret
// read through realms. signedOnly archives a delivery of a realm without a
// secret instead of sending it unsigned.
func WithRealms(realms *RealmCache, signedOnly bool) Option {
	return func(h *Handler) { h.realms, h.signedOnly = realms, signedOnly }
}

// errNoRealmSecret archives a realm delivery that may not go unsigned.
var errNoRealmSecret = fmt.Errorf("%w: the realm has no webhook secret (NODE_ENV=production refuses unsigned webhooks)", ErrPermanent)

// Option changes how NewHandler builds the handler.
type Option func(*Handler)

// WithTracing makes attempt spans with tp and writes their context into
// each request with prop. The default is the process's global provider and
// propagator (OpenTelemetry's no-ops unless main installed shared/telemetry).
func WithTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) Option {
	return func(h *Handler) { h.tracer, h.prop = tp.Tracer(Scope), prop }
}

// NewHandler returns a handler sending with a per-attempt timeout. Redirects
// are not followed: a 3xx is the receiver's answer (a permanent failure).
func NewHandler(signer *Signer, timeout time.Duration, concurrency int, m *metrics.Metrics, log *slog.Logger, opts ...Option) *Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	tr.MaxIdleConns = 4 * concurrency
	h := &Handler{
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		signer: signer, timeout: timeout, metrics: m, log: log, now: time.Now,
		tracer: otel.GetTracerProvider().Tracer(Scope), prop: otel.GetTextMapPropagator(),
	}
	for _, o := range opts {
		o(h)
	}
	return h
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
	ctx, span := h.startSpan(ctx, p, attempt)

	start := h.now()
	signer, signErr := h.signerFor(ctx, p)
	status, hdr, sendErr := 0, http.Header(nil), signErr
	if signErr == nil {
		status, hdr, sendErr = h.send(ctx, p, signer, start)
	}
	elapsed := h.now().Sub(start)
	h.metrics.ObserveLatency(ctx, elapsed)

	var result error
	if errors.Is(sendErr, ErrPermanent) {
		result = sendErr
	} else if sendErr != nil {
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
	endSpan(span, status, sendErr, outcome)
	h.metrics.Deliveries.WithLabelValues(outcome, metrics.StatusClass(status)).Inc()
	if outcome != metrics.OutcomeRetry {
		h.metrics.Attempts.WithLabelValues(outcome).Observe(float64(attempt))
	}
	// logged with the attempt's context: the line carries its trace_id and span_id
	log := h.log.With("webhook_id", p.WebhookID(), "type", p.EventType, "runner_id", p.RunnerID, "realm", p.Realm, "url", redactURL(p.URL),
		"attempt", attempt, "status", status, "ms", elapsed.Milliseconds())
	switch outcome {
	case metrics.OutcomeDelivered:
		if p.EventTimeMs > 0 {
			h.metrics.EventAge.Observe(h.now().Sub(time.UnixMilli(p.EventTimeMs)).Seconds())
		}
		log.DebugContext(ctx, "hooks: delivered")
	case metrics.OutcomeRetry:
		log.InfoContext(ctx, "hooks: delivery failed, will retry", "err", result)
	default:
		log.WarnContext(ctx, "hooks: delivery archived", "outcome", outcome, "err", result)
	}
	return result
}

// signerFor is the signer of p's attempt: the global one, or its realm's
// (nil: unsigned). A store error is retried; a realm delivery that may not
// go unsigned is permanent.
func (h *Handler) signerFor(ctx context.Context, p Payload) (*Signer, error) {
	if p.Realm == "" {
		return h.signer, nil
	}
	if h.realms == nil {
		return nil, fmt.Errorf("%w: realm deliveries are not configured", ErrPermanent)
	}
	s, err := h.realms.signer(ctx, p.Realm)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read realm %s webhook secret: %w", p.Realm, err)
	case s == nil && h.signedOnly:
		return nil, errNoRealmSecret
	}
	return s, nil
}

// send makes one POST and returns the status and headers (status 0 and an
// error when no answer came).
func (h *Handler) send(ctx context.Context, p Payload, signer *Signer, at time.Time) (int, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	body := []byte(p.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		// The parse error quotes the URL: name the host only.
		return 0, nil, fmt.Errorf("build request for %s: invalid webhook URL", redactURL(p.URL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	// traceparent (and tracestate) of the attempt's span; the Standard
	// Webhooks signature covers id, timestamp and body, not these headers.
	h.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	req.Header.Set(HeaderID, p.WebhookID())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	if signer != nil && signer.Enabled() {
		sig, err := signer.Sign(p.WebhookID(), at, body)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set(HeaderSignature, sig)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, stripURL(err, p.URL)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// redactURL is what of a webhook URL may be logged, put in a span or an
// error: its scheme and host. Credentials, the query and the path may all
// carry a secret (Slack-style URLs hold theirs in the path).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host
}

// stripURL replaces the full URL that net/http puts in its errors
// (*url.Error: `Post "https://host/secret": ...`) with the redacted one,
// keeping the cause (timeouts stay recognisable with errors.Is/As).
func stripURL(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(raw), Err: ue.Err}
	}
	return err
}
