package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// A runner registers with an API key, then heartbeats with the token the
// registration returned, at the interval the controller asks for.
func Example_registerAndHeartbeat() {
	ctx := context.Background()
	c := client.New(apiURL, apiKey) // e.g. client.New("http://127.0.0.1:3000", os.Getenv("YGGDRASIL_API_KEY"))
	reg, err := c.Register(ctx, wire.RegisterRunnerPayload{RunnerID: "example-hb", Name: "build-1", Version: "1.0.0"})
	if err != nil {
		fmt.Println("register:", err)
		return
	}
	fmt.Println("registered", reg.ID, reg.Status)

	runner := c.WithCredential(reg.Token) // the token acts for this runner only
	hb, err := runner.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch})
	if err != nil {
		fmt.Println("heartbeat:", err)
		return
	}
	fmt.Println("lease renewed:", hb.LeaseExpiresAt.After(time.Now()), "tasks:", len(hb.Tasks))

	_, err = runner.Offline(ctx, wire.OfflinePayload{RunnerID: reg.ID})
	fmt.Println("offline:", err == nil)
	// Output:
	// registered example-hb online
	// lease renewed: true tasks: 0
	// offline: true
}

// An operator dispatches a task and waits for that task to finish: WaitTask
// long-polls the one task, so it returns as soon as the runner reports it.
func ExampleClient_WaitTask() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, _ := client.New(apiURL, apiKey).Register(ctx, wire.RegisterRunnerPayload{RunnerID: "example-wait", Name: "w", Version: "1.0.0"})
	go playRunner(ctx, client.New(apiURL, reg.Token), reg)

	op := client.New(apiURL, operatorKey)
	task, created, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "echo", Payload: json.RawMessage(`{"say":"hi"}`)}, "example-wait-1")
	if err != nil {
		fmt.Println("dispatch:", err)
		return
	}
	fmt.Println("dispatched:", created, task.Status)

	done, err := op.WaitTask(ctx, reg.ID, task.ID)
	if err != nil {
		fmt.Println("wait:", err)
		return
	}
	fmt.Println("finished:", done.Status, string(done.Result))
	// Output:
	// dispatched: true pending
	// finished: succeeded {"said":"hi"}
}

// playRunner is the runner's side of ExampleClient_WaitTask: it takes the
// task from a heartbeat reply, runs it and reports it.
func playRunner(ctx context.Context, c *client.Client, reg wire.RegisterRunnerResponse) {
	for ctx.Err() == nil {
		hb, err := c.Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: reg.ID, LeaseEpoch: reg.LeaseEpoch})
		if err == nil && len(hb.Tasks) > 0 {
			t := hb.Tasks[0]
			_, _ = c.UpdateTask(ctx, reg.ID, t.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning})
			_, _ = c.UpdateTask(ctx, reg.ID, t.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded, Result: json.RawMessage(`{"said":"hi"}`)})
			return
		}
		// a real runner waits HeartbeatIntervalMs; the example is in a hurry
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Runners iterates over every page of a listing; the loop ends after the
// last page, or with the first error.
func ExampleClient_Runners() {
	ctx := context.Background()
	for _, id := range []string{"example-it-a", "example-it-b", "example-it-c"} {
		if _, err := client.New(apiURL, apiKey).Register(ctx, wire.RegisterRunnerPayload{RunnerID: id, Name: id, Version: "1.0.0", Realm: "example-iter"}); err != nil {
			fmt.Println("register:", err)
			return
		}
	}
	op := client.New(apiURL, operatorKey)
	for r, err := range op.Runners(ctx, client.ListOptions{Realm: "example-iter", Status: client.RunnersOnline, Limit: 2}) {
		if err != nil {
			fmt.Println("list:", err)
			return
		}
		fmt.Println(r.ID, r.Status)
	}
	// Output:
	// example-it-a online
	// example-it-b online
	// example-it-c online
}

// A status filter the api does not accept fails before any request.
func ExampleParseRunnerFilter() {
	if _, err := client.ParseRunnerFilter("busy"); errors.Is(err, client.ErrInvalidFilter) {
		fmt.Println(err)
	}
	// Output:
	// yggdrasil: invalid filter: runner status "busy" (want online, unreachable or offline)
}

// Retry retries an idempotent call on 429/502/503/504 and transport
// errors, honouring Retry-After; WithRetry does it for every idempotent
// call of a client.
func ExampleRetry() {
	ctx := context.Background()
	op := client.New(apiURL, operatorKey, client.WithRetry(client.DefaultRetry))
	state, err := client.Retry(ctx, client.DefaultRetry, op.Admission)
	fmt.Println(state.Admitting, err)
	// Output:
	// true <nil>
}
