package app_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestGetOneTask(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	r1 := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "g1"})
	r2 := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "g2"})
	op := e.client(opKey)
	task, _, err := op.Dispatch(ctx, "g1", wire.DispatchTaskPayload{Type: "shell", Payload: []byte(`{"command":"true"}`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(r1.Token).UpdateTask(ctx, "g1", task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning}); err != nil {
		t.Fatal(err)
	}
	// An API key acts as any runner while RUNNER_AUTH lists api-key (the
	// default, as the original controller): it reads the runner's tasks too.
	for name, cred := range map[string]string{"operator": opKey, "its runner": r1.Token, "an API key": apiKey} {
		got, err := e.client(cred).GetTask(ctx, "g1", task.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != task.ID || got.RunnerID != "g1" || got.Status != wire.TaskRunning || got.StartedAt == nil || string(got.Payload) != `{"command":"true"}` {
			t.Errorf("%s: GetTask = %+v", name, got)
		}
	}
	for _, tc := range []struct {
		name, path, cred string
		status           int
		typ              string
	}{
		{"another runner's token", "/runners/g1/tasks/" + task.ID, r2.Token, 403, problem.TypeForbidden},
		{"the task under another runner", "/runners/g2/tasks/" + task.ID, opKey, 404, problem.TypeTaskNotFound},
		{"the task under another runner, by that runner", "/runners/g2/tasks/" + task.ID, r2.Token, 404, problem.TypeTaskNotFound},
		{"unknown task", "/runners/g1/tasks/tsk_nope", opKey, 404, problem.TypeTaskNotFound},
		{"a task id that is no id", "/runners/g1/tasks/a%20b", opKey, 422, problem.TypeValidation},
		{"no credential", "/runners/g1/tasks/" + task.ID, "", 401, problem.TypeUnauthorized},
	} {
		r := e.do("GET", tc.path, tc.cred, "")
		if r.status != tc.status || r.header.Get("Content-Type") != problem.ContentType || r.problem(t).Type != tc.typ {
			t.Errorf("%s: %d %s %s, want %d %s", tc.name, r.status, r.header.Get("Content-Type"), r.body, tc.status, tc.typ)
		}
	}
}

func TestListAllTasks(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	r1 := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a1"})
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "a2"})
	op := e.client(opKey)
	var order []string // dispatch order, oldest first
	typeOf := map[string]string{}
	created := map[string]time.Time{}
	for i, d := range []struct{ runner, typ string }{
		{"a1", "shell"}, {"a2", "shell"}, {"a1", "echo"}, {"a1", "shell"}, {"a2", "echo"}, {"a1", "shell"}, {"a2", "shell"},
	} {
		task, _, err := op.Dispatch(ctx, d.runner, wire.DispatchTaskPayload{Type: d.typ, Payload: []byte(`{"i":` + string(rune('0'+i)) + `}`)}, "")
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, task.ID)
		typeOf[task.ID] = d.runner + "/" + d.typ
		created[task.ID] = task.CreatedAt
	}
	// a1's first task succeeds, its echo fails
	rc := e.client(r1.Token)
	for tid, final := range map[string]wire.TaskStatus{order[0]: wire.TaskSucceeded, order[2]: wire.TaskFailed} {
		if _, err := rc.UpdateTask(ctx, "a1", tid, wire.TaskUpdatePayload{Status: wire.TaskRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.UpdateTask(ctx, "a1", tid, wire.TaskUpdatePayload{Status: final}); err != nil {
			t.Fatal(err)
		}
	}
	// newest first: by creation time (ms), ties by id, descending
	newest := func(keep func(id string) bool) []string {
		var out []string
		for _, id := range order {
			if keep(id) {
				out = append(out, id)
			}
		}
		sort.Slice(out, func(i, j int) bool {
			if a, b := created[out[i]], created[out[j]]; !a.Equal(b) {
				return a.After(b)
			}
			return out[i] > out[j]
		})
		return out
	}
	// all pages of a filter, following nextCursor
	list := func(f client.TaskFilter) []string {
		t.Helper()
		var ids []string
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			page, err := op.ListAllTasks(ctx, f)
			if err != nil {
				t.Fatalf("ListAllTasks(%+v): %v", f, err)
			}
			for _, tk := range page.Tasks {
				ids = append(ids, tk.ID)
			}
			if page.NextCursor == "" {
				return ids
			}
			f.Cursor = page.NextCursor
		}
	}
	for _, tc := range []struct {
		name string
		f    client.TaskFilter
		want []string
	}{
		{"all", client.TaskFilter{}, newest(func(string) bool { return true })},
		{"all, pages of 2", client.TaskFilter{Limit: 2}, newest(func(string) bool { return true })},
		{"runner a1, pages of 2", client.TaskFilter{RunnerID: "a1", Limit: 2}, newest(func(id string) bool { return typeOf[id][:2] == "a1" })},
		{"type echo", client.TaskFilter{Type: "echo"}, newest(func(id string) bool { return typeOf[id][3:] == "echo" })},
		{"status pending, pages of 1", client.TaskFilter{Status: wire.TaskPending, Limit: 1}, newest(func(id string) bool { return id != order[0] && id != order[2] })},
		{"status succeeded", client.TaskFilter{Status: wire.TaskSucceeded}, []string{order[0]}},
		{"a2 shell pending", client.TaskFilter{RunnerID: "a2", Type: "shell", Status: wire.TaskPending}, newest(func(id string) bool { return id == order[6] || id == order[1] })},
		{"a1 pending", client.TaskFilter{RunnerID: "a1", Status: wire.TaskPending}, newest(func(id string) bool { return id == order[5] || id == order[3] })},
		{"unknown runner", client.TaskFilter{RunnerID: "nobody"}, nil},
	} {
		if diff := cmp.Diff(tc.want, list(tc.f)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	for _, tc := range []struct {
		query, cred string
		status      int
	}{
		{"", r1.Token, 403}, {"", apiKey, 403}, {"", "", 401},
		{"?status=done", opKey, 422}, {"?runner=a%20b", opKey, 422}, {"?type=%20", opKey, 422},
		{"?cursor=yesterday", opKey, 422}, {"?limit=0", opKey, 422}, {"?limit=100000", opKey, 422},
	} {
		if r := e.do("GET", "/tasks"+tc.query, tc.cred, ""); r.status != tc.status || r.header.Get("Content-Type") != problem.ContentType {
			t.Errorf("GET /tasks%s: %d %s, want %d problem+json", tc.query, r.status, r.body, tc.status)
		}
	}

	// a runner's own listing pages with the cursor it hands out (it used to
	// refuse its own "<ms>:<id>" cursors with a 422)
	var mine []string
	for q := (client.TaskQuery{Limit: 2}); ; {
		page, err := rc.ListTasks(ctx, "a1", q)
		if err != nil {
			t.Fatalf("ListTasks with cursor %q: %v", q.Cursor, err)
		}
		for _, tk := range page.Tasks {
			mine = append(mine, tk.ID)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if diff := cmp.Diff(newest(func(id string) bool { return typeOf[id][:2] == "a1" }), mine); diff != "" {
		t.Errorf("GET /runners/a1/tasks pages (-want +got):\n%s", diff)
	}

	// an expired task's index entry is dropped by the listing that meets it
	if err := e.rdb.Del(ctx, store.TaskKey(order[0])).Err(); err != nil {
		t.Fatal(err)
	}
	if got := list(client.TaskFilter{}); len(got) != len(order)-1 {
		t.Errorf("after the expiry of one task: %d listed, want %d", len(got), len(order)-1)
	}
	if err := e.rdb.ZScore(ctx, store.TasksKey(), order[0]).Err(); err == nil {
		t.Errorf("the expired task is still in %s", store.TasksKey())
	}
}
