package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/runners"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// ProblemBase prefixes every problem type URI (problem.Base). The URIs are
// stable: clients branch on them.
const ProblemBase = problem.Base

// ContentTypeProblem is the media type of every error body (RFC 9457).
const ContentTypeProblem = problem.ContentType

// BadRequestError is a body that is not the JSON the route expects.
type BadRequestError struct{ Detail string }

func (e *BadRequestError) Error() string { return "malformed request: " + e.Detail }

// errNotReady answers /ready when Redis does not.
var errNotReady = errors.New("not ready")

type kind struct {
	status int
	typ    string // a problem.Type… URI
	title  string
	detail string
}

// domain maps the sentinels callers branch on. Details are fixed texts:
// error strings from below never reach a client.
var domain = []struct {
	err error
	k   kind
}{
	{auth.ErrUnauthenticated, kind{401, problem.TypeUnauthorized, "Unauthorized", "a valid credential is required, in Authorization: Bearer or X-API-Key"}},
	{store.ErrBadCredential, kind{401, problem.TypeUnauthorized, "Unauthorized", "a valid credential is required, in Authorization: Bearer or X-API-Key"}},
	{auth.ErrForbidden, kind{403, problem.TypeForbidden, "Forbidden", "this credential may not perform this request"}},
	{auth.ErrConflictingCredentials, kind{400, problem.TypeConflictingCredentials, "Conflicting credentials", "Authorization and X-API-Key carry different credentials: send one, or the same in both"}},
	{store.ErrRunnerNotFound, kind{404, problem.TypeRunnerNotFound, "Runner not found", "no runner with this id: register it first"}},
	{store.ErrTaskNotFound, kind{404, problem.TypeTaskNotFound, "Task not found", "no task with this id for this runner"}},
	{store.ErrStaleEpoch, kind{409, problem.TypeStaleEpoch, "Stale lease epoch", "the lease epoch is not the runner's current one: register again"}},
	{store.ErrRunnerOffline, kind{409, problem.TypeRunnerOffline, "Runner offline", "the runner is offline: register again"}},
	{store.ErrAlreadyOffline, kind{409, problem.TypeRunnerOffline, "Runner offline", "the runner is offline: register again"}},
	{store.ErrRunnerUnreachable, kind{409, problem.TypeRunnerUnreachable, "Runner unreachable", "the runner is quarantined as unreachable"}},
	{store.ErrRunnerDraining, kind{409, problem.TypeRunnerDraining, "Runner draining", "the runner is draining: it finishes its tasks and takes no new ones"}},
	{store.ErrRunnerLive, kind{409, problem.TypeRunnerLive, "Runner live", "the runner is online or unreachable: re-registering its id needs its own credential (its token, or an API key when RUNNER_AUTH allows keys); take it offline first"}},
	{store.ErrRunnerNotOffline, kind{409, problem.TypeRunnerNotOffline, "Runner not offline", "only an offline runner can be deleted: take it offline first (POST /runners/offline)"}},
	{store.ErrTaskTerminal, kind{409, problem.TypeTaskTerminal, "Task finished", "the task is already finished and cannot change"}},
	{store.ErrInvalidTransition, kind{409, problem.TypeInvalidTransition, "Invalid task transition", "the task cannot move from its current status to this one"}},
	{store.ErrIdempotencyReused, kind{422, problem.TypeIdempotencyKeyReused, "Idempotency-Key reused", "this Idempotency-Key was already used for a different request to this runner"}},
	{store.ErrFleetFull, kind{503, problem.TypeFleetFull, "Fleet full", "MAX_RUNNERS live runners are registered already"}},
	{store.ErrRealmNotFound, kind{404, problem.TypeRealmNotFound, "Realm not found", "no realm with this name"}},
	{store.ErrRealmExists, kind{409, problem.TypeRealmExists, "Realm exists", "a realm with this name exists already"}},
	{store.ErrRealmDraining, kind{409, problem.TypeRealmDraining, "Realm draining", "the realm is draining: it admits no registrations and its runners take no new tasks"}},
	{store.ErrRealmClosed, kind{409, problem.TypeRealmClosed, "Realm closed", "the realm is closed: it admits no registrations and its runners take no new tasks"}},
	{store.ErrRealmTransition, kind{409, problem.TypeRealmTransition, "Realm transition not allowed", "the realm's current state does not allow this (active -> draining -> closed -> deleted, draining -> active, active -> closed)"}},
	{store.ErrRealmHasLiveRunners, kind{409, problem.TypeRealmHasLiveRunners, "Realm has live runners", "a runner of the realm is online or unreachable: wait until every runner is offline"}},
	{store.ErrDefaultRealm, kind{409, problem.TypeDefaultRealm, "Default realm", "the default realm always exists and cannot be deleted"}},
	{store.ErrRealmKeyNotFound, kind{404, problem.TypeRealmKeyNotFound, "Key not found", "no key with this id in this realm"}},
	{store.ErrRealmFull, kind{503, problem.TypeRealmFull, "Realm full", "the realm's maxRunners live runners are registered already"}},
	{store.ErrRegisterRate, kind{429, problem.TypeRegisterRateLimited, "Too many registrations", "registrations into this realm arrive faster than its rate allows; retry after Retry-After"}},
	{runners.ErrAdmissionClosed, kind{503, problem.TypeAdmissionClosed, "Admission closed", "registrations are suspended while the state store is failing"}},
	{runners.ErrTooManyWaiters, kind{503, problem.TypeLongPollCapacity, "Too many long polls", "this replica holds its maximum of long polls; retry"}},
	{errOverloaded, kind{503, problem.TypeOverloaded, "Overloaded", "this replica cannot serve the request in time; retry after Retry-After"}},
	{errNotReady, kind{503, problem.TypeNotReady, "Not ready", "the state store does not answer"}},
	{runners.ErrUnavailable, kind{503, problem.TypeUnavailable, "Service unavailable", "the state store is unavailable; retry later"}},
}

