package store

import "errors"

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
