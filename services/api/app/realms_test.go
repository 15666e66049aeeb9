package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// realmEvents reads the realm.* events of the outbox, in order.
func realmEvents(t *testing.T, e *env) []map[string]any {
	t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, m := range msgs {
		typ, _ := m.Values["type"].(string)
		if !strings.HasPrefix(typ, "realm.") {
			continue
		}
		var data map[string]any
		_ = json.Unmarshal([]byte(m.Values["data"].(string)), &data)
		data["type"] = typ
		out = append(out, data)
	}
	return out
}

func wantProblem(t *testing.T, err error, status int, typ string) {
	t.Helper()
	var ce *client.Error
	if !asClientError(err, &ce) || ce.Status != status || ce.Problem.Type != typ {
		t.Fatalf("got %v, want %d %s", err, status, typ)
	}
}

func asClientError(err error, out **client.Error) bool {
	ce, ok := err.(*client.Error)
	if !ok {
		return false
	}
	*out = ce
	return true
}

// TestRealmLifecycleAndItsEffects walks a realm through every transition
// and checks what each does to registration, dispatch and heartbeat
// replies, who and when it records, and its outbox event.
func TestRealmLifecycleAndItsEffects(t *testing.T) {
	e := start(t, authCfg)
	ctx := context.Background()
	op := e.client(opKey)

	if _, err := op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "Team_A"}); err == nil {
		t.Fatal("a name that is no DNS label was accepted")
	} else {
		wantProblem(t, err, 422, problem.TypeValidation)
	}
	created, err := op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "team-a", Description: "team A"})
	if err != nil || created.State != wire.RealmActive || created.StateChangedBy != "global operator" {
		t.Fatalf("create: %+v %v", created, err)
	}
	_, err = op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "team-a"})
	wantProblem(t, err, 409, problem.TypeRealmExists)

	rop, err := op.IssueRealmKey(ctx, "team-a", "team A ops", wire.RealmRoleOperator)
	if err != nil || !strings.HasPrefix(rop.Key, "ygg_rk_") {
		t.Fatalf("issue: %+v %v", rop, err)
	}
	reg, err := op.IssueRealmKey(ctx, "team-a", "team A runners", wire.RealmRoleRegister)
	if err != nil {
		t.Fatal(err)
	}
	// a realm operator key may not create realms (403)
	_, err = e.client(rop.Key).CreateRealm(ctx, wire.CreateRealmPayload{Name: "team-z"})
	wantProblem(t, err, 403, problem.TypeForbidden)

	// a register key registers into its realm without naming it
	r := e.register(reg.Key, wire.RegisterRunnerPayload{Name: "a-1"})
	if r.Realm != "team-a" {
		t.Fatalf("registered into %q, want team-a", r.Realm)
	}
	runner := e.client(r.Token)
	hb := func() wire.HeartbeatResponse {
		t.Helper()
		out, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: r.ID})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if h := hb(); h.Drain || h.Deregister {
		t.Fatalf("active realm: heartbeat %+v", h)
	}
	if _, _, err := op.Dispatch(ctx, r.ID, wire.DispatchTaskPayload{Type: "echo"}, ""); err != nil {
		t.Fatal(err)
	}

	// active -> draining, by the realm's own operator: recorded with its key id
	dr, err := e.client(rop.Key).DrainRealm(ctx, "team-a")
	if err != nil || dr.State != wire.RealmDraining || dr.StateChangedBy != rop.ID || dr.StateChangedAt.Before(created.StateChangedAt) {
		t.Fatalf("drain: %+v %v", dr, err)
	}
	_, err = e.client(reg.Key).Register(ctx, wire.RegisterRunnerPayload{Name: "a-2", Version: "1.0.0"})
	wantProblem(t, err, 409, problem.TypeRealmDraining)
	_, _, err = op.Dispatch(ctx, r.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	wantProblem(t, err, 409, problem.TypeRealmDraining)
	if h := hb(); !h.Drain || h.Deregister || len(h.Tasks) != 0 {
		t.Fatalf("draining realm: heartbeat %+v, want drain and no tasks", h)
	}
	_, err = op.DrainRealm(ctx, "team-a")
	wantProblem(t, err, 409, problem.TypeRealmTransition)

	// draining -> active
	if a, err := op.ActivateRealm(ctx, "team-a"); err != nil || a.State != wire.RealmActive || a.StateChangedBy != "global operator" {
		t.Fatalf("activate: %+v %v", a, err)
	}
	if h := hb(); h.Drain || h.Deregister || len(h.Tasks) != 1 {
		t.Fatalf("active again: heartbeat %+v, want the pending task back", h)
	}
	second := e.register(reg.Key, wire.RegisterRunnerPayload{Name: "a-2"})

	// active -> closed
	if c, err := op.CloseRealm(ctx, "team-a"); err != nil || c.State != wire.RealmClosed {
		t.Fatalf("close: %+v %v", c, err)
	}
	if h := hb(); !h.Deregister {
		t.Fatalf("closed realm: heartbeat %+v, want deregister", h)
	}
	_, err = e.client(reg.Key).Register(ctx, wire.RegisterRunnerPayload{Name: "a-3", Version: "1.0.0"})
	wantProblem(t, err, 409, problem.TypeRealmClosed)
	_, _, err = op.Dispatch(ctx, r.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	wantProblem(t, err, 409, problem.TypeRealmClosed)
	_, err = op.ActivateRealm(ctx, "team-a")
	wantProblem(t, err, 409, problem.TypeRealmTransition)

	// deleted only when no runner is live; the default realm never
	err = op.DeleteRealm(ctx, "team-a")
	wantProblem(t, err, 409, problem.TypeRealmHasLiveRunners)
	err = e.client(rop.Key).DeleteRealm(ctx, "team-a")
	wantProblem(t, err, 403, problem.TypeForbidden)
	for _, id := range []string{r.ID, second.ID} {
		if _, err := op.Offline(ctx, wire.OfflinePayload{RunnerID: id}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := op.GetRealm(ctx, "team-a")
	if err != nil || got.Runners["offline"] != 2 || got.Runners["online"] != 0 {
		t.Fatalf("realm counts: %+v %v", got, err)
	}
	if err := op.DeleteRealm(ctx, "team-a"); err != nil {
		t.Fatal(err)
	}
	_, err = op.GetRealm(ctx, "team-a")
	wantProblem(t, err, 404, problem.TypeRealmNotFound)
	if _, err := op.GetRunner(ctx, r.ID); client.StatusOf(err) != 404 {
		t.Errorf("the deleted realm's runner: %v, want 404", err)
	}
	// its keys went with it
	if _, err := e.client(rop.Key).ListRealms(ctx, "", 0); client.StatusOf(err) != 401 {
		t.Errorf("a deleted realm's key: %v, want 401", err)
	}
	err = op.DeleteRealm(ctx, wire.DefaultRealm)
	wantProblem(t, err, 409, problem.TypeDefaultRealm)
	if d, err := op.GetRealm(ctx, wire.DefaultRealm); err != nil || d.State != wire.RealmActive {
		t.Errorf("default realm: %+v %v", d, err)
	}

	var types, by []string
	for _, ev := range realmEvents(t, e) {
		types = append(types, ev["type"].(string))
		realm := ev["realm"].(map[string]any)
		by = append(by, realm["stateChangedBy"].(string))
		if realm["name"] != "team-a" || realm["stateChangedAtMs"].(float64) <= 0 {
			t.Errorf("event %+v", ev)
		}
	}
	if strings.Join(types, ",") != "realm.draining,realm.active,realm.closed,realm.deleted" {
		t.Errorf("outbox realm events %v", types)
	}
	if by[0] != rop.ID || by[1] != "global operator" {
		t.Errorf("events recorded by %v", by)
	}
}

// TestRealmKeyRevokedOnTheNextRequestOnAnotherReplica revokes a key on one
// replica and uses it on another at once: no replica caches keys.
func TestRealmKeyRevokedOnTheNextRequestOnAnotherReplica(t *testing.T) {
	one := start(t, authCfg)
	two := startOn(t, one.redis, one.rdb, authCfg)
	ctx := context.Background()
	op := one.client(opKey)
	if _, err := op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "rev"}); err != nil {
		t.Fatal(err)
	}
	k, err := op.IssueRealmKey(ctx, "rev", "ops", wire.RealmRoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.client(k.Key).GetRealm(ctx, "rev"); err != nil {
		t.Fatalf("the key on replica two: %v", err)
	}
	keys, err := op.ListRealmKeys(ctx, "rev")
	if err != nil || len(keys.Keys) != 1 || keys.Keys[0].Key != "" || keys.Keys[0].LastUsedAt == nil {
		t.Fatalf("keys %+v %v: want one, no material, lastUsedAt set", keys, err)
	}
	if strings.Contains(string(one.do("GET", "/realms/rev/keys", opKey, "").body), k.Key[len("ygg_rk_"):]) {
		t.Fatal("key material in the key list")
	}
	if err := op.RevokeRealmKey(ctx, "rev", k.ID); err != nil {
		t.Fatal(err)
	}
	r := two.do("GET", "/realms/rev", k.Key, "")
	if r.status != 401 || r.problem(t).Type != problem.TypeUnauthorized {
		t.Fatalf("the revoked key on replica two: %d %s", r.status, r.body)
	}
	wantProblem(t, op.RevokeRealmKey(ctx, "rev", k.ID), 404, problem.TypeRealmKeyNotFound)
}
