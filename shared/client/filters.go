package client

import (
	"errors"
	"fmt"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// ErrInvalidFilter is returned, before any request, for a status filter the
// api does not accept.
var ErrInvalidFilter = errors.New("yggdrasil: invalid filter")

// RunnerFilter is a runner listing's status filter: only the statuses the
// api filters on (a runner's activity, busy, idle or draining, is not one).
type RunnerFilter string

// The runner statuses the api filters on; the empty filter lists them all.
const (
	RunnersAll         RunnerFilter = ""
	RunnersOnline      RunnerFilter = RunnerFilter(wire.RunnerOnline)
	RunnersUnreachable RunnerFilter = RunnerFilter(wire.RunnerUnreachable)
	RunnersOffline     RunnerFilter = RunnerFilter(wire.RunnerOffline)
)

// ParseRunnerFilter turns user input (a flag, say) into a RunnerFilter.
func ParseRunnerFilter(s string) (RunnerFilter, error) {
	f := RunnerFilter(s)
	return f, f.check()
}

func (f RunnerFilter) check() error {
	switch f {
	case RunnersAll, RunnersOnline, RunnersUnreachable, RunnersOffline:
		return nil
	}
	return fmt.Errorf("%w: runner status %q (want online, unreachable or offline)", ErrInvalidFilter, string(f))
}

// ParseTaskStatus turns user input into a task status the api accepts.
func ParseTaskStatus(s string) (wire.TaskStatus, error) {
	st := wire.TaskStatus(s)
	if s == "" || st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("%w: task status %q (want pending, running, succeeded, failed or cancelled)", ErrInvalidFilter, s)
}

// TerminalStatuses are the statuses a task never leaves.
var TerminalStatuses = []wire.TaskStatus{wire.TaskSucceeded, wire.TaskFailed, wire.TaskCancelled}
