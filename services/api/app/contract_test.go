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
// deregistration) and its refusals (400, 401, 403, 404, 409, 413, 422,
// 503), and validates every request and answer against openapi.yaml. Every
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

	// probes and the contract itself
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

	// Every api operation of the contract was exercised.
	for _, op := range contractRoutes(loadContract(t), "api") {
		if !check.seen[op] {
			t.Errorf("openapi.yaml documents %s, which TestContractFlow never calls: add a step for it", op)
		}
	}
}
