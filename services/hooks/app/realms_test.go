package app

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestRealmWebhooksGoToTheirOwnRealm: two realms, each with its own
// receiver and secret. Each receiver gets only its realm's events (runner.*
// by the runner's realm, realm.* by the realm's name), signed with its own
// realm's secret and not with the other's or the global one; the global
// receiver gets every event, signed with the global secret; a URL listed
// both globally and by a realm gets one delivery per list entry.
func TestRealmWebhooksGoToTheirOwnRealm(t *testing.T) {
	_, rdb := redistest.Start(t)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	ctx := context.Background()
	global, recvA, recvB := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	secretA, secretB := "whsec_"+strings.Repeat("QUFB", 8), "whsec_"+strings.Repeat("QkJC", 8)
	for _, r := range []struct{ name, url, secret string }{
		// blue also lists the global receiver: that URL gets blue's events twice, once per list
		{"red", recvA.URL + "/red", secretA}, {"blue", recvB.URL + "/blue", secretB},
	} {
		urls := []string{r.url}
		if r.name == "blue" {
			urls = append(urls, global.URL+"/also-blue")
		}
		if err := s.CreateRealm(ctx, store.RealmWrite{Name: r.name, Policies: wire.RealmPolicies{WebhookURLs: urls},
			SetSecret: true, Secret: r.secret}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(global.URL + "/global")
	cfg.HookEvents = []string{"*"}
	start(t, cfg, rdb, options{})

	for _, id := range []string{"red-1", "blue-1"} {
		realm := strings.TrimSuffix(id, "-1")
		if _, _, err := s.Register(ctx, store.RegisterParams{ID: id, Version: "1.0.0", Realm: realm, Capacity: 1,
			TokenHash: "h", LeaseTTL: time.Minute, ActsForAnyRunner: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Deregister(ctx, id, 0, "done"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TransitionRealm(ctx, "red", wire.RealmDraining, "test"); err != nil {
		t.Fatal(err)
	}
	// red: registered, offline, draining; blue: registered, offline;
	// global: all five, plus blue's two again at /also-blue.
	testkit.Eventually(t, 10*time.Second, func() bool {
		return recvA.count() == 3 && recvB.count() == 2 && global.count() == 7
	}, "every delivery: red %d, blue %d, global %d", recvA.count(), recvB.count(), global.count())

	type got struct{ Realm, Type string }
	read := func(rc *receiver, secret, wrong string) []got {
		t.Helper()
		hits, _ := rc.snapshot()
		var out []got
		for _, h := range hits {
			if err := verify(secret, h); err != nil {
				t.Errorf("%s: %v", h.body, err)
			}
			if wrong != "" && verify(wrong, h) == nil {
				t.Errorf("%s is also signed with another secret", h.body)
			}
			var ev struct {
				Type string `json:"type"`
				Data struct {
					Runner *wire.EventRunner `json:"runner"`
					Realm  *struct {
						Name string `json:"name"`
					} `json:"realm"`
				} `json:"data"`
			}
			if err := json.Unmarshal(h.body, &ev); err != nil {
				t.Fatal(err)
			}
			g := got{Type: ev.Type}
			if ev.Data.Runner != nil {
				g.Realm = ev.Data.Runner.Realm
			} else if ev.Data.Realm != nil {
				g.Realm = ev.Data.Realm.Name
			}
			out = append(out, g)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Realm+out[i].Type < out[j].Realm+out[j].Type })
		return out
	}
	wantRed := []got{{"red", wire.EventRealmDraining}, {"red", wire.EventRunnerOffline}, {"red", wire.EventRunnerRegistered}}
	wantBlue := []got{{"blue", wire.EventRunnerOffline}, {"blue", wire.EventRunnerRegistered}}
	if d := cmp.Diff(wantRed, read(recvA, secretA, secretB)); d != "" {
		t.Errorf("red's receiver (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantBlue, read(recvB, secretB, secretA)); d != "" {
		t.Errorf("blue's receiver (-want +got):\n%s", d)
	}
	hits, _ := global.snapshot()
	var atGlobal, atAlsoBlue int
	for _, h := range hits {
		// /also-blue is signed with blue's secret, /global with the global one
		if verify(testSecret, h) == nil {
			atGlobal++
		} else if verify(secretB, h) == nil {
			atAlsoBlue++
		} else {
			t.Errorf("global receiver: %s signed with neither secret", h.body)
		}
	}
	if atGlobal != 5 || atAlsoBlue != 2 {
		t.Errorf("global receiver: %d signed globally (want 5), %d with blue's secret (want 2)", atGlobal, atAlsoBlue)
	}
}
