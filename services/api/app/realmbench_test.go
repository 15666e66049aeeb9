package app_test

import (
	"context"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// BenchmarkHeartbeatByCredential is the cost of a realm key on the
// heartbeat path: the same heartbeat with the runner's token (one HGET of
// its hash), a global API key (no Redis read) and a realm register key (one
// script call per request, so that a revocation holds at once).
//
//	go test -run '^$' -bench BenchmarkHeartbeatByCredential -benchtime 3000x ./app/
func BenchmarkHeartbeatByCredential(b *testing.B) {
	e := start(b, authCfg)
	ctx := context.Background()
	k, err := e.client(opKey).IssueRealmKey(ctx, wire.DefaultRealm, "bench", wire.RealmRoleRegister)
	if err != nil {
		b.Fatal(err)
	}
	r := e.register(apiKey, wire.RegisterRunnerPayload{Name: "bench"})
	for _, c := range []struct{ name, cred string }{{"token", r.Token}, {"global-key", apiKey}, {"realm-key", k.Key}} {
		b.Run(c.name, func(b *testing.B) {
			cl := e.client(c.cred)
			for b.Loop() {
				if _, err := cl.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: r.ID}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
