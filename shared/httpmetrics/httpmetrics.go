// Package httpmetrics records the requests of a net/http server (the
// sweeper's and the hooks service's small admin servers) as the api records
// its own: http_requests_total{method,route,status} and
// http_request_duration_seconds{method,route}, with the route template of
// the ServeMux pattern that matched ("unmatched" when none did).
//
// It must never label a series with a raw path or any other value a client
// chooses: the route is a pattern of the code, the method is folded to the
// known ones.
package httpmetrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Unmatched is the route label of a request no pattern matched.
const Unmatched = "unmatched"

// Buckets are those of the api's http_request_duration_seconds, so that one
// dashboard panel reads every service.
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics are the two instruments.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New registers the instruments, named prefix + "http_...", on reg.
func New(reg prometheus.Registerer, prefix string) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "http_requests_total", Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: prefix + "http_request_duration_seconds", Help: "HTTP request duration by method and route template.",
			Buckets: Buckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Wrap records every request h serves. h must route with an
// http.ServeMux (directly or through problem.Mux) for the pattern to be
// known: the mux sets Request.Pattern on the request it is handed.
func (m *Metrics) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := Unmatched
		if r.Pattern != "" {
			route = r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path // "GET /metrics" -> "/metrics"
			}
		}
		method := foldMethod(r.Method)
		m.requests.WithLabelValues(method, route, strconv.Itoa(rec.status)).Inc()
		m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	})
}

func foldMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// recorder learns the status; Unwrap lets http.ResponseController reach
// the connection's Flusher and deadlines.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
