package app_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestHeartbeatsRaceReRegistration hammers one runner with heartbeats (each
// carrying the epoch and token it last knew) while it re-registers over and
// over. No request may fail with a 5xx, and the end state must be the one
// the last registration wrote.
func TestHeartbeatsRaceReRegistration(t *testing.T) {
	e := start(t, authCfg)
	ctx := context.Background()
	first := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "racer"})

	type cred struct {
		token string
		epoch int64
	}
	var current atomic.Pointer[cred]
	current.Store(&cred{first.Token, first.LeaseEpoch})

	const heartbeaters, beats, registrations = 4, 40, 15
	var wg sync.WaitGroup
	var statuses sync.Map
	count := func(s int) {
		v, _ := statuses.LoadOrStore(s, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	for i := 0; i < heartbeaters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < beats; j++ {
				c := current.Load()
				r := e.do("POST", "/runners/heartbeat", c.token, mustJSON(wire.HeartbeatPayload{RunnerID: "racer", LeaseEpoch: c.epoch}))
				count(r.status)
			}
		}()
	}
	var last atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < registrations; i++ {
			r := e.do("POST", "/runners/register", apiKey, `{"runnerId":"racer","name":"racer","version":"1.0.0"}`)
			count(r.status)
			var out wire.RegisterRunnerResponse
			if r.status == 201 && json.Unmarshal(r.body, &out) == nil {
				current.Store(&cred{out.Token, out.LeaseEpoch})
				last.Store(out.LeaseEpoch)
			}
		}
	}()
	wg.Wait()

	statuses.Range(func(k, v any) bool {
		s := k.(int)
		switch s {
		case 200, 201, 401, 409: // 401: a token replaced meanwhile; 409: a stale epoch
		default:
			t.Errorf("%d answers with status %d", v.(*atomic.Int64).Load(), s)
		}
		return true
	})
	if got, want := last.Load(), int64(1+registrations); got != want {
		t.Fatalf("last epoch = %d, want %d", got, want)
	}
	c := current.Load()
	hb, err := e.client(c.token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "racer", LeaseEpoch: c.epoch})
	if err != nil || hb.LeaseEpoch != c.epoch {
		t.Fatalf("final heartbeat = %+v, %v", hb, err)
	}
	info, err := e.client(opKey).GetRunner(ctx, "racer")
	if err != nil || info.Status != wire.RunnerOnline || info.LeaseEpoch != c.epoch {
		t.Fatalf("runner = %+v, %v", info, err)
	}
	lease, err := e.rdb.Get(ctx, store.LeaseKey("racer")).Int64()
	if err != nil || lease != c.epoch {
		t.Fatalf("lease key = %d, %v; want epoch %d", lease, err, c.epoch)
	}
	if n, _ := e.rdb.ZCard(ctx, store.StatusIndexKey("online")).Result(); n != 1 {
		t.Fatalf("online index holds %d runners", n)
	}
	if _, err := e.rdb.ZScore(ctx, store.LeaseDeadlinesKey(), "racer").Result(); err != nil {
		t.Fatalf("deadline index: %v", err)
	}
}
