package problem_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
)

func TestMuxAnswersWithProblems(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items/{id}/retry", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.PathValue("id"))) })
	h := problem.Mux(mux)
	for _, c := range []struct {
		method, path string
		status       int
		allow, body  string
	}{
		{"POST", "/items/a1/retry", 200, "", "a1"},
		{"GET", "/items/a1/retry", 405, "POST", ""},
		{"GET", "/nope", 404, "", ""},
		{"POST", "/items/../items/a1/retry", 404, "", ""},
		{"POST", "/items/./a1/retry", 404, "", ""},
		{"POST", "//items/a1/retry", 404, "", ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status || (c.status != 200 && rec.Header().Get("Content-Type") != problem.ContentType) {
			t.Errorf("%s %s = %d %s", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if c.allow != "" && rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q", c.method, c.path, rec.Header().Get("Allow"))
		}
		if c.body != "" && rec.Body.String() != c.body {
			t.Errorf("%s %s: body %q, want the path value %q", c.method, c.path, rec.Body.String(), c.body)
		}
	}
}
