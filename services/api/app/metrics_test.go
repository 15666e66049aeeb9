package app_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestMetricsExposition(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg, func(c *config.API) { c.MetricsPrefix = "ygt_" })
	op := e.client(opKey)
	var regs []wire.RegisterRunnerResponse
	for _, id := range []string{"m1", "m2", "m3"} {
		regs = append(regs, e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: id, Name: "name-" + id, Version: "1.2.3"}))
	}
	r1 := e.client(regs[0].Token)
	started := time.Now().Add(-time.Hour)
	hb, err := r1.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "m1", TasksRunning: ptr(1), StartedAt: &started,
		Resources: &wire.SystemResources{CPUPercent: 42.5, MemoryPercent: 61, UptimeSeconds: 999999}})
	if err != nil {
		t.Fatal(err)
	}
	var tasks []wire.RunnerTask
	for i := 0; i < 3; i++ {
		task, _, err := op.Dispatch(ctx, "m1", wire.DispatchTaskPayload{Type: "shell"}, "")
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	for i, final := range []wire.TaskStatus{wire.TaskSucceeded, wire.TaskFailed} {
		if _, err := r1.UpdateTask(ctx, "m1", tasks[i].ID, wire.TaskUpdatePayload{Status: wire.TaskRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := r1.UpdateTask(ctx, "m1", tasks[i].ID, wire.TaskUpdatePayload{Status: final}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client(regs[2].Token).Offline(ctx, wire.OfflinePayload{RunnerID: "m3"}); err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/nope/"+strings.Repeat("x", 10), "", "")

	r := e.do("GET", "/metrics", "", "")
	body := string(r.body)
	for _, want := range []string{
		"ygt_runners_registered 3",
		"ygt_runners_online 2",
		"ygt_runners_offline 1",
		"ygt_runners_unreachable 0",
		"ygt_leases_active 2",
		"ygt_tasks_dispatched_total 3",
		`ygt_runner_registrations_total{kind="new"} 3`,
		`ygt_runner_registrations_total{kind="returned"} 0`,
		`ygt_tasks_completed_total{status="succeeded"} 1`,
		`ygt_tasks_completed_total{status="failed"} 1`,
		`ygt_tasks_completed_total{status="cancelled"} 0`,
		`ygt_runner_info{name="name-m1",runner_id="m1",status="online",version="1.2.3"} 1`,
		`ygt_runner_info{name="name-m3",runner_id="m3",status="offline",version="1.2.3"} 1`,
		`ygt_runner_cpu_percent{runner_id="m1"} 42.5`,
		`ygt_runner_memory_percent{runner_id="m1"} 61`,
		`ygt_runner_tasks_running{runner_id="m1"} 1`,
		`ygt_http_requests_total{method="POST",route="/runners/:id/tasks",status="201"} 3`,
		`ygt_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`ygt_http_request_duration_seconds_count{method="POST",route="/runners/register"} 3`,
		`ygt_admission_state{state="closed"} 1`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains("\n"+body, "\n"+want+"\n") && !strings.Contains("\n"+body, "\n"+want+" ") {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// the original's per-runner series: the lease expiry in Unix seconds, the
	// process uptime from the reported start (not the host's uptime), else
	// the time since registration; none of either for the offline m3
	if got := sample(t, body, `ygt_runner_leases{runner_id="m1"}`); got != float64(hb.LeaseExpiresAt.UnixMilli())/1000 {
		t.Errorf("runner_leases of m1 = %v, want %v", got, float64(hb.LeaseExpiresAt.UnixMilli())/1000)
	}
	if got := sample(t, body, `ygt_runner_uptime_seconds{runner_id="m1"}`); got < 3600 || got > 3660 {
		t.Errorf("runner_uptime_seconds of m1 = %v, want about 3600 (the process start it reported)", got)
	}
	if got := sample(t, body, `ygt_runner_uptime_seconds{runner_id="m2"}`); got < 0 || got > 60 {
		t.Errorf("runner_uptime_seconds of m2 = %v, want the few seconds since its registration", got)
	}
	for _, absent := range []string{`ygt_runner_leases{runner_id="m3"}`, `ygt_runner_uptime_seconds{runner_id="m3"}`} {
		if strings.Contains(body, absent) {
			t.Errorf("offline m3 has %s", absent)
		}
	}
	if strings.Contains(body, "xxxxxxxxxx") {
		t.Errorf("a raw path leaked into a label")
	}
	if t.Failed() {
		t.Log(body)
	}

	// per-runner series can be switched off
	off := start(t, func(c *config.API) { c.MetricsPerRunner = false })
	off.register("", wire.RegisterRunnerPayload{RunnerID: "z"})
	body = string(off.do("GET", "/metrics", "", "").body)
	if strings.Contains(body, "yggdrasil_runner_info") || !strings.Contains(body, "yggdrasil_runners_registered 1") {
		t.Errorf("METRICS_PER_RUNNER=false exposition:\n%s", body)
	}
}

func ptr[T any](v T) *T { return &v }

// sample returns the value of the series line that starts with series.
func sample(t testing.TB, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// A reported process start far in the future or absurdly old is a 422 that
// names the field, and changes nothing.
func TestHeartbeatStartedAtIsValidated(t *testing.T) {
	e := start(t)
	reg := e.register("", wire.RegisterRunnerPayload{RunnerID: "s1"})
	before := snapshot(t, e.rdb)
	for _, at := range []string{"2999-01-01T00:00:00Z", "1970-01-01T00:00:00Z"} {
		r := e.do("POST", "/runners/heartbeat", reg.Token, `{"runnerId":"s1","startedAt":"`+at+`"}`)
		if r.status != 422 || r.problem(t).Field != "startedAt" {
			t.Errorf("startedAt %s: %d %s, want 422 naming startedAt", at, r.status, r.body)
		}
	}
	if r := e.do("POST", "/runners/heartbeat", reg.Token, `{"runnerId":"s1","startedAt":"yesterday"}`); r.status != 400 && r.status != 422 {
		t.Errorf("startedAt not RFC 3339: %d %s, want 400 or 422", r.status, r.body)
	}
	if after := snapshot(t, e.rdb); after != before {
		t.Errorf("a refused heartbeat changed the state")
	}
	now := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	if _, err := e.client(reg.Token).Heartbeat(context.Background(), wire.HeartbeatPayload{RunnerID: "s1", StartedAt: &now}); err != nil {
		t.Fatal(err)
	}
	got, err := e.client(reg.Token).GetRunner(context.Background(), "s1")
	if err != nil || got.StartedAt == nil || !got.StartedAt.Equal(now) {
		t.Errorf("GetRunner startedAt = %v (%v), want %v", got.StartedAt, err, now)
	}
}

// TestRealmRunnersGauge: realm_runners carries each realm's runners by
// status, one series per realm and status, for every realm (an empty one
// too), and follows a runner going offline.
func TestRealmRunnersGauge(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg, func(c *config.API) { c.MetricsPrefix = "ygt_" })
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "red-1", Realm: "red"})
	gone := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "red-2", Realm: "red"})
	e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "blue-1", Realm: "blue"})
	if _, err := e.client(gone.Token).Offline(ctx, wire.OfflinePayload{RunnerID: "red-2"}); err != nil {
		t.Fatal(err)
	}
	body := string(e.do("GET", "/metrics", "", "").body)
	for _, want := range []string{
		`ygt_realm_runners{realm="red",status="online"} 1`, `ygt_realm_runners{realm="red",status="offline"} 1`,
		`ygt_realm_runners{realm="red",status="unreachable"} 0`, `ygt_realm_runners{realm="blue",status="online"} 1`,
		`ygt_realm_runners{realm="blue",status="offline"} 0`, `ygt_realm_runners{realm="default",status="online"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
