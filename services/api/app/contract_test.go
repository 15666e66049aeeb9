package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/openapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// notInContract are the registered route prefixes the contract leaves out,
// with why.
var notInContract = map[string]string{
	"/ui": "the web console: HTML pages and forms behind a session cookie and CSRF token (docs/console.md), not an API",
}

// roles are the security roles openapi.yaml's info.description defines.
var roles = []string{"any", "register", "runner", "operator", "metrics"}

func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML())
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// contractRoutes lists "METHOD /path" of every operation of service in doc:
// a path item's own servers say which services serve it, else the
// top-level ones.
func contractRoutes(doc *openapi3.T, service string) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		servers := doc.Servers
		if len(item.Servers) > 0 {
			servers = item.Servers
		}
		if !slices.ContainsFunc(servers, func(s *openapi3.Server) bool { return s.Extensions["x-service"] == service }) {
			continue
		}
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestEveryRouteIsInTheContract: every route the api registers is in
// openapi.yaml and every api route there is registered (method and path
// template, fiber's :id as {id}).
func TestEveryRouteIsInTheContract(t *testing.T) {
	_, rdb := redistest.Start(t)
	s, err := app.New(config.DefaultAPI(), store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
routes:
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == http.MethodHead { // fiber adds one to every GET
			continue
		}
		for prefix := range notInContract {
			if r.Path == prefix || strings.HasPrefix(r.Path, prefix+"/") {
				continue routes
			}
		}
		registered = append(registered, r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(registered)
	registered = slices.Compact(registered)
	doc := loadContract(t)
	documented := contractRoutes(doc, "api")
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			method, path, _ := strings.Cut(r, " ")
			t.Errorf("the api registers %s but openapi.yaml does not document it: add paths.%q.%s", r, path, strings.ToLower(method))
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("openapi.yaml documents %s for the api, which does not register it: remove it, or give the path its servers (sweeper, hooks)", r)
		}
	}
	// Every operation says who may call it, in the roles the document defines.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil {
				t.Errorf("%s %s has no security: say who may call it (security: [] when anyone)", method, path)
				continue
			}
			for _, req := range *op.Security {
				for scheme, rs := range req {
					for _, role := range rs {
						if !slices.Contains(roles, role) {
							t.Errorf("%s %s: role %q of %s is not one of %v", method, path, role, scheme, roles)
						}
					}
				}
			}
		}
	}
}

// contractCheck is a RoundTripper that validates every request and answer
// against openapi.yaml: the answer always, the request when the server took
// it (status < 400: a request the server accepts must be one the contract
// allows). It records which operations and statuses it saw.
type contractCheck struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/template" and "METHOD /path/template STATUS"
}

// GET / answers a browser with text/html (a string in openapi.yaml), which
// kin-openapi has no decoder for: read it as the plain text it is.
func init() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder) }

func newContractCheck(t *testing.T, base string, next http.RoundTripper) *contractCheck {
	doc := loadContract(t)
	doc.Servers = openapi3.Servers{{URL: base}}
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contractCheck{t: t, router: r, next: next, seen: map[string]bool{}}
}

func (c *contractCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return c.next.RoundTrip(req)
	}
	res, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))

	op := req.Method + " " + route.Path
	c.mu.Lock()
	c.seen[op] = true
	c.seen[fmt.Sprintf("%s %d", op, res.StatusCode)] = true
	c.mu.Unlock()

	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if res.StatusCode < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Errorf("%s %s (answered %d): the request breaks openapi.yaml: %v", req.Method, req.URL, res.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(resBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s: the %d answer breaks openapi.yaml: %v\nbody: %.400s", req.Method, req.URL, res.StatusCode, err, resBody)
	}
	return res, nil
}

