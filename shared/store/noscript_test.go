package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

// noscriptCounter counts the replies that were NOSCRIPT errors, single
// commands and pipelined ones alike, so the test knows the reload path ran
// and did not just find the scripts still cached.
type noscriptCounter struct{ single, pipelined atomic.Int64 }

func isNoscript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

func (n *noscriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (n *noscriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd) // cmd.Err() is set only after the hooks return
		if isNoscript(err) {
			n.single.Add(1)
		}
		return err
	}
}

func (n *noscriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if isNoscript(c.Err()) {
				n.pipelined.Add(1)
			}
		}
		return err
	}
}

// TestScriptCacheFlushedMidRun: Redis loses its script cache (SCRIPT FLUSH,
// as after a restart or a failover) between calls of a running service.
// Single script calls (Register, Heartbeat, Dispatch) and the pipelined
// batches (ExpireLeases, TimeoutTasks through runPipelined) meet NOSCRIPT,
// load the script again, and succeed.
func TestScriptCacheFlushedMidRun(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t)
	var seen noscriptCounter
	rdb.AddHook(&seen)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Warm every script the test uses, so the flush below removes cached
	// scripts rather than finding an empty cache.
	live := register(t, s, "live", time.Minute)
	gone := register(t, s, "gone", 30*time.Millisecond)
	if r := s.ExpireLeases(ctx, []string{"live"}); !errors.Is(r[0].Err, store.ErrLeaseAlive) {
		t.Fatalf("warm-up ExpireLeases = %v, want ErrLeaseAlive", r[0].Err)
	}
	task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "live", Type: "shell", Payload: []byte(`{}`), Timeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	flush()
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "live", Epoch: live.Epoch, LeaseTTL: time.Minute}); err != nil {
		t.Fatalf("heartbeat after SCRIPT FLUSH: %v", err)
	}
	if seen.single.Load() == 0 {
		t.Fatal("the heartbeat met no NOSCRIPT: the flush did not reach its script")
	}

	flush()
	if _, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "live", Type: "shell", Payload: []byte(`{}`)}); err != nil {
		t.Fatalf("dispatch after SCRIPT FLUSH: %v", err)
	}

	// The pipelined path: flushed before every pass, so each batch meets
	// NOSCRIPT, reloads and resends.
	var expired store.ExpireResult
	testkit.Eventually(t, 5*time.Second, func() bool {
		flush()
		expired = s.ExpireLeases(ctx, []string{"gone"})[0]
		if expired.Err != nil && !errors.Is(expired.Err, store.ErrLeaseAlive) {
			t.Fatalf("ExpireLeases after SCRIPT FLUSH: %v", expired.Err)
		}
		return expired.Err == nil
	}, "runner %q expired", "gone")
	if expired.Transition.RunnerID != "gone" || expired.Transition.Epoch != gone.Epoch {
		t.Errorf("ExpireLeases transition %+v, want runner gone at epoch %d", expired.Transition, gone.Epoch)
	}

	var timedOut store.TaskTimeoutResult
	testkit.Eventually(t, 5*time.Second, func() bool {
		flush()
		timedOut = s.TimeoutTasks(ctx, []string{task.ID}, 0)[0]
		if timedOut.Err != nil {
			t.Fatalf("TimeoutTasks after SCRIPT FLUSH: %v", timedOut.Err)
		}
		return timedOut.Failed
	}, "task %s timed out", task.ID)
	if seen.pipelined.Load() < 2 {
		t.Errorf("the pipelined batches met %d NOSCRIPT replies, want one per batch at least", seen.pipelined.Load())
	}
}
