// Package admin serves the hooks service's HTTP surface: /health, /ready,
// /metrics, and the operator endpoints that list and replay archived
// deliveries through the asynq Inspector.
//
// Handlers stay thin: they parse, call the Inspector, and hand errors to
// writeError, the one place that maps errors to status codes. It must never
// deliver webhooks or touch the outbox.
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/delivery"
	"github.com/yggdrasil-cp/yggdrasil/shared/httpmetrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Sentinel errors mapped to status codes by writeError.
var (
	errUnauthorized = errors.New("missing or invalid bearer token")
	errDisabled     = errors.New("operator endpoints are disabled: NODE_ENV=production and no ADMIN_API_KEYS")
	errNotArchived  = errors.New("the delivery is not archived")
	errBadRequest   = errors.New("bad request")
)

// Config is what the server needs.
type Config struct {
	AdminKeys  []string
	Production bool
	Ready      func() error
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	Registry     *prometheus.Registry
	// HTTP, when set, records every request by route template.
	HTTP      *httpmetrics.Metrics
	Inspector *asynq.Inspector
	Log       *slog.Logger
}

type server struct {
	cfg  Config
	keys keyauth.KeySet
}

// Handler returns the HTTP handler. Its patterns are the hooks service's
// routes in openapi.yaml (TestRoutesAreInTheContract).
func Handler(cfg Config) *problem.Routes {
	s := &server{cfg: cfg, keys: keyauth.NewKeySet(cfg.AdminKeys)}
	mux := problem.NewRoutes()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /ready", s.ready)
	mux.Handle("GET /metrics", keyauth.RequireBearer(cfg.MetricsToken, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry, EnableOpenMetrics: true})))
	mux.HandleFunc("GET /deliveries/archived", s.admin(s.listArchived))
	mux.HandleFunc("POST /deliveries/archived/retry", s.admin(s.retryAll))
	mux.HandleFunc("POST /deliveries/archived/{id}/retry", s.admin(s.retryOne))
	if cfg.HTTP != nil {
		mux.Wrap(cfg.HTTP.Wrap)
	}
	return mux
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	if err := s.cfg.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// admin wraps an operator endpoint with the bearer-key check. Keys are
// compared as SHA-256 digests in constant time, so neither the content nor
// the length of a key leaks through timing.
func (s *server) admin(next func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r); err != nil {
			s.writeError(w, err)
			return
		}
		if err := next(w, r); err != nil {
			s.writeError(w, err)
		}
	}
}

func (s *server) authorize(r *http.Request) error {
	if s.keys.Empty() {
		if s.cfg.Production {
			return errDisabled
		}
		return nil
	}
	if tok, ok := keyauth.Bearer(r.Header.Get("Authorization")); !ok || !s.keys.Contains(tok) {
		return errUnauthorized
	}
	return nil
}

func (s *server) listArchived(w http.ResponseWriter, r *http.Request) error {
	page, size := 1, 50
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errBadRequest
		}
		page = n
	}
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errBadRequest
		}
		size = n
	}
	out := wire.ArchivedList{Items: []wire.ArchivedDelivery{}, Page: page, Size: size}
	queues, err := s.cfg.Inspector.Queues()
	if err != nil {
		return err
	}
	if !slices.Contains(queues, delivery.Queue) { // no task was ever enqueued
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	qi, err := s.cfg.Inspector.GetQueueInfo(delivery.Queue)
	if err != nil {
		return err
	}
	out.Total = qi.Archived
	tasks, err := s.cfg.Inspector.ListArchivedTasks(delivery.Queue, asynq.Page(page), asynq.PageSize(size))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		d := wire.ArchivedDelivery{ID: t.ID, Attempts: t.Retried + 1, LastError: t.LastErr, LastFailedAt: t.LastFailedAt}
		if p, err := delivery.DecodePayload(t.Payload); err == nil {
			d.WebhookID, d.EventType, d.URL = p.WebhookID(), p.EventType, p.URL
		}
		out.Items = append(out.Items, d)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) retryOne(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	info, err := s.cfg.Inspector.GetTaskInfo(delivery.Queue, id)
	if err != nil {
		return err
	}
	if info.State != asynq.TaskStateArchived {
		return errNotArchived
	}
	if err := s.cfg.Inspector.RunTask(delivery.Queue, id); err != nil {
		return err
	}
	s.cfg.Log.Info("hooks: archived delivery replayed by an operator", "task", id)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "state": "pending"})
	return nil
}

func (s *server) retryAll(w http.ResponseWriter, _ *http.Request) error {
	// asynq's "queue does not exist" is not errors.Is ErrQueueNotFound, so
	// ask first, as listArchived does: no queue yet is nothing to replay.
	queues, err := s.cfg.Inspector.Queues()
	if err != nil {
		return err
	}
	if !slices.Contains(queues, delivery.Queue) {
		writeJSON(w, http.StatusAccepted, map[string]int{"retried": 0})
		return nil
	}
	n, err := s.cfg.Inspector.RunAllArchivedTasks(delivery.Queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		return err
	}
	s.cfg.Log.Info("hooks: every archived delivery replayed by an operator", "count", n)
	writeJSON(w, http.StatusAccepted, map[string]int{"retried": n})
	return nil
}

// writeError is the one place errors become status codes. Unknown errors are
// logged and answered 500 without their text (it may come from Redis).
func (s *server) writeError(w http.ResponseWriter, err error) {
	var p problem.Problem
	switch {
	case errors.Is(err, errUnauthorized):
		p = problem.New(http.StatusUnauthorized, problem.TypeUnauthorized, err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer realm="yggdrasil-hooks"`)
	case errors.Is(err, errDisabled):
		p = problem.New(http.StatusForbidden, problem.TypeAdminDisabled, err.Error())
	case errors.Is(err, errBadRequest):
		p = problem.New(http.StatusBadRequest, problem.TypeMalformedRequest, "page must be >= 1 and size within 1..1000")
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		p = problem.New(http.StatusNotFound, problem.TypeDeliveryNotFound, "no such delivery")
	case errors.Is(err, errNotArchived):
		p = problem.New(http.StatusConflict, problem.TypeNotArchived, err.Error())
	default:
		s.cfg.Log.Error("hooks admin: request failed", "err", err)
		p = problem.New(http.StatusInternalServerError, problem.TypeInternal, "internal error")
	}
	problem.Write(w, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