// TestContractFlow drives a real api through a fleet's life (register,
// heartbeat, dispatch, long polls, task updates, listings, updates,
// deregistration, a realm's life: create, keys, registration with a realm
// key, drain, activate, close, delete) and its refusals (400, 401, 403, 404
// with a realm key's isolation, 409, 413, 422, 429, 503), and validates every request and answer against openapi.yaml. Every
// api operation of the document must be exercised.
func TestContractFlow(t *testing.T) {
	e := start(t, authCfg, func(c *config.API) {
		c.MaxRunners = 2
		c.BodyLimitBytes = 8 << 10
	})
	check := newContractCheck(t, e.base, e.http.Transport)
	e.http = &http.Client{Timeout: e.http.Timeout, Transport: check}

	want := func(r resp, status int, typ string) resp {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		if typ != "" {
			if p := r.problem(t); p.Type != typ {
				t.Fatalf("problem type %q, want %q", p.Type, typ)
			}
		}
		return r
	}
	decode := func(r resp, v any) {
		t.Helper()
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
	}

	// the index, probes and the contract itself
	want(e.do("GET", "/", "", ""), 200, "")
	if page := want(e.do("GET", "/", "", "", "Accept", "text/html"), 200, ""); !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / for a browser: Content-Type %q", page.header.Get("Content-Type"))
	}
	want(e.do("GET", "/health", "", ""), 200, "")
	want(e.do("GET", "/ready", "", ""), 200, "")
	want(e.do("GET", "/metrics", "", ""), 200, "")
	doc := want(e.do("GET", "/openapi.json", "", ""), 200, "")
	if js, _ := openapi.JSON(); !bytes.Equal(doc.body, js) {
		t.Error("GET /openapi.json is not the embedded document")
	}
	want(e.do("GET", "/admission", "", "", "X-API-Key", apiKey), 200, "")
	want(e.do("POST", "/version-check/1.2.3", apiKey, ""), 200, "")

	// registration
	var r1 wire.RegisterRunnerResponse
	decode(want(e.do("POST", "/runners/register", apiKey, mustJSON(wire.RegisterRunnerPayload{
		Name: "build-1", Version: "1.2.3", Realm: "eu", Labels: map[string]string{"pool": "gpu"}, Capacity: 2,
		Endpoint: "http://127.0.0.1:9000"})), 201, ""), &r1)
	want(e.do("POST", "/runners/register", opKey, mustJSON(wire.RegisterRunnerPayload{RunnerID: r1.ID, Name: "x", Version: "1"})),
		409, problem.TypeRunnerLive)
	want(e.do("POST", "/runners/register", apiKey, `{"name":`), 400, problem.TypeMalformedRequest)
	want(e.do("POST", "/runners/register", apiKey, `{"name":"x","version":"1","capacity":-1}`), 422, problem.TypeValidation)
	want(e.do("POST", "/runners/register", apiKey, `{"name":"`+strings.Repeat("x", 9<<10)+`"}`), 413, problem.TypePayloadTooLarge)
	var r2 wire.RegisterRunnerResponse
	decode(want(e.do("POST", "/runners/register", apiKey, `{"name":"build-2","version":"1.2.3"}`), 201, ""), &r2)
	full := want(e.do("POST", "/runners/register", apiKey, `{"name":"build-3","version":"1.2.3"}`), 503, problem.TypeFleetFull)
	if full.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// heartbeats
	tok := r1.Token
	want(e.do("POST", "/runners/heartbeat", tok, mustJSON(wire.HeartbeatPayload{LeaseEpoch: r1.LeaseEpoch, Status: wire.RunnerIdle,
		Resources: &wire.SystemResources{CPUPercent: 12.5, MemoryPercent: 40, LoadAvg: []float64{0.5, 0.4, 0.3}}, Version: "1.2.3"})), 200, "")
	want(e.do("POST", "/runners/heartbeat", tok, mustJSON(wire.HeartbeatPayload{LeaseEpoch: r1.LeaseEpoch + 7})), 409, problem.TypeStaleEpoch)
	want(e.do("POST", "/runners/heartbeat", apiKey, `{"runnerId":"nobody"}`), 404, problem.TypeRunnerNotFound)
	want(e.do("POST", "/runners/heartbeat", tok, `[]`), 400, problem.TypeMalformedRequest)
	want(e.do("POST", "/runners/heartbeat", tok, "{}", "X-API-Key", apiKey), 400, problem.TypeConflictingCredentials)
	want(e.do("POST", "/runners/heartbeat", r2.Token, mustJSON(wire.HeartbeatPayload{RunnerID: r1.ID})), 403, problem.TypeForbidden)

	// dispatch, with an Idempotency-Key
	tasks := "/runners/" + r1.ID + "/tasks"
	var task wire.RunnerTask
	body := `{"type":"shell","payload":{"command":"echo hi"},"timeoutMs":60000}`
	decode(want(e.do("POST", tasks, opKey, body, "Idempotency-Key", "k-1"), 201, ""), &task)
	want(e.do("POST", tasks, opKey, body, "Idempotency-Key", "k-1"), 200, "")
	want(e.do("POST", tasks, opKey, `{"type":"shell"}`, "Idempotency-Key", "k-1"), 422, problem.TypeIdempotencyKeyReused)
	want(e.do("POST", tasks, tok, body), 403, problem.TypeForbidden)
	want(e.do("POST", "/runners/nobody/tasks", opKey, body), 404, problem.TypeRunnerNotFound)

	// listings and long polls
	want(e.do("GET", tasks+"?status=pending,running&limit=10", tok, ""), 200, "")
	want(e.do("GET", tasks+"?task="+task.ID+"&status=succeeded,failed,cancelled&wait=50ms", tok, ""), 200, "")
	want(e.do("GET", tasks+"?task=nope", tok, ""), 404, problem.TypeTaskNotFound)
	want(e.do("GET", tasks+"?wait=soon", tok, ""), 422, problem.TypeValidation)
	want(e.do("GET", tasks+"/"+task.ID, tok, ""), 200, "")
	want(e.do("GET", tasks+"/nope", opKey, ""), 404, problem.TypeTaskNotFound)
	var hb wire.HeartbeatResponse
	decode(want(e.do("POST", "/runners/heartbeat", tok, mustJSON(wire.HeartbeatPayload{LeaseEpoch: r1.LeaseEpoch})), 200, ""), &hb)
	if len(hb.Tasks) != 1 || hb.Tasks[0].ID != task.ID {
		t.Fatalf("heartbeat tasks %+v, want %s", hb.Tasks, task.ID)
	}

	// task updates
	patch := tasks + "/" + task.ID
	want(e.do("PATCH", patch, tok, mustJSON(wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: r1.LeaseEpoch})), 200, "")
	want(e.do("PATCH", patch, tok, mustJSON(wire.TaskUpdatePayload{Status: wire.TaskPending, LeaseEpoch: r1.LeaseEpoch})), 409, problem.TypeInvalidTransition)
	want(e.do("POST", "/runners/task/"+task.ID+"/patch", tok, mustJSON(wire.TaskUpdatePayload{Status: wire.TaskSucceeded,
		Result: []byte(`{"exitCode":0,"stdout":"hi\n"}`), LeaseEpoch: r1.LeaseEpoch})), 200, "")
	want(e.do("PATCH", patch, tok, `{"status":"failed","error":"late"}`), 409, problem.TypeTaskTerminal)
	want(e.do("PATCH", patch, tok, `{"status":"done"}`), 422, problem.TypeValidation)
	second := want(e.do("POST", tasks, opKey, `{"type":"shell","payload":{"command":"sleep 100"}}`), 201, "")
	var t2 wire.RunnerTask
	decode(second, &t2)
	want(e.do("PATCH", tasks+"/"+t2.ID, opKey, `{"status":"cancelled"}`), 200, "")

	// operator listings, with pagination
	var page wire.RunnerList
	decode(want(e.do("GET", "/runners?limit=1&status=online", opKey, ""), 200, ""), &page)
	if page.NextCursor == "" {
		t.Fatal("two runners, limit 1: no nextCursor")
	}
	want(e.do("GET", "/runners?limit=1&cursor="+page.NextCursor, opKey, ""), 200, "")
	want(e.do("GET", "/api/runners?realm=eu", opKey, ""), 200, "")
	want(e.do("GET", "/runners?limit=0", opKey, ""), 422, problem.TypeValidation)
	want(e.do("GET", "/runners", "", ""), 401, problem.TypeUnauthorized)
	want(e.do("GET", "/runners", tok, ""), 403, problem.TypeForbidden)
	var tl wire.TaskList
	decode(want(e.do("GET", "/tasks?limit=1&type=shell", opKey, ""), 200, ""), &tl)
	want(e.do("GET", "/tasks?limit=1&cursor="+tl.NextCursor+"&runner="+r1.ID, opKey, ""), 200, "")
	want(e.do("GET", "/tasks?status=succeeded", opKey, ""), 200, "")
	want(e.do("GET", "/tasks", tok, ""), 403, problem.TypeForbidden)

	// the runner, its update and endpoint
	want(e.do("GET", "/runners/"+r1.ID, tok, ""), 200, "")
	want(e.do("GET", "/runners/nobody", opKey, ""), 404, problem.TypeRunnerNotFound)
	want(e.do("POST", "/runners/"+r1.ID+"/request-update", opKey, `{"version":"1.3.0","command":"apt-get install -y ratatoskr"}`), 200, "")
	want(e.do("POST", "/runners/"+r1.ID+"/request-update", opKey, `{}`), 422, problem.TypeValidation)
	decode(want(e.do("POST", "/runners/heartbeat", tok, mustJSON(wire.HeartbeatPayload{LeaseEpoch: r1.LeaseEpoch})), 200, ""), &hb)
	if hb.PendingUpdate == nil {
		t.Error("no pendingUpdate on the heartbeat")
	}
	want(e.do("POST", "/runners/update", tok, `{"endpoint":"http://127.0.0.1:9001"}`), 200, "")

	// deregistration and deletion
	want(e.do("DELETE", "/runners/"+r1.ID, opKey, ""), 409, problem.TypeRunnerNotOffline)
	want(e.do("POST", "/runners/offline", tok, `{"reason":"maintenance"}`), 200, "")
	want(e.do("POST", "/runners/heartbeat", tok, "{}"), 409, problem.TypeRunnerOffline)
	want(e.do("POST", tasks, opKey, body), 409, problem.TypeRunnerOffline)
	want(e.do("DELETE", "/runners/"+r1.ID, opKey, ""), 204, "")
	want(e.do("DELETE", "/runners/"+r1.ID, opKey, ""), 404, problem.TypeRunnerNotFound)
	want(e.do("POST", "/runners/offline", r2.Token, "{}"), 200, "") // MAX_RUNNERS is 2: room for the realm's runners

	// realms: create, keys, registration with a realm key, policies
	var realm wire.Realm
	decode(want(e.do("POST", "/realms", opKey, `{"name":"ci","description":"CI runners",`+
		`"policies":{"leaseTtlMs":20000,"heartbeatIntervalMs":5000,"registerRate":0.001,"registerBurst":1}}`), 201, ""), &realm)
	if realm.State != wire.RealmActive {
		t.Fatalf("new realm %+v, want active", realm)
	}
	want(e.do("POST", "/realms", opKey, `{"name":"ci"}`), 409, problem.TypeRealmExists)
	want(e.do("POST", "/realms", opKey, `{"name":"Not_A_Label"}`), 422, problem.TypeValidation)
	want(e.do("POST", "/realms", opKey, `{"name":"other"}`), 201, "")
	var opRK, regRK wire.RealmKey
	decode(want(e.do("POST", "/realms/ci/keys", opKey, `{"name":"ci ops","role":"operator"}`), 201, ""), &opRK)
	decode(want(e.do("POST", "/realms/ci/keys", opKey, `{"name":"ci runners","role":"register"}`), 201, ""), &regRK)
	want(e.do("POST", "/realms/ci/keys", opKey, `{"name":"x","role":"root"}`), 422, problem.TypeValidation)
	want(e.do("POST", "/realms/nowhere/keys", opKey, `{"name":"x","role":"operator"}`), 404, problem.TypeRealmNotFound)
	var rr wire.RegisterRunnerResponse
	decode(want(e.do("POST", "/runners/register", regRK.Key, `{"name":"ci-1","version":"1.2.3","realm":"ci"}`), 201, ""), &rr)
	if rr.Realm != "ci" || rr.LeaseTTLMs != 20000 || rr.HeartbeatIntervalMs != 5000 {
		t.Errorf("registered into ci: realm %q, lease %d ms, interval %d ms; want ci, 20000, 5000", rr.Realm, rr.LeaseTTLMs, rr.HeartbeatIntervalMs)
	}
	// the bucket (burst 1, a token every 1000 s) is empty now
	limited := want(e.do("POST", "/runners/register", regRK.Key, `{"name":"ci-2","version":"1.2.3"}`), 429, problem.TypeRegisterRateLimited)
	if limited.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	want(e.do("POST", "/runners/register", regRK.Key, `{"name":"ci-2","version":"1.2.3","realm":"other"}`), 404, problem.TypeRealmNotFound)

	// listings and reads, and a realm key's 404 on another realm
	var rl wire.RealmList
	decode(want(e.do("GET", "/realms?limit=1", opKey, ""), 200, ""), &rl)
	if len(rl.Realms) != 1 || rl.NextCursor == "" {
		t.Fatalf("realms, limit 1: %+v", rl)
	}
	want(e.do("GET", "/realms?cursor="+rl.NextCursor, opKey, ""), 200, "")
	decode(want(e.do("GET", "/realms", opRK.Key, ""), 200, ""), &rl)
	if len(rl.Realms) != 1 || rl.Realms[0].Name != "ci" {
		t.Errorf("a realm operator key lists %+v, want ci alone", rl.Realms)
	}
	decode(want(e.do("GET", "/realms/ci", opRK.Key, ""), 200, ""), &realm)
	if realm.Runners["online"] != 1 {
		t.Errorf("realm ci counts %v, want one online runner", realm.Runners)
	}
	want(e.do("GET", "/realms/other", opRK.Key, ""), 404, problem.TypeRealmNotFound)
	want(e.do("GET", "/realms/ci", regRK.Key, ""), 403, problem.TypeForbidden)
	want(e.do("GET", "/realms/other/keys", regRK.Key, ""), 404, problem.TypeRealmNotFound)
	want(e.do("GET", "/runners?realm=other", opRK.Key, ""), 404, problem.TypeRealmNotFound)
	want(e.do("GET", "/runners?realm=ci", opRK.Key, ""), 200, "")
	want(e.do("GET", "/tasks?realm=ci", opRK.Key, ""), 200, "")
	want(e.do("GET", "/admission?realm=ci", opRK.Key, ""), 200, "")
	want(e.do("POST", "/version-check/1.2.3?realm=ci", apiKey, ""), 200, "")
	want(e.do("POST", "/version-check/1.2.3?realm=Bad_Name", apiKey, ""), 422, problem.TypeValidation)
	want(e.do("GET", "/runners/"+rr.ID, opRK.Key, ""), 200, "")
	want(e.do("GET", "/runners/"+r2.ID, opRK.Key, ""), 404, problem.TypeRunnerNotFound)
	var kl wire.RealmKeyList
	decode(want(e.do("GET", "/realms/ci/keys", opRK.Key, ""), 200, ""), &kl)
	if len(kl.Keys) != 2 || kl.Keys[0].Key != "" || kl.Keys[1].Key != "" {
		t.Errorf("realm keys %+v: want two, without their material", kl.Keys)
	}
	want(e.do("PATCH", "/realms/ci", opRK.Key, `{"policies":{"webhookUrls":["https://127.0.0.1:9/ci"]}}`), 200, "")
	want(e.do("PATCH", "/realms/ci", opRK.Key, `{"policies":{"maxRunners":5}}`), 403, problem.TypeForbidden)
	want(e.do("PATCH", "/realms/ci", opKey, `{"description":"CI","policies":{"registerRate":null,"maxRunners":5}}`), 200, "")
	want(e.do("PATCH", "/realms/ci", opKey, `{"policies":{"leaseTtlMs":1}}`), 422, problem.TypeValidation)

	// the lifecycle: drain, activate, close, delete
	dispatchCI := "/runners/" + rr.ID + "/tasks"
	rhb := mustJSON(wire.HeartbeatPayload{LeaseEpoch: rr.LeaseEpoch})
	want(e.do("POST", "/realms/ci/drain", opRK.Key, ""), 200, "")
	want(e.do("POST", "/realms/ci/drain", opRK.Key, ""), 409, problem.TypeRealmTransition)
	decode(want(e.do("POST", "/runners/heartbeat", rr.Token, rhb), 200, ""), &hb)
	if !hb.Drain || hb.Deregister {
		t.Errorf("heartbeat in a draining realm: drain %v, deregister %v; want true, false", hb.Drain, hb.Deregister)
	}
	want(e.do("POST", dispatchCI, opRK.Key, body), 409, problem.TypeRealmDraining)
	want(e.do("POST", "/runners/register", opKey, `{"name":"ci-3","version":"1","realm":"ci"}`), 409, problem.TypeRealmDraining)
	want(e.do("POST", "/realms/ci/activate", opRK.Key, ""), 200, "")
	want(e.do("POST", "/realms/ci/activate", opRK.Key, ""), 409, problem.TypeRealmTransition)
	want(e.do("POST", dispatchCI, opRK.Key, body), 201, "")
	want(e.do("DELETE", "/realms/ci", opKey, ""), 409, problem.TypeRealmTransition)
	want(e.do("POST", "/realms/ci/close", opRK.Key, ""), 200, "")
	decode(want(e.do("POST", "/runners/heartbeat", rr.Token, rhb), 200, ""), &hb)
	if !hb.Deregister {
		t.Error("heartbeat in a closed realm without deregister")
	}
	want(e.do("POST", dispatchCI, opRK.Key, body), 409, problem.TypeRealmClosed)
	want(e.do("DELETE", "/realms/ci", opRK.Key, ""), 403, problem.TypeForbidden)
	want(e.do("DELETE", "/realms/ci", opKey, ""), 409, problem.TypeRealmHasLiveRunners)
	want(e.do("DELETE", "/realms/default", opKey, ""), 409, problem.TypeDefaultRealm)
	want(e.do("POST", "/runners/offline", rr.Token, `{"reason":"realm closed"}`), 200, "")
	want(e.do("DELETE", "/realms/ci/keys/"+regRK.ID, opRK.Key, ""), 204, "")
	want(e.do("DELETE", "/realms/ci/keys/"+regRK.ID, opRK.Key, ""), 404, problem.TypeRealmKeyNotFound)
	want(e.do("DELETE", "/realms/ci", opKey, ""), 204, "")
	want(e.do("GET", "/realms/ci", opKey, ""), 404, problem.TypeRealmNotFound)

	// Every event the flow wrote (runner.* and realm.*) is the webhook body
	// the contract describes.
	msgs, err := e.rdb.XRange(context.Background(), store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	eventSchema := loadContract(t).Components.Schemas["Event"].Value
	types := map[string]bool{}
	for _, m := range msgs {
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil {
			t.Fatal(err)
		}
		types[ev.Type] = true
		b, _ := json.Marshal(ev)
		var v any
		_ = json.Unmarshal(b, &v)
		if err := eventSchema.VisitJSON(v); err != nil {
			t.Errorf("the %s event breaks openapi.yaml's Event: %v\nbody: %s", ev.Type, err, b)
		}
	}
	for _, typ := range []string{wire.EventRunnerRegistered, wire.EventRunnerOffline, "realm.draining", "realm.active", "realm.closed", "realm.deleted"} {
		if !types[typ] {
			t.Errorf("the flow wrote no %s event (it wrote %v)", typ, types)
		}
	}

	// Every api operation of the contract was exercised.
	for _, op := range contractRoutes(loadContract(t), "api") {
		if !check.seen[op] {
			t.Errorf("openapi.yaml documents %s, which TestContractFlow never calls: add a step for it", op)
		}
	}
}
