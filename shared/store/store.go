package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

// DefaultListLimit and MaxListLimit page the list calls: part of the API
// contract, not tunables.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Options tunes a Store. The store has no defaults of its own: every value
// comes from shared/config (config.Fleet), which validates it.
type Options struct {
	// IdempotencyTTL is how long an Idempotency-Key keeps returning its task.
	IdempotencyTTL time.Duration
	// TaskRetention is how long a finished task stays readable.
	TaskRetention time.Duration
	// MaxTasksPerReply caps the pending tasks one heartbeat reply carries.
	MaxTasksPerReply int
	// CancelRetention is how long a cancelled running task keeps being listed
	// in cancelTaskIds when the runner never acknowledges it.
	CancelRetention time.Duration
	// HeartbeatBatch is the most heartbeats one pipeline carries (1 or
	// less: each heartbeat is its own round trip); HeartbeatPipelines how
	// many such pipelines may be in flight at once. See batcher.
	HeartbeatBatch     int
	HeartbeatPipelines int
}

// Store reads and writes the control plane's state in Redis, one file per
// aggregate: runners.go (registration, heartbeats, reads), tasks.go
// (dispatch, the task state machine, timeouts), offline.go (the offline
// transition, single and batched), quarantine.go (the correlated-loss gate
// and its exit), outbox.go (the lifecycle event stream). It embeds the Conn
// it runs on, so a Store also pings, tells Redis' time and subscribes.
type Store struct {
	*Conn
	opts       Options
	heartbeats *batcher
}

// OptionsFrom takes a Store's tunables from the fleet configuration, so
// that every service's store (the API's, the sweeper's: the tasks each one
// fails or finishes keep TASK_RETENTION_MS) runs on the same values.
func OptionsFrom(f config.Fleet) Options {
	return Options{
		IdempotencyTTL: f.IdempotencyTTL, TaskRetention: f.TaskRetention(),
		MaxTasksPerReply: f.MaxTasksPerReply, CancelRetention: f.CancelRetention,
	}
}

// New returns a Store over c that uses opts as given.
func New(c *Conn, opts Options) *Store {
	return &Store{Conn: c, opts: opts, heartbeats: newBatcher(heartbeatScript, opts.HeartbeatBatch, opts.HeartbeatPipelines)}
}

// NewID returns a random identifier with the given prefix, e.g. "rnr_3f9a...".
func NewID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

func clampLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	if n > MaxListLimit {
		return MaxListLimit
	}
	return n
}

// scriptCall is one invocation of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipelined sends every call as EVALSHA in one pipeline. When Redis lost
// its script cache (a restart), it loads the script and sends the calls that
// failed with NOSCRIPT again: every script run this way is idempotent.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 0 {
		return cmds
	}
	send := func(which []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range which {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx) // per-command errors are read by the caller
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	send(all)
	var retry []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		if err := script.Load(ctx, s.rdb).Err(); err == nil {
			send(retry)
		}
	}
	return cmds
}
