package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestBadInputs(t *testing.T) {
	e := start(t, authCfg, func(c *config.API) { c.BodyLimitBytes = 4096 })
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "r1"})
	tok := reg.Token
	manyLabels := map[string]string{}
	for i := 0; i < 65; i++ {
		manyLabels[fmt.Sprintf("k%d", i)] = "v"
	}
	big := `{"name":"n","version":"1","endpoint":"http://x/` + strings.Repeat("a", 8000) + `"}`

	cases := []struct {
		name, method, path, cred, body string
		hdr                            []string
		status                         int
		typ, field                     string
	}{
		{"malformed json", "POST", "/runners/register", apiKey, `{"name":`, nil, 400, "malformed-request", ""},
		{"not an object", "POST", "/runners/register", apiKey, `[1,2]`, nil, 400, "malformed-request", ""},
		{"trailing data", "POST", "/runners/register", apiKey, `{"name":"a","version":"1"} {}`, nil, 400, "malformed-request", ""},
		{"empty body", "POST", "/runners/register", apiKey, ``, nil, 422, "validation", "name"},
		{"missing version", "POST", "/runners/register", apiKey, `{"name":"a"}`, nil, 422, "validation", "version"},
		{"long name", "POST", "/runners/register", apiKey, `{"name":"` + strings.Repeat("n", 129) + `","version":"1"}`, nil, 422, "validation", "name"},
		{"control char in name", "POST", "/runners/register", apiKey, `{"name":"a\u0007b","version":"1"}`, nil, 422, "validation", "name"},
		{"colon in runner id", "POST", "/runners/register", apiKey, `{"runnerId":"a:b","name":"a","version":"1"}`, nil, 422, "validation", "runnerId"},
		{"bad realm", "POST", "/runners/register", apiKey, `{"name":"a","version":"1","realm":"eu west"}`, nil, 422, "validation", "realm"},
		{"ftp endpoint", "POST", "/runners/register", apiKey, `{"name":"a","version":"1","endpoint":"ftp://h"}`, nil, 422, "validation", "endpoint"},
		{"capacity too big", "POST", "/runners/register", apiKey, `{"name":"a","version":"1","capacity":5000}`, nil, 422, "validation", "capacity"},
		{"capacity wrong type", "POST", "/runners/register", apiKey, `{"name":"a","version":"1","capacity":"x"}`, nil, 422, "validation", "capacity"},
		{"too many labels", "POST", "/runners/register", apiKey, mustJSON(wire.RegisterRunnerPayload{Name: "a", Version: "1", Labels: manyLabels}), nil, 422, "validation", "labels"},
		{"oversized body", "POST", "/runners/register", apiKey, big, nil, 413, "payload-too-large", ""},
		{"heartbeat bad status", "POST", "/runners/heartbeat", tok, `{"runnerId":"r1","status":"sleeping"}`, nil, 422, "validation", "status"},
		{"heartbeat negative tasks", "POST", "/runners/heartbeat", tok, `{"runnerId":"r1","tasksRunning":-1}`, nil, 422, "validation", "tasksRunning"},
		{"heartbeat cpu", "POST", "/runners/heartbeat", tok, `{"runnerId":"r1","resources":{"cpuPercent":-5}}`, nil, 422, "validation", "resources.cpuPercent"},
		{"heartbeat epoch type", "POST", "/runners/heartbeat", tok, `{"runnerId":"r1","leaseEpoch":"x"}`, nil, 422, "validation", "leaseEpoch"},
		{"heartbeat epoch negative", "POST", "/runners/heartbeat", tok, `{"runnerId":"r1","leaseEpoch":-2}`, nil, 422, "validation", "leaseEpoch"},
		{"update bad endpoint", "POST", "/runners/update", tok, `{"runnerId":"r1","endpoint":"not a url"}`, nil, 422, "validation", "endpoint"},
		{"dispatch no type", "POST", "/runners/r1/tasks", opKey, `{"payload":{}}`, nil, 422, "validation", "type"},
		{"dispatch bad type", "POST", "/runners/r1/tasks", opKey, `{"type":"rm -rf"}`, nil, 422, "validation", "type"},
		{"dispatch timeout", "POST", "/runners/r1/tasks", opKey, `{"type":"shell","timeoutMs":604800001}`, nil, 422, "validation", "timeoutMs"},
		{"dispatch idem key", "POST", "/runners/r1/tasks", opKey, `{"type":"shell"}`, []string{"Idempotency-Key", strings.Repeat("k", 129)}, 422, "validation", "Idempotency-Key"},
		{"dispatch bad runner id", "POST", "/runners/a:b/tasks", opKey, `{"type":"shell"}`, nil, 422, "validation", "id"},
		{"dispatch unknown runner", "POST", "/runners/ghost/tasks", opKey, `{"type":"shell"}`, nil, 404, "runner-not-found", ""},
		{"patch bad status", "PATCH", "/runners/r1/tasks/t1", tok, `{"status":"done"}`, nil, 422, "validation", "status"},
		{"patch missing status", "PATCH", "/runners/r1/tasks/t1", tok, `{}`, nil, 422, "validation", "status"},
		{"patch unknown task", "PATCH", "/runners/r1/tasks/t1", tok, `{"status":"running"}`, nil, 404, "task-not-found", ""},
		{"list bad status", "GET", "/runners?status=weird", opKey, "", nil, 422, "validation", "status"},
		{"list bad limit", "GET", "/runners?limit=0", opKey, "", nil, 422, "validation", "limit"},
		{"tasks bad wait", "GET", "/runners/r1/tasks?wait=forever", tok, "", nil, 422, "validation", "wait"},
		{"tasks negative wait", "GET", "/runners/r1/tasks?wait=-5s", tok, "", nil, 422, "validation", "wait"},
		{"tasks bad cursor", "GET", "/runners/r1/tasks?cursor=abc", tok, "", nil, 422, "validation", "cursor"},
		{"request update no version", "POST", "/runners/r1/request-update", opKey, `{"command":"x"}`, nil, 422, "validation", "version"},
		{"version check garbage", "POST", "/version-check/not-a-version", apiKey, "", nil, 422, "validation", "version"},
		{"unknown route", "GET", "/nope", "", "", nil, 404, "not-found", ""},
		{"unknown nested route", "GET", "/runners/r1/tasks/t1/extra", opKey, "", nil, 404, "not-found", ""},
		{"wrong method", "PUT", "/runners/r1", opKey, "", nil, 405, "method-not-allowed", ""},
		{"wrong method on register", "GET", "/runners/register/x", opKey, "", nil, 404, "not-found", ""},
		{"heartbeat unknown runner", "POST", "/runners/heartbeat", opKey, `{"runnerId":"ghost"}`, nil, 403, "forbidden", ""},
	}
	before := snapshot(t, e.rdb)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.cred, tc.body, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != httpapi.ContentTypeProblem {
				t.Fatalf("content type %q", ct)
			}
			p := r.problem(t)
			if p.Type != httpapi.ProblemBase+tc.typ || p.Status != tc.status || p.Title == "" || p.Field != tc.field {
				t.Fatalf("problem = %+v, want type %s field %q", p, tc.typ, tc.field)
			}
		})
	}
	if after := snapshot(t, e.rdb); after != before {
		t.Fatalf("rejected requests changed the store")
	}
}

func TestVersionCheck(t *testing.T) {
	cases := []struct {
		expected, version string
		compliant         bool
	}{
		{"", "0.0.1", true},
		{"1.4.0", "1.4.0", true},
		{"1.4.0", "1.10.2", true},
		{"1.4.0", "1.3.9", false},
		{">=1.4, <2", "1.9.0", true},
		{">=1.4, <2", "2.0.0", false},
		{"~1.4", "1.4.7", true},
	}
	for _, tc := range cases {
		t.Run(tc.expected+" "+tc.version, func(t *testing.T) {
			e := start(t, func(c *config.API) { c.ExpectedRunnerVersion = tc.expected })
			r := e.do("POST", "/version-check/"+tc.version, "", "")
			want := mustJSON(wire.VersionCheckResponse{Version: tc.version, Expected: tc.expected, Compliant: tc.compliant, UpdateRequired: !tc.compliant})
			if r.status != 200 || string(r.body) != want {
				t.Fatalf("= %d %s, want %s", r.status, r.body, want)
			}
		})
	}
}
