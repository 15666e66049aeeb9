package store

import (
	"errors"
	"time"
)

// DomainError is an answer of the state itself (an unknown runner, a stale
// epoch, a finished task), as opposed to a failure to reach it. Every
// sentinel below is one, so a caller tells the two apart with IsDomain and
// a new sentinel can never be forgotten in a list: a 4xx stays a 4xx and
// never trips the API's breaker.
type DomainError struct{ msg string }

func (e *DomainError) Error() string { return e.msg }

func domain(msg string) error { return &DomainError{msg: msg} }

// Sentinel errors. Callers branch on them with errors.Is; the API maps them
// to HTTP status codes in one place.
var (
	ErrRunnerNotFound    = domain("runner not found")
	ErrRunnerOffline     = domain("runner is offline")
	ErrRunnerUnreachable = domain("runner is unreachable (quarantined)")
	ErrStaleEpoch        = domain("stale lease epoch")
	ErrLeaseAlive        = domain("lease is still alive")
	ErrFleetFull         = domain("maximum number of runners reached")
	ErrTaskNotFound      = domain("task not found")
	ErrTaskTerminal      = domain("task is already finished")
	ErrInvalidTransition = domain("invalid task status transition")
	ErrAlreadyOffline    = domain("runner is already offline")
	ErrIdempotencyReused = domain("idempotency key already used for a different request")
	// ErrRunnerLive refuses to register a live runner's id for a caller
	// that holds none of that runner's credentials.
	ErrRunnerLive = domain("runner is live: registering its id needs its credential")
	// ErrRunnerDraining refuses to dispatch to a runner whose last heartbeat
	// reported it draining.
	ErrRunnerDraining = domain("runner is draining: it takes no new tasks")
	// ErrRunnerNotOffline refuses to delete a runner that is online or
	// unreachable: only offline runners are deleted.
	ErrRunnerNotOffline = domain("runner is not offline")
	// ErrRunnerTooRecent means the runner has not been offline for the
	// retention yet (the purge re-checks it: it may have come back and gone
	// offline again since it was found).
	ErrRunnerTooRecent = domain("runner went offline within the retention")
	// ErrBadCredential refuses a heartbeat whose runner token hash is not
	// the runner's current one (or names no runner): heartbeat.lua checks
	// the token in the same step that renews the lease. The API answers it
	// as it answers any invalid credential (401).
	ErrBadCredential = domain("invalid runner credential")
	// ErrNoQuarantine means there was no active quarantine to end (or it is
	// still holding).
	ErrNoQuarantine = domain("no quarantine to end")

	// ErrRealmNotFound: no such realm (or, for a realm-scoped key, one
	// outside its realm).
	ErrRealmNotFound = domain("realm not found")
	// ErrRealmExists refuses to create a realm whose name is taken.
	ErrRealmExists = domain("realm exists already")
	// ErrRealmDraining and ErrRealmClosed refuse a registration into, or a
	// dispatch to a runner of, a realm in that state.
	ErrRealmDraining = domain("realm is draining")
	ErrRealmClosed   = domain("realm is closed")
	// ErrRealmTransition refuses a lifecycle transition from the realm's
	// current state (or a delete of a realm that is not closed).
	ErrRealmTransition = domain("realm transition not allowed from its current state")
	// ErrRealmHasLiveRunners refuses to delete a realm with a runner online
	// or unreachable.
	ErrRealmHasLiveRunners = domain("realm has live runners")
	// ErrDefaultRealm refuses to delete the default realm.
	ErrDefaultRealm = domain("the default realm cannot be deleted")
	// ErrRealmKeyNotFound: no such key in this realm.
	ErrRealmKeyNotFound = domain("realm key not found")
	// ErrRealmFull: the realm's maxRunners live runners are registered.
	ErrRealmFull = domain("the realm's maximum number of runners is reached")
	// ErrRegisterRate: the realm's registration bucket is empty (see
	// RateError for when to come back).
	ErrRegisterRate = domain("registrations into this realm arrive faster than allowed")

	errUnexpectedResponse = errors.New("unexpected script response")
)

// IsDomain reports whether err is one of the store's sentinel answers rather
// than an infrastructure failure such as Redis being unreachable.
func IsDomain(err error) bool {
	var d *DomainError
	return errors.As(err, &d)
}

// scriptCode is a reply's first element, the script's return code (each
// script's header lists its codes; each wrapper names them as constants).
func scriptCode(res []any) int64 {
	if len(res) == 0 {
		return -1
	}
	return toInt(res[0])
}

// realmStateErr is the sentinel of a realm that is not active.
func realmStateErr(state string) error {
	if state == "closed" {
		return ErrRealmClosed
	}
	return ErrRealmDraining
}

// RateError is ErrRegisterRate with the time until the bucket holds a token.
type RateError struct{ After time.Duration }

func (e *RateError) Error() string { return ErrRegisterRate.Error() }
func (e *RateError) Unwrap() error { return ErrRegisterRate }
