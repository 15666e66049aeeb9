package app_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestRealmPoliciesReachLeasesAndAdmission: a realm's leaseTtlMs and
// heartbeatIntervalMs reach the registration reply, the lease in Redis and
// the heartbeat reply; maxRunners caps the realm alone and /admission
// reports it; the webhook secret is never returned.
func TestRealmPoliciesReachLeasesAndAdmission(t *testing.T) {
	e := start(t, authCfg)
	ctx := context.Background()
	op := e.client(opKey)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	r, err := op.CreateRealm(ctx, wire.CreateRealmPayload{Name: "short", Policies: &wire.RealmPolicies{
		LeaseTTLMs: ptr(int64(4000)), HeartbeatIntervalMs: ptr(int64(1000)), MaxRunners: ptr(1), WebhookSecret: secret,
	}})
	if err != nil || !r.WebhookSecretSet || r.Policies.WebhookSecret != "" {
		t.Fatalf("create: %+v %v", r, err)
	}
	if b := e.do("GET", "/realms/short", opKey, "").body; strings.Contains(string(b), secret) {
		t.Fatal("the webhook secret in GET")
	}
	reg := e.register(apiKey, wire.RegisterRunnerPayload{Name: "s1", Realm: "short"})
	if reg.LeaseTTLMs != 4000 || reg.HeartbeatIntervalMs != 1000 {
		t.Fatalf("registration reply lease %d interval %d, want the realm's 4000/1000", reg.LeaseTTLMs, reg.HeartbeatIntervalMs)
	}
	if pttl := e.rdb.PTTL(ctx, store.LeaseKey(reg.ID)).Val(); pttl <= 0 || pttl > 4000*time.Millisecond {
		t.Fatalf("lease PTTL %s, want at most 4 s", pttl)
	}
	hb, err := e.client(reg.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID})
	if err != nil || hb.HeartbeatIntervalMs != 1000 || time.Until(hb.LeaseExpiresAt) > 4*time.Second {
		t.Fatalf("heartbeat %+v %v", hb, err)
	}
	// the default realm keeps the global settings
	def := e.register(apiKey, wire.RegisterRunnerPayload{Name: "d1"})
	if def.LeaseTTLMs != e.cfg.LeaseTTLMs || def.Realm != wire.DefaultRealm {
		t.Fatalf("default realm: %+v", def)
	}
	// maxRunners 1: the realm is full, the others are not
	_, err = e.client(apiKey).Register(ctx, wire.RegisterRunnerPayload{Name: "s2", Version: "1.0.0", Realm: "short"})
	wantProblem(t, err, 503, problem.TypeRealmFull)
	if a, err := op.RealmAdmission(ctx, "short"); err != nil || a.Admitting || a.Reason != "realm_max_runners" {
		t.Errorf("admission of the full realm: %+v %v", a, err)
	}
	if a, err := op.RealmAdmission(ctx, wire.DefaultRealm); err != nil || !a.Admitting {
		t.Errorf("admission of the default realm: %+v %v", a, err)
	}
	e.register(apiKey, wire.RegisterRunnerPayload{Name: "d2"})
	// PATCH merges; null goes back to the global setting
	p, err := op.PatchRealm(ctx, "short", ptr("patched"), map[string]any{"maxRunners": nil, "leaseTtlMs": 5000})
	if err != nil || p.Description != "patched" || p.Policies.MaxRunners != nil || *p.Policies.LeaseTTLMs != 5000 ||
		*p.Policies.HeartbeatIntervalMs != 1000 || !p.WebhookSecretSet {
		t.Fatalf("patch: %+v %v", p, err)
	}
	if s2 := e.register(apiKey, wire.RegisterRunnerPayload{Name: "s2", Realm: "short"}); s2.LeaseTTLMs != 5000 {
		t.Fatalf("after the patch: lease %d", s2.LeaseTTLMs)
	}
	_, err = op.PatchRealm(ctx, "short", nil, map[string]any{"leaseTtlMs": "soon"})
	wantProblem(t, err, 422, problem.TypeValidation)
	_, err = op.PatchRealm(ctx, "short", nil, map[string]any{"noSuchPolicy": 1})
	wantProblem(t, err, 422, problem.TypeValidation)
}

