package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Client calls one controller with one credential (an API key, an operator
// key, or a runner token). It is safe for concurrent use.
type Client struct {
	base  string
	cred  string
	http  *http.Client
	agent string
	retry RetryPolicy // zero: no automatic retries
}

// DefaultTimeout bounds one request of a Client made without
// WithHTTPClient. It is longer than the longest long poll the api holds
// (LONG_POLL_MAX_MS, 30 s by default; WaitTask asks for at most
// MaxLongPoll), so a long poll is never cut off by the client.
const DefaultTimeout = 90 * time.Second

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default http.Client (DefaultTimeout). Give it
// a Timeout longer than the waits you long-poll with.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client for baseURL (e.g. "http://127.0.0.1:3000") that
// authenticates with credential (empty for none).
func New(baseURL, credential string, opts ...Option) *Client {
	c := &Client{
		base:  strings.TrimRight(baseURL, "/"),
		cred:  credential,
		http:  &http.Client{Timeout: DefaultTimeout},
		agent: "yggdrasil-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithCredential returns a copy of c that authenticates with credential
// (for example the runner token a registration returned).
func (c *Client) WithCredential(credential string) *Client {
	cp := *c
	cp.cred = credential
	return &cp
}

// Error is a non-2xx answer. Problem holds the RFC 9457 body when there was one.
type Error struct {
	Status     int
	Problem    wire.Problem
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Problem.Detail != "" {
		return fmt.Sprintf("yggdrasil: %d %s: %s", e.Status, e.Problem.Title, e.Problem.Detail)
	}
	return fmt.Sprintf("yggdrasil: %d %s", e.Status, e.Problem.Title)
}

// Type returns the problem type URI of the answer ("" when the body was not
// problem+json): compare it with the constants of shared/problem.
func (e *Error) Type() string { return e.Problem.Type }

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// RetryAfterOf returns the Retry-After of an *Error in err's chain, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any, hdr map[string]string) (int, error) {
	if c.retry.Attempts > 1 && idempotent(method, hdr) {
		var status int
		_, err := Retry(ctx, c.retry, func(ctx context.Context) (struct{}, error) {
			var err error
			status, err = c.once(ctx, method, path, body, out, hdr)
			return struct{}{}, err
		})
		return status, err
	}
	return c.once(ctx, method, path, body, out, hdr)
}

func (c *Client) once(ctx context.Context, method, path string, body any, out any, hdr map[string]string) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("yggdrasil: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("yggdrasil: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if c.cred != "" {
		req.Header.Set("Authorization", "Bearer "+c.cred)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("yggdrasil: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("yggdrasil: %s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		_ = json.Unmarshal(data, &e.Problem)
		if e.Problem.Title == "" {
			e.Problem.Title = http.StatusText(resp.StatusCode)
		}
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("yggdrasil: %s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Register registers a runner (with an API key). Send RunnerID to come back
// as the same runner under a new epoch.
func (c *Client) Register(ctx context.Context, p wire.RegisterRunnerPayload) (wire.RegisterRunnerResponse, error) {
	var out wire.RegisterRunnerResponse
	_, err := c.do(ctx, http.MethodPost, "/runners/register", p, &out, nil)
	return out, err
}

// Heartbeat renews the lease (with the runner's token).
func (c *Client) Heartbeat(ctx context.Context, p wire.HeartbeatPayload) (wire.HeartbeatResponse, error) {
	var out wire.HeartbeatResponse
	_, err := c.do(ctx, http.MethodPost, "/runners/heartbeat", p, &out, nil)
	return out, err
}

// UpdateEndpoint changes the runner's endpoint (with the runner's token).
func (c *Client) UpdateEndpoint(ctx context.Context, runnerID, endpoint string) (wire.RunnerInfo, error) {
	var out wire.RunnerInfo
	_, err := c.do(ctx, http.MethodPost, "/runners/update", wire.UpdateRunnerPayload{RunnerID: runnerID, Endpoint: endpoint}, &out, nil)
	return out, err
}

// Offline deregisters the runner (with the runner's token).
func (c *Client) Offline(ctx context.Context, p wire.OfflinePayload) (wire.OfflineResponse, error) {
	var out wire.OfflineResponse
	_, err := c.do(ctx, http.MethodPost, "/runners/offline", p, &out, nil)
	return out, err
}

// ListOptions filters a runner listing; every field is optional. Cursor is
// the NextCursor of the previous page (Runners follows it for you).
type ListOptions struct {
	Status RunnerFilter
	Realm  string
	Cursor string
	Limit  int
}

// ListRunners returns one page of runners (with an operator key). A Status
// the api does not filter on is ErrInvalidFilter, before any request.
func (c *Client) ListRunners(ctx context.Context, o ListOptions) (wire.RunnerList, error) {
	if err := o.Status.check(); err != nil {
		return wire.RunnerList{}, err
	}
	q := url.Values{}
	set(q, "status", string(o.Status))
	set(q, "realm", o.Realm)
	set(q, "cursor", o.Cursor)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out wire.RunnerList
	_, err := c.do(ctx, http.MethodGet, "/runners"+query(q), nil, &out, nil)
	return out, err
}

// GetRunner reads one runner (operator key, or that runner's token).
func (c *Client) GetRunner(ctx context.Context, id string) (wire.RunnerInfo, error) {
	var out wire.RunnerInfo
	_, err := c.do(ctx, http.MethodGet, "/runners/"+url.PathEscape(id), nil, &out, nil)
	return out, err
}

// TaskQuery filters a runner's task listing; every field is optional.
// Status and Statuses keep the tasks in any of the statuses named; Task
// narrows the listing to that one task. Wait > 0 long-polls: the call
// returns as soon as a matching task exists, or empty after Wait (the api
// holds at most LONG_POLL_MAX_MS, 30 s by default).
type TaskQuery struct {
	Status   wire.TaskStatus
	Statuses []wire.TaskStatus
	Task     string
	Wait     time.Duration
	Cursor   string
	Limit    int
}

func (o TaskQuery) statuses() ([]string, error) {
	var out []string
	for _, st := range append([]wire.TaskStatus{o.Status}, o.Statuses...) {
		if st == "" {
			continue
		}
		if !st.Valid() {
			return nil, fmt.Errorf("%w: task status %q (want pending, running, succeeded, failed or cancelled)", ErrInvalidFilter, st)
		}
		out = append(out, string(st))
	}
	return out, nil
}

// ListTasks lists a runner's tasks, newest first (operator key or that
// runner's credential). An invalid status is ErrInvalidFilter, before any
// request; with Task set, an unknown task is a 404.
func (c *Client) ListTasks(ctx context.Context, runnerID string, o TaskQuery) (wire.TaskList, error) {
	sts, err := o.statuses()
	if err != nil {
		return wire.TaskList{}, err
	}
	q := url.Values{}
	set(q, "status", strings.Join(sts, ","))
	set(q, "task", o.Task)
	set(q, "cursor", o.Cursor)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Wait > 0 {
		q.Set("wait", strconv.FormatInt(o.Wait.Milliseconds(), 10))
	}
	var out wire.TaskList
	_, err = c.do(ctx, http.MethodGet, "/runners/"+url.PathEscape(runnerID)+"/tasks"+query(q), nil, &out, nil)
	return out, err
}

// DeleteRunner deletes an offline runner at once (operator key): 404 for an
// unknown runner, 409 for one that is online or unreachable.
func (c *Client) DeleteRunner(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/runners/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// GetTask reads one task of a runner (operator key, or that runner's
// credential). A task of another runner is a 404 like an unknown one.
func (c *Client) GetTask(ctx context.Context, runnerID, taskID string) (wire.RunnerTask, error) {
	var out wire.RunnerTask
	_, err := c.do(ctx, http.MethodGet, "/runners/"+url.PathEscape(runnerID)+"/tasks/"+url.PathEscape(taskID), nil, &out, nil)
	return out, err
}

// TaskFilter filters and pages the fleet's task listing (GET /tasks); every
// field is optional. Cursor is the NextCursor of the previous page.
type TaskFilter struct {
	Status   wire.TaskStatus
	RunnerID string
	Type     string
	Realm    string
	Cursor   string
	Limit    int
}

// ListAllTasks returns one page of the tasks of every runner, newest first
// (operator key). A filtered page may hold fewer than Limit tasks while
// NextCursor is set: follow NextCursor until it is empty.
func (c *Client) ListAllTasks(ctx context.Context, f TaskFilter) (wire.TaskList, error) {
	if f.Status != "" && !f.Status.Valid() {
		return wire.TaskList{}, fmt.Errorf("%w: task status %q (want pending, running, succeeded, failed or cancelled)", ErrInvalidFilter, f.Status)
	}
	q := url.Values{}
	set(q, "status", string(f.Status))
	set(q, "runner", f.RunnerID)
	set(q, "type", f.Type)
	set(q, "realm", f.Realm)
	set(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out wire.TaskList
	_, err := c.do(ctx, http.MethodGet, "/tasks"+query(q), nil, &out, nil)
	return out, err
}

// Dispatch creates a task (operator key). A non-empty idempotencyKey makes a
// retried call return the same task; created tells which happened.
func (c *Client) Dispatch(ctx context.Context, runnerID string, p wire.DispatchTaskPayload, idempotencyKey string) (task wire.RunnerTask, created bool, err error) {
	var hdr map[string]string
	if idempotencyKey != "" {
		hdr = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	status, err := c.do(ctx, http.MethodPost, "/runners/"+url.PathEscape(runnerID)+"/tasks", p, &task, hdr)
	return task, status == http.StatusCreated, err
}

// UpdateTask moves a task along its state machine (runner token or operator key).
func (c *Client) UpdateTask(ctx context.Context, runnerID, taskID string, p wire.TaskUpdatePayload) (wire.RunnerTask, error) {
	var out wire.RunnerTask
	_, err := c.do(ctx, http.MethodPatch, "/runners/"+url.PathEscape(runnerID)+"/tasks/"+url.PathEscape(taskID), p, &out, nil)
	return out, err
}

// RequestUpdate asks a runner to update itself (operator key).
func (c *Client) RequestUpdate(ctx context.Context, runnerID string, p wire.RequestUpdatePayload) (wire.RunnerInfo, error) {
	var out wire.RunnerInfo
	_, err := c.do(ctx, http.MethodPost, "/runners/"+url.PathEscape(runnerID)+"/request-update", p, &out, nil)
	return out, err
}

// VersionCheck asks whether version complies with EXPECTED_RUNNER_VERSION.
func (c *Client) VersionCheck(ctx context.Context, version string) (wire.VersionCheckResponse, error) {
	var out wire.VersionCheckResponse
	_, err := c.do(ctx, http.MethodPost, "/version-check/"+url.PathEscape(version), nil, &out, nil)
	return out, err
}

// Admission reads the admission state.
func (c *Client) Admission(ctx context.Context) (wire.AdmissionState, error) {
	var out wire.AdmissionState
	_, err := c.do(ctx, http.MethodGet, "/admission", nil, &out, nil)
	return out, err
}

// Health calls /health.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/health", nil, nil, nil)
	return err
}

// Ready calls /ready: nil when the controller can reach Redis.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/ready", nil, nil, nil)
	return err
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
