package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// pipelineCounter counts the pipelines a client sends and the commands in them.
type pipelineCounter struct{ pipelines, cmds atomic.Int64 }

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// Concurrent heartbeats share pipelines, and every one still gets its own
// answer: its own lease, its own stale epoch, its own token refusal.
func TestHeartbeatsSharePipelinesAndKeepTheirOwnAnswers(t *testing.T) {
	_, rdb := redistest.Start(t)
	var pc pipelineCounter
	rdb.AddHook(&pc)
	opts := store.OptionsFrom(config.DefaultAPI().Fleet)
	opts.HeartbeatBatch, opts.HeartbeatPipelines = 16, 1
	s := store.New(store.Wrap(rdb), opts)
	ctx := context.Background()
	const runners, rounds = 32, 20
	epochs := make([]int64, runners)
	for i := range epochs {
		_, lease, err := s.Register(ctx, store.RegisterParams{ID: fmt.Sprintf("b%02d", i), Name: "n", Version: "1",
			TokenHash: fmt.Sprintf("hash-%02d", i), LeaseTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		epochs[i] = lease.Epoch
	}
	pc.pipelines.Store(0)
	pc.cmds.Store(0)
	var wg sync.WaitGroup
	errs := make(chan error, runners*rounds)
	for i := 0; i < runners; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("b%02d", i)
			for r := 0; r < rounds; r++ {
				p := store.HeartbeatParams{RunnerID: id, Epoch: epochs[i], LeaseTTL: time.Minute, TokenHash: fmt.Sprintf("hash-%02d", i)}
				want := error(nil)
				switch r % 4 {
				case 1:
					p.Epoch++ // another epoch
					want = store.ErrStaleEpoch
				case 2:
					p.TokenHash = "hash-of-another-token"
					want = store.ErrBadCredential
				case 3:
					p.TokenHash = "" // a key that acts for any runner
				}
				res, err := s.Heartbeat(ctx, p)
				switch {
				case want == nil && err != nil:
					errs <- fmt.Errorf("%s round %d: %v", id, r, err)
				case want != nil && !errors.Is(err, want):
					errs <- fmt.Errorf("%s round %d: got %v, want %v", id, r, err, want)
				case want == nil && res.Lease.Epoch != epochs[i]:
					errs <- fmt.Errorf("%s round %d: epoch %d, want %d", id, r, res.Lease.Epoch, epochs[i])
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := pc.cmds.Load(); n < runners*rounds {
		t.Fatalf("%d script calls went through pipelines, want all %d", n, runners*rounds)
	}
	if p := pc.pipelines.Load(); p >= runners*rounds {
		t.Errorf("%d pipelines for %d heartbeats: none shared", p, runners*rounds)
	}
	t.Logf("%d heartbeats in %d pipelines", pc.cmds.Load(), pc.pipelines.Load())
}

// The token check: a heartbeat presenting another hash, or naming no
// runner, is ErrBadCredential and changes nothing; without a hash (an API
// key acting for any runner) an unknown runner is ErrRunnerNotFound.
func TestHeartbeatChecksTheTokenHash(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	_, lease, err := s.Register(ctx, store.RegisterParams{ID: "r1", Name: "n", Version: "1", TokenHash: "good", LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := rdb.HGet(ctx, store.RunnerKey("r1"), "lastHeartbeat").Result()
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch, LeaseTTL: time.Minute, TokenHash: "bad"}); !errors.Is(err, store.ErrBadCredential) {
		t.Fatalf("wrong hash: %v", err)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch + 1, LeaseTTL: time.Minute, TokenHash: "bad"}); !errors.Is(err, store.ErrBadCredential) {
		t.Fatalf("wrong hash and a stale epoch: %v, want the credential refused first", err)
	}
	if after, _ := rdb.HGet(ctx, store.RunnerKey("r1"), "lastHeartbeat").Result(); after != before {
		t.Fatalf("a refused heartbeat renewed the lease: %s -> %s", before, after)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "nobody", LeaseTTL: time.Minute, TokenHash: "good"}); !errors.Is(err, store.ErrBadCredential) {
		t.Fatalf("unknown runner with a hash: %v", err)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "nobody", LeaseTTL: time.Minute}); !errors.Is(err, store.ErrRunnerNotFound) {
		t.Fatalf("unknown runner without a hash: %v", err)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch, LeaseTTL: time.Minute, TokenHash: "good"}); err != nil {
		t.Fatalf("right hash: %v", err)
	}
}
