package problem

import (
	"net/http"
	"slices"
	"strings"
)

// Mux wraps a net/http ServeMux so that what the mux itself answers is
// problem+json too: a path no pattern matches is a 404 problem, a method no
// pattern of the path takes is a 405 problem with the mux's Allow header,
// and a path that is not canonical (with "..", "." or "//" segments) is a
// 404 problem instead of the mux's 301/307 redirect to the cleaned path (a
// redirect that would let a crafted path reach a route it does not name).
func Mux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonical(r.URL.Path) {
			Write(w, New(http.StatusNotFound, TypeNotFound, "no such route"))
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // not h: ServeHTTP sets the path values ({id})
			return
		}
		// The mux's own answer: learn its status and Allow without sending
		// its text body.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			Write(w, New(http.StatusMethodNotAllowed, TypeMethodNotAllowed, "this route does not accept this method"))
			return
		}
		Write(w, New(http.StatusNotFound, TypeNotFound, "no such route"))
	})
}

// canonical reports whether p has no empty, "." or ".." segment (a trailing
// slash is allowed).
func canonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}

// Routes is a ServeMux that remembers its patterns and answers, through
// Mux, what the mux itself answers as problems. A service's tests hold its
// patterns to the contract (openapi.yaml) with Patterns.
type Routes struct {
	mux      *http.ServeMux
	h        http.Handler
	patterns []string
}

// NewRoutes is an empty Routes.
func NewRoutes() *Routes {
	m := http.NewServeMux()
	return &Routes{mux: m, h: Mux(m)}
}

// Handle registers h for pattern ("GET /items/{id}", as http.ServeMux).
func (r *Routes) Handle(pattern string, h http.Handler) {
	r.mux.Handle(pattern, h)
	r.patterns = append(r.patterns, pattern)
}

// HandleFunc registers f for pattern.
func (r *Routes) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(f))
}

// Wrap puts middleware (request metrics, say) around everything Routes
// serves, the problem answers included.
func (r *Routes) Wrap(mw func(http.Handler) http.Handler) { r.h = mw(r.h) }

// Patterns lists the registered patterns in registration order.
func (r *Routes) Patterns() []string { return slices.Clone(r.patterns) }

// ServeHTTP serves req as Mux does.
func (r *Routes) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.h.ServeHTTP(w, req) }
