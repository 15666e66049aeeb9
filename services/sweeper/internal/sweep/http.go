package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// Handler serves /health, /ready, /metrics (behind METRICS_TOKEN when set),
// GET /quarantine and POST /quarantine/release; everything else is a
// problem+json 404 or 405 (problem.Mux). Its patterns are the sweeper's
// routes in openapi.yaml (TestRoutesAreInTheContract).
func (s *Service) Handler() *problem.Routes {
	mux := problem.NewRoutes()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /ready", s.ready)
	mux.Handle("GET /metrics", keyauth.RequireBearer(s.cfg.MetricsToken, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})))
	mux.HandleFunc("GET /quarantine", s.quarantineState)
	mux.HandleFunc("POST /quarantine/release", s.release)
	mux.Wrap(s.http.Wrap)
	return mux
}

func (s *Service) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HTTP.ReadyTimeout)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.TypeRedisUnavailable, "Redis does not answer"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// quarantineView is the JSON of GET /quarantine.
type quarantineView struct {
	Active      bool       `json:"active"`
	Since       *time.Time `json:"since,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Count       int64      `json:"count"`
	Quarantined int64      `json:"quarantined"`
	ExitedAt    *time.Time `json:"exitedAt,omitempty"`
	ExitReason  string     `json:"exitReason,omitempty"`
}

func (s *Service) quarantineState(w http.ResponseWriter, r *http.Request) {
	st, err := s.st.GetQuarantineState(r.Context())
	if err != nil {
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.TypeRedisUnavailable, "cannot read the quarantine state"))
		return
	}
	v := quarantineView{Active: st.Active, Reason: st.Reason, Count: st.Count, Quarantined: st.Quarantined, ExitReason: st.ExitReason}
	if !st.Since.IsZero() {
		v.Since = &st.Since
	}
	if !st.ExitedAt.IsZero() {
		v.ExitedAt = &st.ExitedAt
	}
	writeJSON(w, http.StatusOK, v)
}

// release is the operator's confirmation: the quarantine ends now and the
// runners still quarantined go offline on the next tick (started at once).
func (s *Service) release(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		if len(s.cfg.AdminAPIKeys) == 0 {
			problem.Write(w, problem.New(http.StatusForbidden, problem.TypeReleaseDisabled, "set ADMIN_API_KEYS to confirm a quarantine release in production"))
			return
		}
		problem.Write(w, problem.New(http.StatusUnauthorized, problem.TypeUnauthorized, "an operator key is required"))
		return
	}
	ex, err := s.st.ConfirmQuarantineRelease(r.Context())
	if errors.Is(err, store.ErrNoQuarantine) {
		problem.Write(w, problem.New(http.StatusConflict, problem.TypeNoQuarantine, "no quarantine is active"))
		return
	}
	if err != nil {
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.TypeRedisUnavailable, "cannot end the quarantine"))
		return
	}
	s.exited(ex)
	s.requestScan()
	writeJSON(w, http.StatusOK, map[string]any{"released": true, "reason": ex.Reason, "remaining": ex.Remaining})
}

// authorized: with ADMIN_API_KEYS set, a Bearer operator key is required;
// without keys the endpoint is open, except in production.
func (s *Service) authorized(r *http.Request) bool {
	if s.adminKeys.Empty() {
		return !s.cfg.Production()
	}
	tok, ok := keyauth.Bearer(r.Header.Get("Authorization"))
	return ok && s.adminKeys.Contains(tok)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
