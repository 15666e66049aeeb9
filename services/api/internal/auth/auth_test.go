package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errNotFound = errors.New("not found")

func TestAuthenticate(t *testing.T) {
	token, hash, err := NewToken("r.1")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, id string) (string, error) {
		if id == "r.1" {
			return hash, nil
		}
		return "", errNotFound
	}
	keys := Keys{API: []string{"api-key-0123456789"}, Operator: []string{"op-key-0123456789"}, APIKeysActForRunners: true}
	a := New(keys, lookup, errNotFound, func(string) bool { return true })
	runner := Principal{Role: RoleRunner, RunnerID: "r.1", tokenHash: hash}
	cases := []struct {
		authorization, apiKey string
		want                  Principal
		err                   error
	}{
		{"", "", Principal{}, nil},
		{"Bearer api-key-0123456789", "", Principal{Role: RoleAPIKey, RunnerKey: true}, nil},
		{"", "api-key-0123456789", Principal{Role: RoleAPIKey, RunnerKey: true}, nil},
		{"Bearer api-key-0123456789", "api-key-0123456789", Principal{Role: RoleAPIKey, RunnerKey: true}, nil},
		{"Bearer api-key-0123456789", "op-key-0123456789", Principal{}, ErrConflictingCredentials},
		{"bearer op-key-0123456789", "", Principal{Role: RoleOperator}, nil},
		{"", "op-key-0123456789", Principal{Role: RoleOperator}, nil},
		{"Bearer " + token, "", runner, nil},
		{"", token, runner, nil},
		{"", " " + token + " ", runner, nil},
		{"Bearer " + token + "x", "", Principal{}, ErrUnauthenticated},
		{"", token + "x", Principal{}, ErrUnauthenticated},
		{"Bearer r.2.abc", "", Principal{}, ErrUnauthenticated},
		{"Basic dXNlcjpwYXNz", "", Principal{}, ErrUnauthenticated},
		{"Basic dXNlcjpwYXNz", "api-key-0123456789", Principal{}, ErrUnauthenticated},
		{"Bearer ", "", Principal{}, ErrUnauthenticated},
		{"Bearer nodot", "", Principal{}, ErrUnauthenticated},
		{"", "nodot", Principal{}, ErrUnauthenticated},
	}
	for _, c := range cases {
		got, err := a.Authenticate(context.Background(), c.authorization, c.apiKey)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("%q / %q: got %+v, %v; want %+v, %v", c.authorization, c.apiKey, got, err, c.want, c.err)
		}
	}
	// RUNNER_AUTH=token: API keys stay keys, but act for no runner
	strict := New(Keys{API: keys.API, Operator: keys.Operator}, lookup, errNotFound, nil)
	if p, _ := strict.Authenticate(context.Background(), "Bearer api-key-0123456789", ""); p != (Principal{Role: RoleAPIKey}) || p.ActsFor("r.1") {
		t.Errorf("API key under RUNNER_AUTH=token = %+v", p)
	}
	// without operator keys the API keys are operator keys, and runner keys too
	b := New(Keys{API: keys.API, APIKeysActForRunners: true}, lookup, errNotFound, nil)
	if p, _ := b.Authenticate(context.Background(), "Bearer api-key-0123456789", ""); p.Role != RoleOperator || !p.RunnerKey {
		t.Errorf("API key without ADMIN_API_KEYS = %+v", p)
	}
	if off := New(Keys{}, lookup, errNotFound, nil); off.Enabled() {
		t.Error("auth on without keys")
	}
}

// TestPrincipalRules is the decision table the handlers ask: who acts for a
// runner, who may register which id, what a registration proves, and as
// whom a task is changed.
func TestPrincipalRules(t *testing.T) {
	own := Principal{Role: RoleRunner, RunnerID: "r1", tokenHash: "h1"}
	key := Principal{Role: RoleAPIKey, RunnerKey: true}
	strictKey := Principal{Role: RoleAPIKey}
	op := Principal{Role: RoleOperator}
	opKey := Principal{Role: RoleOperator, RunnerKey: true}
	anon := Principal{Role: RoleAnonymous}
	for _, c := range []struct {
		name       string
		p          Principal
		actsR1     bool
		actsR2     bool
		registerR2 bool
		claimR1    Claim
		patch      Actor // a status report on r1
		cancel     Actor // a cancel without epoch on r1
	}{
		{"own token", own, true, false, false, Claim{TokenHash: "h1"}, ActorRunner, ActorRunner},
		{"api key", key, true, true, true, Claim{AnyRunner: true}, ActorRunner, ActorRunner},
		{"api key, RUNNER_AUTH=token", strictKey, false, false, true, Claim{}, ActorNone, ActorNone},
		{"operator key", op, false, false, true, Claim{}, ActorOperator, ActorOperator},
		{"key that is both", opKey, true, true, true, Claim{AnyRunner: true}, ActorRunner, ActorOperator},
		{"auth off", anon, true, true, true, Claim{AnyRunner: true}, ActorRunner, ActorOperator},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.ActsFor("r1"); got != c.actsR1 {
				t.Errorf("ActsFor(r1) = %v", got)
			}
			if got := c.p.ActsFor("r2"); got != c.actsR2 {
				t.Errorf("ActsFor(r2) = %v", got)
			}
			if got := c.p.MayRegister("r2"); got != c.registerR2 {
				t.Errorf("MayRegister(r2) = %v", got)
			}
			if !c.p.MayRegister("r1") {
				t.Error("MayRegister(r1) = false")
			}
			if got := c.p.Claim("r1"); got != c.claimR1 {
				t.Errorf("Claim(r1) = %+v", got)
			}
			if got := c.p.Claim("r2"); got.TokenHash != "" {
				t.Errorf("Claim(r2) carries a token hash: %+v", got)
			}
			if got := c.p.TaskActor("r1", false); got != c.patch {
				t.Errorf("TaskActor(report) = %v", got)
			}
			if got := c.p.TaskActor("r1", true); got != c.cancel {
				t.Errorf("TaskActor(cancel) = %v", got)
			}
		})
	}
}

func TestPrincipalNeverShowsItsTokenHash(t *testing.T) {
	p := Principal{Role: RoleRunner, RunnerID: "r1", tokenHash: "secret-hash"}
	for _, out := range []string{fmt.Sprintf("%v %+v %s", p, p, p), p.LogValue().String()} {
		if strings.Contains(out, "secret-hash") || !strings.Contains(out, "runner(r1)") {
			t.Errorf("printed as %q", out)
		}
	}
}

func TestCredential(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'a'
	}
	for _, c := range []struct {
		authorization, apiKey, want string
		err                         error
	}{
		{"", "", "", nil},
		{"Bearer k", "", "k", nil},
		{"", "k", "k", nil},
		{"Bearer k", "k", "k", nil},
		{"Bearer k", "j", "", ErrConflictingCredentials},
		{"Token k", "", "", ErrUnauthenticated},
		{"", string(long), "", ErrUnauthenticated},
	} {
		got, err := Credential(c.authorization, c.apiKey)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Credential(%q, %q) = %q, %v", c.authorization, c.apiKey, got, err)
		}
	}
}
