package app_test

import (
	"context"
	"strings"
	"testing"

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
	if _, err := r1.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "m1", TasksRunning: ptr(1),
		Resources: &wire.SystemResources{CPUPercent: 42.5, MemoryPercent: 61, UptimeSeconds: 3600}}); err != nil {
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
		"ygt_runner_leases 2",
		"ygt_tasks_dispatched_total 3",
		`ygt_tasks_completed_total{status="succeeded"} 1`,
		`ygt_tasks_completed_total{status="failed"} 1`,
		`ygt_tasks_completed_total{status="cancelled"} 0`,
		`ygt_runner_info{name="name-m1",runner_id="m1",status="online",version="1.2.3"} 1`,
		`ygt_runner_info{name="name-m3",runner_id="m3",status="offline",version="1.2.3"} 1`,
		`ygt_runner_cpu_percent{runner_id="m1"} 42.5`,
		`ygt_runner_memory_percent{runner_id="m1"} 61`,
		`ygt_runner_uptime_seconds{runner_id="m1"} 3600`,
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
