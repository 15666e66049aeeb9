package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// DELETE /runners/:id: 204 for an offline runner (gone with its indexes and
// its metric series; its tasks stay for their retention), 409 for a live
// one, 404 for an unknown one, 403 without an operator key.
func TestDeleteRunner(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	op := e.client(opKey)
	live := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "d-live"})
	old := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "d-old", Realm: "lab"})
	task, _, err := op.Dispatch(ctx, "d-old", wire.DispatchTaskPayload{Type: "x"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(old.Token).Offline(ctx, wire.OfflinePayload{RunnerID: "d-old"}); err != nil {
		t.Fatal(err)
	}
	if body := string(e.do("GET", "/metrics", "", "").body); !strings.Contains(body, `runner_id="d-old"`) {
		t.Fatalf("before the delete, /metrics has no series of d-old:\n%s", body)
	}

	for _, tc := range []struct {
		name, id, cred string
		status         int
		typ            string
	}{
		{"runner token", "d-old", old.Token, 403, problem.TypeForbidden},
		{"API key", "d-old", apiKey, 403, problem.TypeForbidden},
		{"online runner", "d-live", opKey, 409, problem.TypeRunnerNotOffline},
		{"unknown runner", "d-nobody", opKey, 404, problem.TypeRunnerNotFound},
		{"not an id", "a%20b", opKey, 422, problem.TypeValidation},
	} {
		r := e.do("DELETE", "/runners/"+tc.id, tc.cred, "")
		if r.status != tc.status || r.header.Get("Content-Type") != problem.ContentType || r.problem(t).Type != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.typ)
		}
	}
	if r, err := op.GetRunner(ctx, "d-live"); err != nil || r.Status != wire.RunnerOnline {
		t.Errorf("the refused delete touched d-live: %+v %v", r, err)
	}
	if live.ID != "d-live" {
		t.Fatalf("registered %s", live.ID)
	}

	r := e.do("DELETE", "/runners/d-old", opKey, "")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE offline runner: %d %s, want 204 without a body", r.status, r.body)
	}
	if _, err := op.GetRunner(ctx, "d-old"); err == nil {
		t.Errorf("GET after DELETE found the runner")
	}
	if err := op.DeleteRunner(ctx, "d-old"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a second DELETE = %v, want 404", err)
	}
	list, err := op.ListRunners(ctx, client.ListOptions{})
	if err != nil || len(list.Runners) != 1 || list.Runners[0].ID != "d-live" {
		t.Errorf("runners after the delete: %+v %v", list, err)
	}
	// a realm is a managed object: it outlives its last runner
	if e.rdb.ZScore(ctx, store.RealmsKey(), "lab").Err() != nil {
		t.Errorf("the realm of the deleted runner went with it")
	}
	// its task stays readable through GET /tasks until its own retention
	all, err := op.ListAllTasks(ctx, client.TaskFilter{})
	if err != nil || len(all.Tasks) != 1 || all.Tasks[0].ID != task.ID || all.Tasks[0].Status != wire.TaskFailed {
		t.Errorf("GET /tasks after the delete: %+v %v, want its failed task", all, err)
	}
	// its series vanish with the next scan of the per-runner collector
	// (METRICS_CACHE_MS is 1 ms in these tests)
	noSeries := func(id string) func() bool {
		return func() bool {
			return !strings.Contains(string(e.do("GET", "/metrics", "", "").body), `runner_id="`+id+`"`)
		}
	}
	testkit.Eventually(t, 5*time.Second, noSeries("d-old"), "the series of the deleted d-old gone from /metrics")

	// the same for a runner the retention purge deletes (the sweeper's call)
	ret := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "d-ret"})
	if _, err := e.client(ret.Token).Offline(ctx, wire.OfflinePayload{RunnerID: "d-ret"}); err != nil {
		t.Fatal(err)
	}
	st := store.New(store.Wrap(e.rdb), store.OptionsFrom(e.cfg.Fleet))
	testkit.Eventually(t, 5*time.Second, func() bool {
		res, err := st.PurgeOfflineRunners(ctx, 5*time.Millisecond, 10)
		return err == nil && len(res) == 1 && res[0].Err == nil
	}, "d-ret purged after a 5 ms retention")
	testkit.Eventually(t, 5*time.Second, noSeries("d-ret"), "the series of the purged d-ret gone from /metrics")
}
