package httpapi

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestShedRoutesMatchTheRunnerRoutesOnly: the limiter sees the scheduled
// runner writes, matched on the raw request, and nothing else.
func TestShedRoutesMatchTheRunnerRoutesOnly(t *testing.T) {
	h := &Handlers{}
	for _, c := range []struct {
		method, path, want string
	}{
		{"POST", "/runners/heartbeat", "/runners/heartbeat"},
		{"POST", "/runners/register", "/runners/register"},
		{"POST", "/runners/task/t-1/patch", "/runners/task/:tid/patch"},
		{"PATCH", "/runners/r-1/tasks/t-1", "/runners/:id/tasks/:tid"},
		{"GET", "/runners/heartbeat", ""},
		{"POST", "/runners/heartbeat/", ""},
		{"POST", "/runners/offline", ""},
		{"POST", "/runners/update", ""},
		{"POST", "/runners/r-1/tasks", ""},
		{"PATCH", "/runners/r-1/tasks/", ""},
		{"PATCH", "/runners//tasks/t-1", ""},
		{"PATCH", "/runners/r-1/tasks/t-1/x", ""},
		{"POST", "/runners/task//patch", ""},
		{"GET", "/ready", ""},
		{"POST", "", ""},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(c.method)
		ctx.Request.SetRequestURI(c.path)
		got := ""
		if r := h.shedRouteOf(&ctx); r != nil {
			got = r.template
		}
		if got != c.want {
			t.Errorf("%s %s: shed route %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
