package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestAgentHonoursRealmDrainAndClose runs the reference agent, with its
// realm's register key, through its realm draining (the running task
// finishes, no new task is taken, dispatch is refused) and closing (the
// agent deregisters gracefully and exits 0).
func TestAgentHonoursRealmDrainAndClose(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "e2e-team"}); err != nil {
		t.Fatal(err)
	}
	key, err := c.op.IssueRealmKey(ctx, "e2e-team", "runners", wire.RealmRoleRegister)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	agent := c.startRunner(runnerOpts{name: "realm-agent", stateDir: dir,
		extra: map[string]string{"YGGDRASIL_API_KEY": key.Key, "RUNNER_REALM": "e2e-team"}})
	id := runnerID(t, dir)
	if info := c.runner(id); info.Realm != "e2e-team" {
		t.Fatalf("registered into %q", info.Realm)
	}

	long := c.dispatch(id, "shell", shellPayload{Command: "sleep 1.5; echo done"})
	c.waitTask(id, long.ID, wire.TaskRunning, 10*time.Second)
	if _, err := c.op.DrainRealm(ctx, "e2e-team"); err != nil {
		t.Fatal(err)
	}
	// the running task finishes; the agent reports itself draining
	c.waitTask(id, long.ID, wire.TaskSucceeded, 15*time.Second)
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		if info := c.runner(id); info.Activity != wire.RunnerDraining {
			return fmt.Errorf("activity %q", info.Activity)
		}
		return nil
	}, "the agent reports draining")
	_, _, err = c.op.Dispatch(ctx, id, wire.DispatchTaskPayload{Type: "shell"}, "")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 409 || ce.Problem.Type != problem.TypeRealmDraining {
		t.Fatalf("dispatch into the draining realm: %v", err)
	}
	if !agent.running() {
		t.Fatal("the agent exited on drain")
	}

	if _, err := c.op.CloseRealm(ctx, "e2e-team"); err != nil {
		t.Fatal(err)
	}
	if code := agent.wait(20 * time.Second); code != 0 {
		t.Fatalf("the agent exited with %d after its realm closed, want 0", code)
	}
	info := c.runner(id)
	if info.Status != wire.RunnerOffline || info.OfflineReason != "deregistered" {
		t.Errorf("after the close: %+v, want offline by deregistration", info)
	}
	// with its runners offline, the closed realm can be deleted
	if err := c.op.DeleteRealm(ctx, "e2e-team"); err != nil {
		t.Errorf("delete: %v", err)
	}
}