// TestRegistrationStormAdmittedAtTheRealmRate registers 5,000 runners into
// one realm at once, each client honouring Retry-After: every one is
// admitted, the only refusals are 429 with a Retry-After, and no second
// admits more than the bucket allows (rate + burst).
func TestRegistrationStormAdmittedAtTheRealmRate(t *testing.T) {
	const (
		runners = 5000
		rate    = 800
		burst   = 100
		workers = 1500
	)
	e := start(t, authCfg, func(c *config.API) {
		c.RegisterRate, c.RegisterBurst = rate, burst
		c.MaxInflight = 0 // the storm meets the bucket, not the overload limiter
	})
	ctx := context.Background()
	if _, err := e.client(opKey).CreateRealm(ctx, wire.CreateRealmPayload{Name: "storm"}); err != nil {
		t.Fatal(err)
	}
	cl := e.client(apiKey)
	var (
		next, refused atomic.Int64
		mu            sync.Mutex
		admitted      []time.Time
		retryAfter    = map[time.Duration]int{}
		other         []error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= runners {
					return
				}
				for {
					_, err := cl.Register(ctx, wire.RegisterRunnerPayload{Name: "s" + strconv.FormatInt(i, 10), Version: "1.0.0", Realm: "storm"})
					if err == nil {
						mu.Lock()
						admitted = append(admitted, time.Now())
						mu.Unlock()
						break
					}
					var ce *client.Error
					if !asClientError(err, &ce) || ce.Status != 429 || ce.Problem.Type != problem.TypeRegisterRateLimited || ce.RetryAfter <= 0 {
						mu.Lock()
						other = append(other, err)
						mu.Unlock()
						return
					}
					refused.Add(1)
					mu.Lock()
					retryAfter[ce.RetryAfter]++
					mu.Unlock()
					time.Sleep(ce.RetryAfter)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if len(other) > 0 {
		t.Fatalf("%d errors other than 429, first: %v", len(other), other[0])
	}
	if len(admitted) != runners {
		t.Fatalf("admitted %d of %d", len(admitted), runners)
	}
	// the bucket: in any one-second window at most rate + burst admissions
	sortTimes(admitted)
	worst := 0
	for i, j := 0, 0; i < len(admitted); i++ {
		for admitted[i].Sub(admitted[j]) >= time.Second {
			j++
		}
		worst = max(worst, i-j+1)
	}
	// the client-side timestamps carry some scheduling jitter: 10 % slack
	if limit := (rate + burst) * 11 / 10; worst > limit {
		t.Errorf("%d admissions within one second, want at most %d (rate %d + burst %d)", worst, limit, rate, burst)
	}
	minTook := time.Duration(float64(runners-burst)/rate*float64(time.Second)) * 9 / 10
	if took < minTook {
		t.Errorf("the storm was admitted in %s, faster than the rate allows (%s)", took, minTook)
	}
	if len(retryAfter) < 2 {
		t.Errorf("Retry-After values %v: want them jittered", retryAfter)
	}
	if n, _ := e.rdb.ZCard(ctx, store.RealmLiveKey("storm")).Result(); n != runners {
		t.Errorf("live runners of the realm: %d", n)
	}
	t.Logf("%d runners admitted in %s (%.0f/s; rate %d, burst %d); %d refusals with 429, Retry-After %v; busiest second %d",
		runners, took.Round(time.Millisecond), float64(runners)/took.Seconds(), rate, burst, refused.Load(), retryAfter, worst)
}

func sortTimes(ts []time.Time) { slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) }) }