// Classify turns err into the problem it answers, the Retry-After it asks
// for (0: none), and whether it is a failure to log with its cause (the state
// store failing, or an error nobody expected). It is the one mapping from
// errors to HTTP statuses: the ErrorHandler and the web console both use it.
func Classify(err error) (p problem.Problem, retry time.Duration, logIt bool) {
	var (
		verr *validate.Error
		berr *BadRequestError
		ferr *fiber.Error
		rerr *runners.RetryError
	)
	if errors.As(err, &rerr) {
		retry = rerr.After
	}
	for _, d := range domain {
		if errors.Is(err, d.err) {
			p = problem.Problem{Type: d.k.typ, Title: d.k.title, Status: d.k.status, Detail: d.k.detail}
			if (p.Status == fiber.StatusServiceUnavailable || p.Status == fiber.StatusTooManyRequests) && retry == 0 {
				retry = time.Second
			}
			// the breaker refusing while open is expected, not a failure to log
			return p, retry, errors.Is(err, runners.ErrUnavailable) || (errors.Is(err, errNotReady) && !errors.Is(err, runners.ErrBreakerOpen))
		}
	}
	switch {
	case errors.As(err, &verr):
		return problem.Problem{Type: problem.TypeValidation, Title: "Validation failed", Status: fiber.StatusUnprocessableEntity,
			Detail: verr.Error(), Field: verr.Field}, retry, false
	case errors.As(err, &berr):
		return problem.Problem{Type: problem.TypeMalformedRequest, Title: "Malformed request", Status: fiber.StatusBadRequest, Detail: berr.Detail}, retry, false
	case errors.As(err, &ferr):
		return fiberProblem(ferr), retry, false
	}
	return problem.Problem{Type: problem.TypeInternal, Title: "Internal error", Status: fiber.StatusInternalServerError,
		Detail: "the server failed to handle this request"}, retry, true
}

// ErrorHandler is the only place errors become HTTP answers: problem+json
// with a stable type (from Classify). Unknown errors are 500 with a generic
// detail, and logged here with their cause.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		p, retry, logIt := Classify(err)
		if logIt {
			msg := "internal error"
			if p.Status == fiber.StatusServiceUnavailable {
				msg = "state store failure"
			}
			log.ErrorContext(c.UserContext(), msg, "method", c.Method(), "route", c.Route().Path, "err", err)
		}
		if p.Status == fiber.StatusUnauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="yggdrasil"`)
		}
		if retry > 0 {
			secs := int((retry + time.Second - 1) / time.Second)
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		}
		return c.Status(p.Status).JSON(p, problem.ContentType)
	}
}

func fiberProblem(e *fiber.Error) problem.Problem {
	switch e.Code {
	case fiber.StatusNotFound:
		return problem.Problem{Type: problem.TypeNotFound, Title: "Not found", Status: 404, Detail: "no such route"}
	case fiber.StatusMethodNotAllowed:
		return problem.Problem{Type: problem.TypeMethodNotAllowed, Title: "Method not allowed", Status: 405, Detail: "this route does not accept this method"}
	case fiber.StatusRequestEntityTooLarge:
		return problem.Problem{Type: problem.TypePayloadTooLarge, Title: "Payload too large", Status: 413, Detail: "the request body exceeds BODY_LIMIT_BYTES"}
	case fiber.StatusBadRequest:
		return problem.Problem{Type: problem.TypeMalformedRequest, Title: "Malformed request", Status: 400, Detail: "the request could not be parsed"}
	}
	status := e.Code
	if status < 400 || status > 599 {
		status = fiber.StatusInternalServerError
	}
	return problem.Problem{Type: problem.HTTPType(status), Title: http.StatusText(status), Status: status,
		Detail: "the request failed"}
}
