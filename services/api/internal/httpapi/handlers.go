// Package httpapi is the API's HTTP port on fiber: routes, authentication
// checks, body decoding, the request log, metrics and tracing middleware, and
// the one ErrorHandler that turns errors into RFC 9457 problem+json answers.
//
// Handlers are thin: parse, check who is calling, call one method of the
// runners service, return its error. It must never hold business rules nor
// talk to Redis itself.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/openapi"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/overload"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/runners"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Handlers holds what the routes need.
type Handlers struct {
	svc     *runners.Service
	auth    *auth.Authenticator
	metrics *metrics.Metrics
	log     *slog.Logger
	tracer  trace.Tracer // nil: tracing off
	prop    propagation.TextMapPropagator

	limiter            *overload.Limiter // nil: no admission control
	retryMin, retryMax time.Duration
	stretched          time.Duration  // heartbeat interval handed out while shedding (0: none)
	metricsKeys        keyauth.KeySet // empty: /metrics open
	bodyLimit          int
	readyTimeout       time.Duration
}

// Options configures the fiber app.
type Options struct {
	BodyLimit    int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// TracerProvider, when set, gives every request a server span; nil is
	// tracing off. Propagator (default W3C trace context + baggage) reads the
	// caller's trace from the request headers.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Limiter, when set, admits the runner routes (heartbeat, register,
	// task updates); a request it refuses gets 503 with a Retry-After drawn
	// from [RetryAfterMin, RetryAfterMax] (whole seconds, at least 1).
	Limiter                      *overload.Limiter
	RetryAfterMin, RetryAfterMax time.Duration
	// StretchedInterval, when set, replaces the heartbeat interval in the
	// replies to heartbeats served while the limiter sheds (within the
	// last second), so that the fleet offers less.
	StretchedInterval time.Duration
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// ReadyTimeout bounds /ready's PING.
	ReadyTimeout time.Duration
}

// NewApp builds the fiber app with every route.
func NewApp(svc *runners.Service, a *auth.Authenticator, m *metrics.Metrics, log *slog.Logger, o Options) *fiber.App {
	h := &Handlers{svc: svc, auth: a, metrics: m, log: log, prop: o.Propagator,
		limiter: o.Limiter, retryMin: o.RetryAfterMin, retryMax: o.RetryAfterMax, stretched: o.StretchedInterval, bodyLimit: o.BodyLimit, readyTimeout: o.ReadyTimeout}
	if o.MetricsToken != "" {
		h.metricsKeys = keyauth.NewKeySet([]string{o.MetricsToken})
	}
	if o.TracerProvider != nil {
		h.tracer = o.TracerProvider.Tracer(ScopeAPI)
		if h.prop == nil {
			h.prop = telemetry.Propagator()
		}
	}
	app := fiber.New(fiber.Config{
		AppName:               "yggdrasil-api",
		DisableStartupMessage: true,
		// Immutable: strings taken from the context (params, headers,
		// queries) are copies, so none outlives fiber's reused buffers.
		Immutable:    true,
		UnescapePath: true,
		BodyLimit:    o.BodyLimit,
		// Bodies over the limit are streamed to limitBody, which answers
		// 413 after discarding them: fasthttp would close the connection
		// with the body unread, and the client would see a reset instead.
		StreamRequestBody: true,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorHandler:      ErrorHandler(log),
		// go-json encodes replies (c.JSON) in a fraction of encoding/json's
		// time, with the same output for the wire types.
		JSONEncoder: gojson.Marshal,
	})
	unknownMethodsAre405(app)
	h.shedEarly(app)
	app.Use(h.observe)
	app.Use(recover.New())
	app.Use(h.limitBody)

	app.Get("/", h.index)
	app.Get("/health", h.health)
	app.Get("/ready", h.ready)
	app.Get("/metrics", h.metricsAuth, adaptor.HTTPHandler(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})))
	app.Get("/openapi.json", h.openAPI)
	app.Get("/admission", h.admission)
	app.Post("/version-check/:version", h.versionCheck)

	app.Get("/runners", h.listRunners)
	app.Get("/api/runners", h.listRunners)
	// The runner routes below that a fleet sends on a schedule (register,
	// heartbeat, the task updates) pass the admission controller first:
	// shedRoutes, matched before fiber (shedEarly).
	app.Post("/runners/register", h.register)
	app.Post("/runners/heartbeat", h.heartbeat)
	app.Post("/runners/update", h.update)
	app.Post("/runners/offline", h.offline)
	app.Post("/runners/task/:tid/patch", h.patchTaskByID)
	app.Get("/runners/:id", h.getRunner)
	app.Delete("/runners/:id", h.deleteRunner)
	app.Get("/runners/:id/tasks", h.listTasks)
	app.Post("/runners/:id/tasks", h.dispatch)
	app.Get("/runners/:id/tasks/:tid", h.getTask)
	app.Patch("/runners/:id/tasks/:tid", h.patchTask)
	app.Get("/tasks", h.listAllTasks)
	app.Post("/runners/:id/request-update", h.requestUpdate)

	app.Post("/realms", h.createRealm)
	app.Get("/realms", h.listRealms)
	app.Get("/realms/:name", h.getRealm)
	app.Patch("/realms/:name", h.patchRealm)
	app.Post("/realms/:name/drain", h.transitionRealm(wire.RealmDraining))
	app.Post("/realms/:name/activate", h.transitionRealm(wire.RealmActive))
	app.Post("/realms/:name/close", h.transitionRealm(wire.RealmClosed))
	app.Delete("/realms/:name", h.deleteRealm)
	app.Post("/realms/:name/keys", h.issueRealmKey)
	app.Get("/realms/:name/keys", h.listRealmKeys)
	app.Delete("/realms/:name/keys/:kid", h.revokeRealmKey)
	return app
}

