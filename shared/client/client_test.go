package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"Tue, 01 Dec 2026 10:00:07 GMT", 7 * time.Second},
		{"Tuesday, 01-Dec-26 10:01:00 GMT", time.Minute}, // RFC 850, still allowed by RFC 9110
		{"Tue Dec  1 10:00:30 2026", 30 * time.Second},   // asctime
		{"Tue, 01 Dec 2026 09:59:00 GMT", 0},             // in the past
		{"99999999999", 24 * time.Hour},
	} {
		if got := client.ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A server that answers 503 with an HTTP-date Retry-After twice, then 200.
func TestRetryHonoursRetryAfterAndOnlyRetriesIdempotentCalls(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			w.Header().Set("Content-Type", problem.ContentType)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"type":"` + problem.TypeOverloaded + `","title":"Overloaded","status":503}`))
			return
		}
		_, _ = w.Write([]byte(`{"admitting":true,"state":"closed"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// without WithRetry: the first 503, with its Retry-After and problem type
	_, err := client.New(srv.URL, "").Admission(ctx)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 503 || e.Type() != problem.TypeOverloaded || e.RetryAfter < 500*time.Millisecond || e.RetryAfter > 3*time.Second {
		t.Fatalf("Admission without retry = %v (%+v)", err, e)
	}

	calls.Store(0)
	start := time.Now()
	st, err := client.New(srv.URL, "", client.WithRetry(client.RetryPolicy{Attempts: 4, Base: 10 * time.Millisecond, Max: 3 * time.Second})).Admission(ctx)
	if err != nil || !st.Admitting || calls.Load() != 3 {
		t.Fatalf("Admission with retry = %+v, %v after %d calls", st, err, calls.Load())
	}
	// Retry-After (1-2 s, HTTP dates have whole seconds) was honoured, not the 10 ms backoff
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("retried after %v: Retry-After ignored", took)
	}

	// a registration is not idempotent: never retried
	calls.Store(0)
	if _, err := client.New(srv.URL, "", client.WithRetry(client.DefaultRetry)).Register(ctx, wire.RegisterRunnerPayload{Name: "x"}); client.StatusOf(err) != 503 || calls.Load() != 1 {
		t.Errorf("Register = %v after %d calls, want one 503", err, calls.Load())
	}

	// a 4xx other than 429 is never retried
	if client.Retryable(&client.Error{Status: 409}) || !client.Retryable(&client.Error{Status: 429}) || client.Retryable(context.Canceled) {
		t.Error("Retryable misjudges 409, 429 or a cancelled context")
	}
}

func TestFiltersRefuseWhatTheAPIRefusesBeforeAnyRequest(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := client.New(srv.URL, "")
	ctx := context.Background()
	if _, err := c.ListRunners(ctx, client.ListOptions{Status: "busy"}); !errors.Is(err, client.ErrInvalidFilter) {
		t.Errorf("ListRunners busy = %v", err)
	}
	if _, err := c.ListTasks(ctx, "r", client.TaskQuery{Statuses: []wire.TaskStatus{wire.TaskFailed, "done"}}); !errors.Is(err, client.ErrInvalidFilter) {
		t.Errorf("ListTasks done = %v", err)
	}
	if _, err := c.ListAllTasks(ctx, client.TaskFilter{Status: "nope"}); !errors.Is(err, client.ErrInvalidFilter) {
		t.Errorf("ListAllTasks nope = %v", err)
	}
	if _, err := c.WaitTaskStatus(ctx, "r", "t"); !errors.Is(err, client.ErrInvalidFilter) {
		t.Errorf("WaitTaskStatus without statuses = %v", err)
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests sent for invalid filters", calls.Load())
	}
}

