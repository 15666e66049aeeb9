package app_test

import (
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The heartbeat checks a runner token inside its own script call; every
// answer that would come before the script still waits for the token, so a
// wrong token is 401 whatever else is wrong with the request, and a right
// one gets the answer its request deserves.
func TestHeartbeatTokenCheckedInTheScript(t *testing.T) {
	e := start(t, authCfg)
	own := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "own"})
	other := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "other"})
	forged := "own.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	ghost := "ghost.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hb := mustJSON(wire.HeartbeatPayload{RunnerID: "own", LeaseEpoch: own.LeaseEpoch})
	for _, c := range []struct {
		name, cred, body string
		want             int
	}{
		{"right token", own.Token, hb, 200},
		{"right token, runner id left out", own.Token, `{}`, 200},
		{"forged token", forged, hb, 401},
		{"token of no runner", ghost, `{"runnerId":"ghost"}`, 401},
		{"forged token, body not JSON", forged, `{"runnerId":`, 401},
		{"right token, body not JSON", own.Token, `{"runnerId":`, 400},
		{"forged token, another runner's id", forged, `{"runnerId":"other"}`, 401},
		{"right token, another runner's id", own.Token, `{"runnerId":"other"}`, 403},
		{"forged token, invalid field", forged, `{"runnerId":"own","status":"dancing"}`, 401},
		{"right token, invalid field", own.Token, `{"runnerId":"own","status":"dancing"}`, 422},
		{"forged token, stale epoch", forged, `{"runnerId":"own","leaseEpoch":999}`, 401},
		{"right token, stale epoch", own.Token, `{"runnerId":"own","leaseEpoch":999}`, 409},
		{"API key acting for the runner (RUNNER_AUTH default)", apiKey, hb, 200},
		{"another runner's token", other.Token, hb, 403},
	} {
		r := e.do("POST", "/runners/heartbeat", c.cred, c.body)
		if r.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.want)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
	// An offline runner keeps its token hash: its token gets 409 (register
	// again), as when the token was looked up first.
	if r := e.do("POST", "/runners/offline", own.Token, `{"runnerId":"own"}`); r.status != 200 {
		t.Fatalf("offline: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/runners/heartbeat", own.Token, hb); r.status != 409 {
		t.Fatalf("heartbeat of an offline runner: %d %s", r.status, r.body)
	}
}