// bodyForRunner decodes a body that names its runner in runnerId (the
// token's own runner when left out) and checks that the caller acts for it;
// operatorToo lets an operator key act for any runner.
func bodyForRunner[T any](h *Handlers, c *fiber.Ctx, runnerID func(*T) *string, operatorToo bool) (T, error) {
	var body T
	p, err := h.authenticated(c)
	if err != nil {
		return body, err
	}
	if err := Decode(c.Body(), &body); err != nil {
		return body, err
	}
	id := runnerID(&body)
	if *id == "" && p.Role == auth.RoleRunner {
		*id = p.RunnerID
	}
	return body, h.actsFor(c, p, *id, operatorToo)
}

// reply answers 200 with out as JSON, or hands err to the ErrorHandler.
func reply[T any](c *fiber.Ctx, out T, err error) error {
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handlers) health(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (h *Handlers) ready(c *fiber.Ctx) error {
	if err := h.svc.Ready(c.UserContext(), h.readyTimeout); err != nil {
		return errors.Join(errNotReady, err)
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// openAPI serves the contract (openapi.yaml) as JSON, to anyone: it holds
// no secret.
func (h *Handlers) openAPI(c *fiber.Ctx) error {
	doc, err := openapi.JSON()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(doc)
}

func (h *Handlers) admission(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	realm, err := h.realmQuery(c, p)
	if err != nil {
		return err
	}
	if realm == "" {
		return c.JSON(h.svc.Admission(c.UserContext()))
	}
	out, err := h.svc.RealmAdmission(c.UserContext(), realm)
	return reply(c, out, err)
}

func (h *Handlers) versionCheck(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	realm, err := h.realmQuery(c, p)
	if err != nil {
		return err
	}
	out, err := h.svc.RealmVersionCheck(c.UserContext(), realm, c.Params("version"))
	return reply(c, out, err)
}

// realmQuery is the realm a request is about: its `realm` query value, a
// realm-scoped key's own realm when it names none; another realm than the
// key's is ErrRealmNotFound (as if it did not exist), a value that is no
// realm name a 422.
func (h *Handlers) realmQuery(c *fiber.Ctx, p auth.Principal) (string, error) {
	q := c.Query("realm")
	if q == "" {
		return p.Realm, nil
	}
	if !p.Sees(q) {
		return "", store.ErrRealmNotFound
	}
	if err := validate.CheckRealm("realm", q); err != nil {
		return "", err
	}
	return q, nil
}

// operatorRealm authenticates an operator listing and returns its realm
// filter. The realm is checked first: another realm is a 404 whatever the
// key's role.
func (h *Handlers) operatorRealm(c *fiber.Ctx) (string, error) {
	p, err := h.authenticated(c)
	if err != nil {
		return "", err
	}
	realm, err := h.realmQuery(c, p)
	if err != nil {
		return "", err
	}
	if !p.IsOperator() {
		return "", auth.ErrForbidden
	}
	return realm, nil
}

func (h *Handlers) listRunners(c *fiber.Ctx) error {
	realm, err := h.operatorRealm(c)
	if err != nil {
		return err
	}
	out, err := h.svc.ListRunners(c.UserContext(), runners.RunnerQuery{
		Status: c.Query("status"), Realm: realm, Cursor: c.Query("cursor"), Limit: c.Query("limit"),
	})
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handlers) register(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	if !p.CanRegister() {
		return auth.ErrForbidden
	}
	var body wire.RegisterRunnerPayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	c.Locals(localRunner, body.RunnerID)
	if !p.MayRegister(body.RunnerID) {
		return auth.ErrForbidden
	}
	out, err := h.svc.Register(c.UserContext(), body, p.Claim(body.RunnerID), p)
	if err != nil {
		return err
	}
	c.Locals(localRunner, out.ID)
	return c.Status(fiber.StatusCreated).JSON(out)
}

// heartbeat checks a runner token inside the heartbeat's own script call
// (one Redis round trip): the principal stays Deferred until then. Every
// answer that comes before the script (bad body, another runner's id,
// invalid fields) waits for the token to be verified, so a wrong token is
// a 401 whatever else is wrong, as on every other route.
func (h *Handlers) heartbeat(c *fiber.Ctx) error {
	p, err := h.authenticatedDeferred(c)
	if err != nil {
		return err
	}
	var body wire.HeartbeatPayload
	if err := Decode(c.Body(), &body); err != nil {
		return h.settle(c, p, err)
	}
	if body.RunnerID == "" && p.Role == auth.RoleRunner {
		body.RunnerID = p.RunnerID
	}
	if err := h.actsFor(c, p, body.RunnerID, false); err != nil {
		return h.settle(c, p, err)
	}
	out, err := h.svc.Heartbeat(c.UserContext(), body, p.Claim(body.RunnerID))
	if verr := (*validate.Error)(nil); errors.As(err, &verr) {
		// Refused before the script ran. A store failure is answered as
		// it is (503): a lookup would fail the same way, as it did when
		// the token was looked up first.
		return h.settle(c, p, err)
	}
	if err == nil && h.limiter != nil && h.stretched > 0 && h.limiter.Shedding(time.Second) {
		out.HeartbeatIntervalMs = h.stretched.Milliseconds()
	}
	return reply(c, out, err)
}

// settle answers err for a Deferred principal only once its token is
// verified: a wrong one is answered 401 instead.
func (h *Handlers) settle(c *fiber.Ctx, p auth.Principal, err error) error {
	if !p.Deferred() {
		return err
	}
	if _, verr := h.auth.Verify(c.UserContext(), p); verr != nil {
		return verr
	}
	return err
}

func (h *Handlers) update(c *fiber.Ctx) error {
	body, err := bodyForRunner(h, c, func(b *wire.UpdateRunnerPayload) *string { return &b.RunnerID }, true)
	if err != nil {
		return err
	}
	out, err := h.svc.UpdateEndpoint(c.UserContext(), body)
	return reply(c, out, err)
}

func (h *Handlers) offline(c *fiber.Ctx) error {
	body, err := bodyForRunner(h, c, func(b *wire.OfflinePayload) *string { return &b.RunnerID }, true)
	if err != nil {
		return err
	}
	out, err := h.svc.Offline(c.UserContext(), body)
	return reply(c, out, err)
}

func (h *Handlers) getRunner(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.runnerOrOperator(c, id); err != nil {
		return err
	}
	out, err := h.svc.GetRunner(c.UserContext(), id)
	return reply(c, out, err)
}

func (h *Handlers) deleteRunner(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.operatorOn(c, id); err != nil {
		return err
	}
	if err := h.svc.DeleteRunner(c.UserContext(), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *Handlers) listTasks(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.runnerOrOperator(c, id); err != nil {
		return err
	}
	out, err := h.svc.ListTasks(c.UserContext(), runners.TaskQuery{
		RunnerID: id, Status: c.Query("status"), Task: c.Query("task"), Cursor: c.Query("cursor"), Limit: c.Query("limit"), Wait: c.Query("wait"),
	})
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handlers) getTask(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.runnerOrOperator(c, id); err != nil {
		return err
	}
	c.Locals(localTask, c.Params("tid"))
	out, err := h.svc.GetTask(c.UserContext(), id, c.Params("tid"))
	return reply(c, out, err)
}

func (h *Handlers) listAllTasks(c *fiber.Ctx) error {
	realm, err := h.operatorRealm(c)
	if err != nil {
		return err
	}
	out, err := h.svc.ListAllTasks(c.UserContext(), runners.AllTasksQuery{
		Status: c.Query("status"), Runner: c.Query("runner"), Type: c.Query("type"), Realm: realm,
		Cursor: c.Query("cursor"), Limit: c.Query("limit"),
	})
	return reply(c, out, err)
}

func (h *Handlers) dispatch(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.operatorOn(c, id); err != nil {
		return err
	}
	var body wire.DispatchTaskPayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	task, created, err := h.svc.Dispatch(c.UserContext(), id, body, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	c.Locals(localTask, task.ID)
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(task)
}

func (h *Handlers) patchTask(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	c.Locals(localRunner, id)
	c.Locals(localTask, c.Params("tid"))
	if err := h.svc.CheckRunnerRealm(c.UserContext(), p, id); err != nil {
		return err
	}
	var body wire.TaskUpdatePayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	actor, err := actorFor(p, id, body)
	if err != nil {
		return err
	}
	out, err := h.svc.UpdateTask(c.UserContext(), runners.TaskUpdate{RunnerID: id, TaskID: c.Params("tid"), Actor: actor, Payload: body})
	return reply(c, out, err)
}

func (h *Handlers) patchTaskByID(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	c.Locals(localTask, c.Params("tid"))
	var body wire.TaskUpdatePayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	out, err := h.svc.UpdateTaskByID(c.UserContext(), c.Params("tid"), body, func(runnerID string) (string, error) {
		c.Locals(localRunner, runnerID)
		if err := h.svc.CheckRunnerRealm(c.UserContext(), p, runnerID); err != nil {
			// another realm's task does not exist for this key
			return "", fmt.Errorf("httpapi: task of another realm: %w", store.ErrTaskNotFound)
		}
		return actorFor(p, runnerID, body)
	})
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handlers) requestUpdate(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := h.operatorOn(c, id); err != nil {
		return err
	}
	var body wire.RequestUpdatePayload
	if err := Decode(c.Body(), &body); err != nil {
		return err
	}
	out, err := h.svc.RequestUpdate(c.UserContext(), id, body)
	return reply(c, out, err)
}

// actorFor says as whom p changes a task of runnerID (auth.TaskActor).
func actorFor(p auth.Principal, runnerID string, body wire.TaskUpdatePayload) (string, error) {
	switch p.TaskActor(runnerID, body.Status == wire.TaskCancelled && body.LeaseEpoch == 0) {
	case auth.ActorRunner:
		return store.ActorRunner, nil
	case auth.ActorOperator:
		return store.ActorOperator, nil
	}
	return "", auth.ErrForbidden
}

const (
	localPrincipal = "principal"
	localRunner    = "runnerId"
	localTask      = "taskId"
)

// authenticated resolves the caller once per request and requires a valid
// credential (any role).
func (h *Handlers) authenticated(c *fiber.Ctx) (auth.Principal, error) {
	if p, ok := c.Locals(localPrincipal).(auth.Principal); ok {
		return p, nil
	}
	p, err := h.auth.Authenticate(c.UserContext(), c.Get(fiber.HeaderAuthorization), c.Get(auth.HeaderAPIKey))
	if err != nil {
		return auth.Principal{}, err
	}
	if !p.Authenticated() {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	c.Locals(localPrincipal, p)
	if p.Role == auth.RoleRunner {
		c.Locals(localRunner, p.RunnerID)
	}
	return p, nil
}

// authenticatedDeferred is authenticated with a runner token left
// Deferred (auth.AuthenticateDeferred): for a route whose store call
// checks the token itself.
func (h *Handlers) authenticatedDeferred(c *fiber.Ctx) (auth.Principal, error) {
	p, err := h.auth.AuthenticateDeferred(c.UserContext(), c.Get(fiber.HeaderAuthorization), c.Get(auth.HeaderAPIKey))
	if err != nil {
		return auth.Principal{}, err
	}
	if !p.Authenticated() {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	c.Locals(localPrincipal, p)
	if p.Role == auth.RoleRunner {
		c.Locals(localRunner, p.RunnerID)
	}
	return p, nil
}

func (h *Handlers) operator(c *fiber.Ctx) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	if !p.IsOperator() {
		return auth.ErrForbidden
	}
	return nil
}

// principal is the caller authenticated earlier in this request.
func (h *Handlers) principal(c *fiber.Ctx) auth.Principal {
	p, _ := c.Locals(localPrincipal).(auth.Principal)
	return p
}

// operatorOn requires an operator acting on runner id.
func (h *Handlers) operatorOn(c *fiber.Ctx, id string) error {
	return h.onRunner(c, id, auth.Principal.IsOperator)
}

// runnerOrOperator requires that runner itself (auth.Principal.ActsFor) or
// an operator.
func (h *Handlers) runnerOrOperator(c *fiber.Ctx, id string) error {
	return h.onRunner(c, id, func(p auth.Principal) bool { return p.ActsFor(id) || p.IsOperator() })
}

// onRunner authenticates a request about runner id and lets it through when
// allowed(principal). A realm-scoped key on another realm's runner gets
// ErrRunnerNotFound, as for a runner that does not exist, before any role
// check can tell them apart.
func (h *Handlers) onRunner(c *fiber.Ctx, id string, allowed func(auth.Principal) bool) error {
	p, err := h.authenticated(c)
	if err != nil {
		return err
	}
	c.Locals(localRunner, id)
	if err := h.svc.CheckRunnerRealm(c.UserContext(), p, id); err != nil {
		return err
	}
	if !allowed(p) {
		return auth.ErrForbidden
	}
	return nil
}

// actsFor checks that p may act as runner id (auth.Principal.ActsFor: its
// own token, or an API key RUNNER_AUTH lets act for runners; an operator
// when allowOperator).
func (h *Handlers) actsFor(c *fiber.Ctx, p auth.Principal, id string, allowOperator bool) error {
	c.Locals(localRunner, id)
	if err := h.svc.CheckRunnerRealm(c.UserContext(), p, id); err != nil {
		return err
	}
	if p.ActsFor(id) || (allowOperator && p.IsOperator()) {
		return nil
	}
	return auth.ErrForbidden
}

// observe is the outermost middleware: it starts the request's span, turns
// a handler's error into its problem answer (so the status is known here),
// then records the request in the metrics by route template, ends the span
// and logs the request with its trace id. It never logs credentials.
func (h *Handlers) observe(c *fiber.Ctx) error {
	start := time.Now()
	self := c.Route()
	span := h.startSpan(c)
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			h.log.Error("error handler failed", "err", herr)
			c.Status(fiber.StatusInternalServerError)
		}
	}
	d := time.Since(start)
	route := unmatchedRoute
	if r := c.Route(); r != self {
		route = r.Path
	}
	status := c.Response().StatusCode()
	h.metrics.ObserveRequest(c.UserContext(), c.Method(), route, status, d)
	if span != nil {
		h.endSpan(c, span, route, status)
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case route == "/" || route == "/health" || route == "/ready" || route == "/metrics":
		level = slog.LevelDebug
	}
	if h.log.Enabled(context.Background(), level) {
		attrs := []slog.Attr{
			slog.String("method", c.Method()), slog.String("route", route), slog.Int("status", status),
			slog.Duration("duration", d),
		}
		if id, ok := c.Locals(localRunner).(string); ok && validate.ID(id) {
			attrs = append(attrs, slog.String("runner_id", id))
		}
		// the request's context: its span's trace_id and span_id join the line
		h.log.LogAttrs(c.UserContext(), level, "request", attrs...)
	}
	return nil
}
