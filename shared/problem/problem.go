// Package problem is the one problem+json (RFC 9457) writer of the three
// services: the stable type URIs clients branch on, and Write for net/http
// handlers (the sweeper, the hooks admin endpoints). The api's fiber error
// handler builds the same Problem with the same constants and sends it
// through fiber; this package must never import fiber, so that net/http
// programs can use it.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Problem is the body: type, title, status, detail, instance (and field on
// a 422). It is wire.Problem, so that the typed client decodes exactly what
// the services write.
type Problem = wire.Problem

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// Base prefixes every type URI. The URIs are stable: clients branch on them,
// so a type may be added, never renamed.
const Base = "https://yggdrasil.dev/problems/"

// The type URIs.
const (
	// Any service.
	TypeUnauthorized     = Base + "unauthorized"
	TypeForbidden        = Base + "forbidden"
	TypeMalformedRequest = Base + "malformed-request"
	TypeNotFound         = Base + "not-found"
	TypeMethodNotAllowed = Base + "method-not-allowed"
	TypePayloadTooLarge  = Base + "payload-too-large"
	TypeInternal         = Base + "internal"

	// The api.
	TypeValidation           = Base + "validation"
	TypeRunnerNotFound       = Base + "runner-not-found"
	TypeTaskNotFound         = Base + "task-not-found"
	TypeStaleEpoch           = Base + "stale-epoch"
	TypeRunnerOffline        = Base + "runner-offline"
	TypeRunnerUnreachable    = Base + "runner-unreachable"
	TypeTaskTerminal         = Base + "task-terminal"
	TypeInvalidTransition    = Base + "invalid-transition"
	TypeIdempotencyKeyReused = Base + "idempotency-key-reused"
	TypeFleetFull            = Base + "fleet-full"
	TypeAdmissionClosed      = Base + "admission-closed"
	TypeLongPollCapacity     = Base + "long-poll-capacity"
	TypeNotReady             = Base + "not-ready"
	TypeUnavailable          = Base + "unavailable"
	TypeRunnerNotOffline     = Base + "runner-not-offline"
	// TypeOverloaded: the replica shed the request (503 + Retry-After)
	// rather than let it queue past the runner's lease.
	TypeOverloaded = Base + "overloaded"

	// The sweeper's operator endpoints.
	TypeRedisUnavailable = Base + "redis-unavailable"
	TypeReleaseDisabled  = Base + "release-disabled"
	TypeNoQuarantine     = Base + "no-quarantine"

	// The hooks admin endpoints.
	TypeAdminDisabled    = Base + "admin-disabled"
	TypeDeliveryNotFound = Base + "delivery-not-found"
	TypeNotArchived      = Base + "not-archived"
)

// The api's refusals of runner credentials, registrations and dispatches.
const (
	// TypeConflictingCredentials (400): Authorization and X-API-Key carry
	// different credentials.
	TypeConflictingCredentials = Base + "conflicting-credentials"
	// TypeRunnerLive (409): registering the id of a live (online or
	// unreachable) runner without that runner's credential.
	TypeRunnerLive = Base + "runner-live"
	// TypeRunnerDraining (409): dispatch to a runner whose last heartbeat
	// reported it draining (it finishes its tasks and takes no more).
	TypeRunnerDraining = Base + "runner-draining"

	// Realms. TypeRealmNotFound (404) also answers a realm-scoped key about
	// anything of another realm.
	TypeRealmNotFound = Base + "realm-not-found"
	// TypeRealmExists (409): POST /realms with a name that is taken.
	TypeRealmExists = Base + "realm-exists"
	// TypeRealmDraining and TypeRealmClosed (409) name the state of the
	// realm a registration or dispatch was refused for.
	TypeRealmDraining = Base + "realm-draining"
	TypeRealmClosed   = Base + "realm-closed"
	// TypeRealmTransition (409): the lifecycle step is not allowed from the
	// realm's current state (or a delete of a realm that is not closed).
	TypeRealmTransition = Base + "realm-transition"
	// TypeRealmHasLiveRunners (409): a delete while a runner is online or unreachable.
	TypeRealmHasLiveRunners = Base + "realm-has-live-runners"
	// TypeDefaultRealm (409): the default realm is never deleted.
	TypeDefaultRealm = Base + "default-realm"
	// TypeRealmKeyNotFound (404): no such key in this realm.
	TypeRealmKeyNotFound = Base + "realm-key-not-found"
	// TypeRealmFull (503 + Retry-After): the realm's maxRunners is reached.
	TypeRealmFull = Base + "realm-full"
	// TypeRegisterRateLimited (429 + jittered Retry-After): the realm's
	// registration token bucket is empty.
	TypeRegisterRateLimited = Base + "register-rate-limited"
)

// HTTPType is the type of a status no constant names ("http-418").
func HTTPType(status int) string { return Base + "http-" + strconv.Itoa(status) }

// New is a problem titled with the status's standard text.
func New(status int, typ, detail string) Problem {
	return Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Write sends p with its status and the problem+json content type. A
// problem without a type gets about:blank, the RFC's default, so that no
// body goes out without one.
func Write(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	b, err := json.Marshal(p)
	if err != nil { // a Problem always marshals; keep the status anyway
		b = []byte(`{}`)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}
