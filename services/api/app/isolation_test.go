package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// isolationCase is how one route is tried with realm A's keys against realm
// B: the request that aims at B's resources, and the status each of A's
// keys must get. Every answer is also checked to carry no name or id of B.
type isolationCase struct {
	path, body string
	op, reg    int // wanted status for A's operator key and A's register key
	why        string
	// public routes take no key: the leak check does not apply (/metrics
	// is the infrastructure's, guarded by METRICS_TOKEN, and names runners)
	public bool
}

// TestRealmKeyAnswered404OnEveryRouteOfAnotherRealm takes the route list
// from the fiber app itself, so a route added without a case (and so
// without thinking about its realm check) fails this test.
func TestRealmKeyAnswered404OnEveryRouteOfAnotherRealm(t *testing.T) {
	e := start(t, authCfg)
	ctx := context.Background()
	op := e.client(opKey)
	for _, n := range []string{"alpha", "zeta-secret"} {
		if _, err := op.CreateRealm(ctx, wire.CreateRealmPayload{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	aOp, _ := op.IssueRealmKey(ctx, "alpha", "ops", wire.RealmRoleOperator)
	aReg, _ := op.IssueRealmKey(ctx, "alpha", "runners", wire.RealmRoleRegister)
	zKey, _ := op.IssueRealmKey(ctx, "zeta-secret", "zeta ops", wire.RealmRoleOperator)
	mine := e.register(aReg.Key, wire.RegisterRunnerPayload{RunnerID: "alpha-runner", Name: "mine"})
	theirs := e.register(opKey, wire.RegisterRunnerPayload{RunnerID: "zeta-runner-7", Name: "theirs", Realm: "zeta-secret"})
	task, _, err := op.Dispatch(ctx, theirs.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := op.Dispatch(ctx, mine.ID, wire.DispatchTaskPayload{Type: "echo"}, ""); err != nil {
		t.Fatal(err)
	}
	leaks := []string{"zeta-secret", theirs.ID, task.ID, zKey.ID}

	z, rid, tid := "zeta-secret", theirs.ID, task.ID
	cases := map[string]isolationCase{
		"GET /":        {"/", "", 200, 200, "public: the index of links", true},
		"GET /health":  {"/health", "", 200, 200, "public", true},
		"GET /ready":   {"/ready", "", 200, 200, "public", true},
		"GET /metrics": {"/metrics", "", 200, 200, "public: the infrastructure's, guarded by METRICS_TOKEN", true},
		"GET /admission": {"/admission?realm=" + z, "", 404, 404,
			"another realm's admission", false},
		"POST /version-check/:version": {"/version-check/1.0.0?realm=" + z, "", 404, 404, "another realm's policy", false},
		"GET /runners":                 {"/runners?realm=" + z, "", 404, 404, "another realm's listing", false},
		"GET /api/runners":             {"/api/runners?realm=" + z, "", 404, 404, "alias", false},
		"POST /runners/register": {"/runners/register", `{"name":"x","version":"1.0.0","realm":"` + z + `"}`, 404, 404,
			"registering into another realm", false},
		"POST /runners/heartbeat":          {"/runners/heartbeat", `{"runnerId":"` + rid + `"}`, 404, 404, "another realm's runner", false},
		"POST /runners/update":             {"/runners/update", `{"runnerId":"` + rid + `","endpoint":"http://10.0.0.9:1"}`, 404, 404, "", false},
		"POST /runners/offline":            {"/runners/offline", `{"runnerId":"` + rid + `"}`, 404, 404, "", false},
		"POST /runners/task/:tid/patch":    {"/runners/task/" + tid + "/patch", `{"status":"running"}`, 404, 404, "", false},
		"GET /runners/:id":                 {"/runners/" + rid, "", 404, 404, "", false},
		"DELETE /runners/:id":              {"/runners/" + rid, "", 404, 404, "", false},
		"GET /runners/:id/tasks":           {"/runners/" + rid + "/tasks", "", 404, 404, "", false},
		"POST /runners/:id/tasks":          {"/runners/" + rid + "/tasks", `{"type":"echo"}`, 404, 404, "", false},
		"GET /runners/:id/tasks/:tid":      {"/runners/" + rid + "/tasks/" + tid, "", 404, 404, "", false},
		"PATCH /runners/:id/tasks/:tid":    {"/runners/" + rid + "/tasks/" + tid, `{"status":"cancelled"}`, 404, 404, "", false},
		"GET /tasks":                       {"/tasks?realm=" + z, "", 404, 404, "", false},
		"POST /runners/:id/request-update": {"/runners/" + rid + "/request-update", `{"version":"2.0.0"}`, 404, 404, "", false},
		"POST /realms":                     {"/realms", `{"name":"new-one"}`, 403, 403, "only global operators create realms (the issue's 403)", false},
		"GET /realms":                      {"/realms", "", 200, 403, "lists only its realm: checked below", false},
		"GET /realms/:name":                {"/realms/" + z, "", 404, 404, "", false},
		"PATCH /realms/:name":              {"/realms/" + z, `{"description":"x"}`, 404, 404, "", false},
		"POST /realms/:name/drain":         {"/realms/" + z + "/drain", "", 404, 404, "", false},
		"POST /realms/:name/activate":      {"/realms/" + z + "/activate", "", 404, 404, "", false},
		"POST /realms/:name/close":         {"/realms/" + z + "/close", "", 404, 404, "", false},
		"DELETE /realms/:name":             {"/realms/" + z, "", 404, 404, "", false},
		"POST /realms/:name/keys":          {"/realms/" + z + "/keys", `{"name":"k","role":"operator"}`, 404, 404, "", false},
		"GET /realms/:name/keys":           {"/realms/" + z + "/keys", "", 404, 404, "", false},
		"DELETE /realms/:name/keys/:kid":   {"/realms/" + z + "/keys/" + zKey.ID, "", 404, 404, "", false},
	}
	// The console takes a session, not a key, and refuses realm keys at its
	// login (TestRealmKeyRefusedByTheConsole): its routes are not key routes.
	console := func(path string) bool { return path == "/ui" || strings.HasPrefix(path, "/ui/") }

	seen := map[string]bool{}
	for _, r := range e.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" || console(r.Path) {
			continue
		}
		name := r.Method + " " + r.Path
		if seen[name] {
			continue
		}
		seen[name] = true
		c, ok := cases[name]
		if !ok {
			t.Errorf("route %s has no isolation case: add one (and a realm check) to this table", name)
			continue
		}
		for _, k := range []struct {
			who, key string
			want     int
		}{{"realm operator key", aOp.Key, c.op}, {"realm register key", aReg.Key, c.reg}} {
			res := e.do(r.Method, c.path, k.key, c.body)
			if res.status != k.want {
				t.Errorf("%s with the %s: %d %s, want %d (%s)", name, k.who, res.status, res.body, k.want, c.why)
			}
			for _, l := range leaks {
				if !c.public && strings.Contains(string(res.body), l) {
					t.Errorf("%s with the %s leaks %q: %s", name, k.who, l, res.body)
				}
			}
		}
	}
	for name := range cases {
		if !seen[name] {
			t.Errorf("case %s names no registered route", name)
		}
	}

	// the lists show only the key's realm
	for _, path := range []string{"/runners", "/api/runners", "/tasks", "/realms", "/admission",
		"/tasks?runner=" + rid, "/runners?status=online"} {
		res := e.do("GET", path, aOp.Key, "")
		if res.status != 200 {
			t.Errorf("GET %s: %d %s", path, res.status, res.body)
		}
		for _, l := range leaks {
			if strings.Contains(string(res.body), l) {
				t.Errorf("GET %s leaks %q: %s", path, l, res.body)
			}
		}
	}
	if res := e.do("GET", "/runners", aOp.Key, ""); !strings.Contains(string(res.body), mine.ID) {
		t.Errorf("the realm's own runner is not listed: %s", res.body)
	}
	// the same routes on its own realm work
	if res := e.do("GET", "/realms/alpha", aOp.Key, ""); res.status != 200 {
		t.Errorf("own realm: %d %s", res.status, res.body)
	}
	if res := e.do("GET", "/runners/"+mine.ID+"/tasks", aOp.Key, ""); res.status != 200 {
		t.Errorf("own runner's tasks: %d %s", res.status, res.body)
	}
	// and the other realm's resources are untouched
	if got, err := op.GetRunner(ctx, theirs.ID); err != nil || got.Status != wire.RunnerOnline || got.Endpoint != "" {
		t.Errorf("the other realm's runner after the attempts: %+v %v", got, err)
	}
	if got, err := op.GetRealm(ctx, z); err != nil || got.State != wire.RealmActive || got.Description != "" {
		t.Errorf("the other realm after the attempts: %+v %v", got, err)
	}
}

// TestRealmKeyRefusedByTheConsole: the console shows every realm, so only
// global operator keys log in.
func TestRealmKeyRefusedByTheConsole(t *testing.T) {
	e := start(t, authCfg)
	ctx := context.Background()
	k, err := e.client(opKey).IssueRealmKey(ctx, wire.DefaultRealm, "ops", wire.RealmRoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	res := e.form("/ui/login", "", url.Values{"key": {k.Key}})
	if res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 {
		t.Errorf("console login with a realm key: %d, cookies %v; want 401 and none", res.StatusCode, res.Cookies())
	}
}
