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
	errUnexpectedResponse = errors.New("unexpected script response")
)
