package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
)

// errOverloaded refuses a runner request the limiter could not admit in
// time.
var errOverloaded = errors.New("overloaded: no request slot within the queue budget")

// shedRoute is a route the limiter admits, matched on the raw request
// before fiber sees it.
type shedRoute struct {
	method   string
	template string // the route as registered (metrics label)
	match    func(path []byte) bool
}

// shedRoutes are the runner routes under admission control: the ones a
// fleet sends on a schedule, whose queueing past a lease is what overload
// costs. Reads, operator routes and the probes are never shed.
var shedRoutes = []shedRoute{
	{fiber.MethodPost, "/runners/heartbeat", exactly("/runners/heartbeat")},
	{fiber.MethodPost, "/runners/register", exactly("/runners/register")},
	{fiber.MethodPost, "/runners/task/:tid/patch", segments("runners", "task", "", "patch")},
	{fiber.MethodPatch, "/runners/:id/tasks/:tid", segments("runners", "", "tasks", "")},
}

func exactly(p string) func([]byte) bool {
	return func(path []byte) bool { return string(path) == p }
}

// segments matches a path of exactly these segments, "" standing for any
// non-empty one.
func segments(want ...string) func([]byte) bool {
	return func(path []byte) bool {
		if len(path) == 0 || path[0] != '/' {
			return false
		}
		rest := path[1:]
		for i, w := range want {
			seg := rest
			j := bytes.IndexByte(rest, '/')
			if j >= 0 {
				seg, rest = rest[:j], rest[j+1:]
			} else {
				rest = nil
			}
			if len(seg) == 0 || (w != "" && string(seg) != w) || (j < 0) != (i == len(want)-1) {
				return false
			}
		}
		return true
	}
}

func (h *Handlers) shedRouteOf(ctx *fasthttp.RequestCtx) *shedRoute {
	m, path := ctx.Method(), ctx.Path()
	for i := range shedRoutes {
		r := &shedRoutes[i]
		if string(m) == r.method && r.match(path) {
			return r
		}
	}
	return nil
}

// shedEarly puts the admission controller in front of fiber itself: a
// runner request waits at most the queue budget for a slot, and one it
// cannot admit is answered at once, before routing, authentication, body
// decoding, tracing or any Redis call, with a body built once (the problem
// Classify makes of errOverloaded) and a Retry-After jittered over
// [retryMin, retryMax]. Under overload the refusals are most of the
// traffic: every microsecond they cost comes out of the requests served.
// The slot is held until fiber has answered the admitted request.
func (h *Handlers) shedEarly(app *fiber.App) {
	if h.limiter == nil {
		return
	}
	p, _, _ := Classify(errOverloaded)
	body, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("httpapi: the overload problem does not encode: %v", err)) // a constant: caught by any test
	}
	srv := app.Server()
	next := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		r := h.shedRouteOf(ctx)
		if r == nil {
			next(ctx)
			return
		}
		start := time.Now()
		release, ok := h.limiter.Acquire(ctx)
		if ok {
			defer release()
			next(ctx)
			return
		}
		ctx.Response.Reset()
		ctx.SetStatusCode(fiber.StatusServiceUnavailable)
		ctx.Response.Header.SetContentType(problem.ContentType)
		ctx.Response.Header.Set(fiber.HeaderRetryAfter, strconv.Itoa(h.retryAfterSeconds()))
		ctx.SetBody(body)
		h.metrics.ObserveRequest(context.Background(), r.method, r.template, fiber.StatusServiceUnavailable, time.Since(start))
	}
}

// retryAfterSeconds is a whole number of seconds drawn uniformly from
// [retryMin, retryMax], so that refused runners come back spread over the
// range instead of in step.
func (h *Handlers) retryAfterSeconds() int {
	lo := max(1, int(h.retryMin/time.Second))
	hi := max(lo, int(h.retryMax/time.Second))
	return lo + rand.IntN(hi-lo+1)
}

// metricsAuth guards /metrics with METRICS_TOKEN when one is set.
func (h *Handlers) metricsAuth(c *fiber.Ctx) error {
	if h.metricsKeys.Empty() {
		return c.Next()
	}
	cred, ok := keyauth.Bearer(c.Get(fiber.HeaderAuthorization))
	if !ok || !h.metricsKeys.Contains(cred) {
		return auth.ErrUnauthenticated
	}
	return c.Next()
}

// drainMax bounds what limitBody reads and discards of a body over the limit
// so that the 413 reaches the client (closing a connection with unread data
// resets it, and the client never sees the answer). Past it the connection
// is closed anyway.
func drainMax(limit int) int64 { return max(8<<20, 4*int64(limit)) }

// limitBody enforces the body limit itself. The server streams bodies over
// the limit (and chunked ones) instead of failing the connection, so this
// answers them with a 413 problem after reading and discarding what the
// client sends (up to drainMax), and buffers a chunked body that fits.
func (h *Handlers) limitBody(c *fiber.Ctx) error {
	stream := c.Context().RequestBodyStream()
	if stream == nil {
		return c.Next() // the whole body, within the limit, is read already
	}
	if n := c.Request().Header.ContentLength(); n > h.bodyLimit {
		return h.tooLarge(c, stream)
	}
	body, err := io.ReadAll(io.LimitReader(stream, int64(h.bodyLimit)+1))
	if err != nil {
		return &BadRequestError{Detail: "the request body could not be read"}
	}
	if len(body) > h.bodyLimit {
		return h.tooLarge(c, stream)
	}
	c.Request().SetBody(body)
	return c.Next()
}

func (h *Handlers) tooLarge(c *fiber.Ctx, stream io.Reader) error {
	n, _ := io.Copy(io.Discard, io.LimitReader(stream, drainMax(h.bodyLimit)))
	if n >= drainMax(h.bodyLimit) {
		c.Set(fiber.HeaderConnection, "close")
	}
	return fiber.ErrRequestEntityTooLarge
}

// unknownMethodsAre405 makes a request with a method fiber does not know
// (BREW) take the path of a known one no route accepts: fiber answers such
// methods with a bare 400 before any middleware runs, while TRACE reaches
// the router, which answers 405 with Allow (404 on an unknown path) through
// the ErrorHandler, as for any method a route does not take.
func unknownMethodsAre405(app *fiber.App) {
	srv := app.Server()
	next := srv.Handler
	known := app.Config().RequestMethods
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if !knownMethod(known, ctx.Method()) {
			ctx.Request.Header.SetMethod(fiber.MethodTrace)
		}
		next(ctx)
	}
}

func knownMethod(known []string, m []byte) bool {
	for _, k := range known {
		if string(m) == k {
			return true
		}
	}
	return false
}
