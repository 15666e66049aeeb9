package httpapi

import (
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/runners"
	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
)

// errOverloaded refuses a runner request the limiter could not admit in
// time.
var errOverloaded = errors.New("overloaded: no request slot within the queue budget")

// localShed marks a request the limiter refused, so the request log writes
// it at debug level: under overload one line per refusal would cost what
// the refusal saves. The limiter counts them, and the api logs each
// overload window once.
const localShed = "ygg.shed"

// shed is the admission controller in front of the runner routes: it waits
// at most the queue budget for a request slot, else answers 503 at once,
// before authentication or any Redis call, with a Retry-After jittered
// between 1 s and RetryAfterMax so that refused runners do not come back
// in step.
func (h *Handlers) shed(c *fiber.Ctx) error {
	if h.limiter == nil {
		return c.Next()
	}
	release, ok := h.limiter.Acquire(c.UserContext())
	if !ok {
		c.Locals(localShed, true)
		return &runners.RetryError{After: h.retryAfterJitter(), Err: errOverloaded}
	}
	defer release()
	return c.Next()
}

func (h *Handlers) retryAfterJitter() time.Duration {
	maxS := int(h.retryAfterMax / time.Second)
	if maxS <= 1 {
		return time.Second
	}
	return time.Duration(1+rand.IntN(maxS)) * time.Second
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