// WaitTask waits for THAT task: another task of the same runner finishing
// first does not end the wait, and it returns within a moment of its own
// task finishing (the long poll is woken, not timed out).
func TestWaitTaskWaitsForThatTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg, err := client.New(apiURL, apiKey).Register(ctx, wire.RegisterRunnerPayload{RunnerID: "wait-that", Name: "w", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(apiURL, operatorKey)
	runner := client.New(apiURL, reg.Token)
	mine, _, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		task wire.RunnerTask
		err  error
		at   time.Time
	}
	got := make(chan result, 1)
	go func() {
		tk, err := op.WaitTask(ctx, reg.ID, mine.ID)
		got <- result{tk, err, time.Now()}
	}()
	// the wait is registered once the api holds a long poll; then the other task finishes
	waitLongPoll(t, ctx, op, reg.ID, other.ID)
	if _, err := runner.UpdateTask(ctx, reg.ID, other.ID, wire.TaskUpdatePayload{Status: wire.TaskFailed, Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		t.Fatalf("WaitTask returned on another task's change: %+v %v", r.task, r.err)
	case <-time.After(300 * time.Millisecond): // a bounded negative check: it must still be waiting
	}
	// running wakes the poll too, but is not finished: the wait goes on
	if _, err := runner.UpdateTask(ctx, reg.ID, mine.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning}); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	if _, err := runner.UpdateTask(ctx, reg.ID, mine.ID, wire.TaskUpdatePayload{Status: wire.TaskSucceeded}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.task.ID != mine.ID || r.task.Status != wire.TaskSucceeded {
		t.Fatalf("WaitTask = %+v, %v", r.task, r.err)
	}
	if lag := r.at.Sub(done); lag > 2*time.Second {
		t.Errorf("WaitTask returned %v after the task finished: the long poll was not woken", lag)
	}

	// an unknown task is a 404 at once, not a wait
	_, err = op.WaitTask(ctx, reg.ID, "tsk_unknown")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Type() != problem.TypeTaskNotFound {
		t.Errorf("WaitTask unknown = %v", err)
	}
	// a context deadline ends the wait with the context's error
	pending, _, _ := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := op.WaitTask(short, reg.ID, pending.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitTask past its deadline = %v", err)
	}
}

// waitLongPoll returns once the task listing filtered on one task answers:
// a cheap way to be sure the api is up and the task readable.
func waitLongPoll(t *testing.T, ctx context.Context, op *client.Client, runnerID, taskID string) {
	t.Helper()
	l, err := op.ListTasks(ctx, runnerID, client.TaskQuery{Task: taskID})
	if err != nil || len(l.Tasks) != 1 || l.Tasks[0].ID != taskID {
		t.Fatalf("ListTasks task=%s = %+v, %v", taskID, l, err)
	}
}

func TestIteratorsFollowEveryPage(t *testing.T) {
	ctx := context.Background()
	reg, err := client.New(apiURL, apiKey).Register(ctx, wire.RegisterRunnerPayload{RunnerID: "iter-tasks", Name: "i", Version: "1.0.0", Realm: "iter-tasks"})
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(apiURL, operatorKey)
	want := map[string]bool{}
	for range 7 {
		tk, _, err := op.Dispatch(ctx, reg.ID, wire.DispatchTaskPayload{Type: "echo"}, "")
		if err != nil {
			t.Fatal(err)
		}
		want[tk.ID] = true
	}
	n := 0
	for tk, err := range op.Tasks(ctx, reg.ID, client.TaskQuery{Status: wire.TaskPending, Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		if !want[tk.ID] {
			t.Errorf("unexpected task %s", tk.ID)
		}
		n++
	}
	if n != 7 {
		t.Errorf("Tasks yielded %d, want 7", n)
	}
	n = 0
	for tk, err := range op.AllTasks(ctx, client.TaskFilter{RunnerID: reg.ID, Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			_ = tk
			break // the consumer stops: no more pages fetched, no panic
		}
	}
	if n != 3 {
		t.Errorf("AllTasks with break yielded %d", n)
	}
	// an error is yielded once and ends the iteration
	errs := 0
	for _, err := range client.New(apiURL, "wrong-key-0123456789").Runners(ctx, client.ListOptions{}) {
		if client.StatusOf(err) != 401 {
			t.Errorf("Runners with a wrong key: %v", err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("Runners with a wrong key yielded %d times", errs)
	}
}
