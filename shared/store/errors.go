package store

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the API maps them
// to HTTP status codes in one place.
var (
	ErrRunnerNotFound     = errors.New("runner not found")
	ErrRunnerOffline      = errors.New("runner is offline")
	ErrRunnerUnreachable  = errors.New("runner is unreachable (quarantined)")
	ErrStaleEpoch         = errors.New("stale lease epoch")
	ErrLeaseAlive         = errors.New("lease is still alive")
	ErrFleetFull          = errors.New("maximum number of runners reached")
	ErrTaskNotFound       = errors.New("task not found")
	ErrTaskTerminal       = errors.New("task is already finished")
	ErrInvalidTransition  = errors.New("invalid task status transition")
	ErrAlreadyOffline     = errors.New("runner is already offline")
	ErrIdempotencyReused  = errors.New("idempotency key already used for a different request")
	errUnexpectedResponse = errors.New("unexpected script response")
)

// domainErrors are the answers of the state itself, as opposed to failures
// to reach it.
var domainErrors = []error{
	ErrRunnerNotFound, ErrRunnerOffline, ErrRunnerUnreachable, ErrStaleEpoch, ErrLeaseAlive, ErrFleetFull,
	ErrTaskNotFound, ErrTaskTerminal, ErrInvalidTransition, ErrAlreadyOffline, ErrIdempotencyReused,
	ErrNoQuarantine,
}

// IsDomain reports whether err is one of the store's sentinel answers (a
// stale epoch, an unknown runner, ...) rather than an infrastructure failure
// such as Redis being unreachable.
func IsDomain(err error) bool {
	for _, e := range domainErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
