package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// DefaultListLimit and MaxListLimit page the list calls: part of the API
// contract, not tunables.
const (
	DefaultListLimit         = 100
	MaxListLimit             = 1000
	leaseExpiredTaskError    = "runner lease expired"
	deregisteredTaskErrorFmt = "runner deregistered: %s"
)

// Options tunes a Store. The store has no defaults of its own: every value
// comes from shared/config (config.Fleet), which validates it.
type Options struct {
	// IdempotencyTTL is how long an Idempotency-Key keeps returning its task.
	IdempotencyTTL time.Duration
	// TaskRetention is how long a finished task stays readable.
	TaskRetention time.Duration
	// MaxTasksPerReply caps the pending tasks one heartbeat reply carries.
	MaxTasksPerReply int
	// CancelRetention is how long a cancelled running task keeps being listed
	// in cancelTaskIds when the runner never acknowledges it.
	CancelRetention time.Duration
}

// Store reads and writes the control plane's state in Redis.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a Store over rdb that uses opts as given.
func New(rdb redis.UniversalClient, opts Options) *Store {
	return &Store{rdb: rdb, opts: opts}
}

// Client returns the underlying Redis client (for readiness checks and
// pub/sub subscribers).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// NewID returns a random identifier with the given prefix, e.g. "rnr_3f9a...".
func NewID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// RegisterParams describes a registration. TokenHash is the hash of the
// runner's token; the token itself never reaches the store.
type RegisterParams struct {
	ID         string
	Name       string
	Version    string
	Realm      string
	Endpoint   string
	Labels     map[string]string
	Capacity   int
	TokenHash  string
	LeaseTTL   time.Duration
	MaxRunners int
}

// Lease is a runner's lease as granted by a registration or heartbeat.
type Lease struct {
	Epoch     int64
	ExpiresAt time.Time
}

// Register registers p.ID, or brings it back under a new epoch. It returns
// ErrFleetFull when MaxRunners live runners exist already.
func (s *Store) Register(ctx context.Context, p RegisterParams) (wire.RunnerInfo, Lease, error) {
	labels := ""
	if len(p.Labels) > 0 {
		b, err := json.Marshal(p.Labels)
		if err != nil {
			return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: labels: %w", p.ID, err)
		}
		labels = string(b)
	}
	keys := []string{
		RunnerKey(p.ID), LeaseKey(p.ID), LeaseDeadlinesKey(), RunnersKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		StatusIndexKey(string(wire.RunnerOffline)), RealmsKey(), OutboxKey(),
		RunnerActiveKey(p.ID), RunnerCancelKey(p.ID), QuarantineKey(), TaskDeadlinesKey(), StatsKey(),
	}
	res, err := registerScript.Run(ctx, s.rdb, keys,
		p.ID, p.Name, p.Version, p.Realm, p.Endpoint, labels, p.Capacity,
		p.TokenHash, p.LeaseTTL.Milliseconds(), p.MaxRunners, RealmIndexPrefix, TaskKeyPrefix,
	).Slice()
	if err != nil {
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, err)
	}
	if code := toInt(res[0]); code == 1 {
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, ErrFleetFull)
	}
	if len(res) < 5 {
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, errUnexpectedResponse)
	}
	lease := Lease{Epoch: toInt(res[1]), ExpiresAt: time.UnixMilli(toInt(res[2])).UTC()}
	now := time.UnixMilli(toInt(res[3])).UTC()
	info := wire.RunnerInfo{
		ID: p.ID, Name: p.Name, Version: p.Version, Realm: p.Realm, Endpoint: p.Endpoint,
		Labels: p.Labels, Capacity: p.Capacity, Status: wire.RunnerOnline, LeaseEpoch: lease.Epoch,
		LeaseExpiresAt: &lease.ExpiresAt, RegisteredAt: time.UnixMilli(toInt(res[4])).UTC(),
		LastHeartbeat: &now,
	}
	return info, lease, nil
}

// HeartbeatParams is one heartbeat. Empty or nil fields leave the stored
// values unchanged; Epoch 0 skips the epoch check.
type HeartbeatParams struct {
	RunnerID     string
	Epoch        int64
	LeaseTTL     time.Duration
	Activity     wire.RunnerStatus
	Resources    *wire.SystemResources
	TasksRunning *int
	Version      string
}

// HeartbeatResult is what the controller hands back on a heartbeat.
type HeartbeatResult struct {
	Lease         Lease
	PendingUpdate *wire.PendingUpdate
	Tasks         []wire.RunnerTask
	CancelTaskIDs []string
}

// Heartbeat renews a lease. It returns ErrRunnerNotFound, ErrRunnerOffline or
// ErrStaleEpoch when the runner must register (again).
func (s *Store) Heartbeat(ctx context.Context, p HeartbeatParams) (HeartbeatResult, error) {
	resources := ""
	if p.Resources != nil {
		b, err := json.Marshal(p.Resources)
		if err != nil {
			return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: resources: %w", p.RunnerID, err)
		}
		resources = string(b)
	}
	tasksRunning := ""
	if p.TasksRunning != nil {
		tasksRunning = strconv.Itoa(*p.TasksRunning)
	}
	id := p.RunnerID
	keys := []string{
		RunnerKey(id), LeaseKey(id), LeaseDeadlinesKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		QuarantineKey(), RunnerPendingKey(id), RunnerCancelKey(id), OutboxKey(),
	}
	res, err := heartbeatScript.Run(ctx, s.rdb, keys,
		id, p.Epoch, p.LeaseTTL.Milliseconds(), string(p.Activity), resources, tasksRunning, p.Version,
		TaskKeyPrefix, s.opts.MaxTasksPerReply, s.opts.CancelRetention.Milliseconds(),
	).Slice()
	if err != nil {
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, err)
	}
	switch toInt(res[0]) {
	case 0:
	case 1:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, ErrRunnerNotFound)
	case 2:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, ErrRunnerOffline)
	case 3:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s (epoch %d, current %d): %w", id, p.Epoch, toInt(res[1]), ErrStaleEpoch)
	default:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, errUnexpectedResponse)
	}
	if len(res) < 6 {
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, errUnexpectedResponse)
	}
	out := HeartbeatResult{
		Lease:         Lease{Epoch: toInt(res[1]), ExpiresAt: time.UnixMilli(toInt(res[2])).UTC()},
		Tasks:         []wire.RunnerTask{},
		CancelTaskIDs: toStrings(res[5]),
	}
	if pu := toString(res[3]); pu != "" {
		var u wire.PendingUpdate
		if err := json.Unmarshal([]byte(pu), &u); err == nil {
			out.PendingUpdate = &u
		}
	}
	flat := toStrings(res[4])
	for i := 0; i+4 < len(flat); i += 5 {
		timeout, _ := strconv.ParseInt(flat[i+3], 10, 64)
		created, _ := strconv.ParseInt(flat[i+4], 10, 64)
		t := wire.RunnerTask{
			ID: flat[i], RunnerID: id, Type: flat[i+1], Status: wire.TaskPending,
			TimeoutMs: timeout, CreatedAt: time.UnixMilli(created).UTC(),
		}
		if flat[i+2] != "" {
			t.Payload = json.RawMessage(flat[i+2])
		}
		out.Tasks = append(out.Tasks, t)
	}
	return out, nil
}

// Transition is the outcome of an offline transition.
type Transition struct {
	RunnerID       string
	Epoch          int64
	LeaseExpiredAt time.Time
	At             time.Time
	FailedTaskIDs  []string
}

// Deregister takes a runner offline at its own request (reason
// "deregistered"), failing its unfinished tasks and recording one
// runner.offline event. Epoch 0 skips the epoch check.
func (s *Store) Deregister(ctx context.Context, runnerID string, epoch int64, why string) (Transition, error) {
	msg := fmt.Sprintf(deregisteredTaskErrorFmt, why)
	if why == "" {
		msg = "runner deregistered"
	}
	return s.offline(ctx, runnerID, wire.ReasonDeregistered, epoch, false, msg)
}

// ExpireLease is the sweeper's transition: it takes the runner offline with
// reason "lease_expired" only if its lease is really gone and its deadline
// really passed. ErrLeaseAlive means a heartbeat won the race;
// ErrAlreadyOffline means another sweeper (or a deregistration) got there first.
func (s *Store) ExpireLease(ctx context.Context, runnerID string) (Transition, error) {
	return s.offline(ctx, runnerID, wire.ReasonLeaseExpired, 0, true, leaseExpiredTaskError)
}

func (s *Store) offline(ctx context.Context, id, reason string, epoch int64, checkLease bool, taskErr string) (Transition, error) {
	res, err := offlineScript.Run(ctx, s.rdb, offlineKeys(id), s.offlineArgs(id, reason, epoch, checkLease, taskErr)...).Slice()
	if err != nil {
		return Transition{}, fmt.Errorf("store: offline %s (%s): %w", id, reason, err)
	}
	return decodeOffline(id, epoch, res)
}

// offlineKeys are the KEYS of offline.lua for one runner.
func offlineKeys(id string) []string {
	return []string{
		RunnerKey(id), LeaseKey(id), LeaseDeadlinesKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		StatusIndexKey(string(wire.RunnerOffline)), RunnerActiveKey(id), RunnerPendingKey(id),
		RunnerCancelKey(id), TaskDeadlinesKey(), QuarantineKey(), OutboxKey(), StatsKey(),
	}
}

// offlineArgs are the ARGV of offline.lua.
func (s *Store) offlineArgs(id, reason string, epoch int64, checkLease bool, taskErr string) []any {
	check := "0"
	if checkLease {
		check = "1"
	}
	return []any{id, reason, TaskKeyPrefix, epoch, check, taskErr, s.opts.TaskRetention.Milliseconds()}
}

// decodeOffline turns offline.lua's reply into a Transition or a sentinel error.
func decodeOffline(id string, epoch int64, res []any) (Transition, error) {
	switch toInt(res[0]) {
	case 0:
	case 1:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrRunnerNotFound)
	case 2:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrAlreadyOffline)
	case 3:
		return Transition{}, fmt.Errorf("store: offline %s (epoch %d, current %d): %w", id, epoch, toInt(res[1]), ErrStaleEpoch)
	case 4:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrLeaseAlive)
	default:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, errUnexpectedResponse)
	}
	if len(res) < 5 {
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, errUnexpectedResponse)
	}
	return Transition{
		RunnerID:       id,
		Epoch:          toInt(res[1]),
		LeaseExpiredAt: time.UnixMilli(toInt(res[2])).UTC(),
		At:             time.UnixMilli(toInt(res[3])).UTC(),
		FailedTaskIDs:  toStrings(res[4]),
	}, nil
}

// TokenHash returns the stored hash of a runner's token.
func (s *Store) TokenHash(ctx context.Context, runnerID string) (string, error) {
	h, err := s.rdb.HGet(ctx, RunnerKey(runnerID), "tokenHash").Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store: token of %s: %w", runnerID, ErrRunnerNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: token of %s: %w", runnerID, err)
	}
	return h, nil
}

// GetRunner reads one runner.
func (s *Store) GetRunner(ctx context.Context, id string) (wire.RunnerInfo, error) {
	m, err := s.rdb.HGetAll(ctx, RunnerKey(id)).Result()
	if err != nil {
		return wire.RunnerInfo{}, fmt.Errorf("store: get runner %s: %w", id, err)
	}
	if len(m) == 0 {
		return wire.RunnerInfo{}, fmt.Errorf("store: get runner %s: %w", id, ErrRunnerNotFound)
	}
	return decodeRunner(m), nil
}

// ListRunnersParams filters and pages a runner listing. Status is a lifecycle
// status (online, unreachable, offline); Cursor is the last id of the previous page.
type ListRunnersParams struct {
	Status string
	Realm  string
	Cursor string
	Limit  int
}

// ListRunners pages through an index in id order. Its cost depends on the
// page size, never on the fleet size: with both filters it walks the smaller
// index and filters the page, so a page may hold fewer than Limit runners
// while NextCursor is still set.
func (s *Store) ListRunners(ctx context.Context, p ListRunnersParams) (wire.RunnerList, error) {
	limit := clampLimit(p.Limit)
	index := RunnersKey()
	switch {
	case p.Realm != "":
		index = RealmIndexKey(p.Realm)
	case p.Status != "":
		index = StatusIndexKey(p.Status)
	}
	min := "-"
	if p.Cursor != "" {
		min = "(" + p.Cursor
	}
	ids, err := s.rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil {
		return wire.RunnerList{}, fmt.Errorf("store: list runners: %w", err)
	}
	out := wire.RunnerList{Runners: []wire.RunnerInfo{}}
	if len(ids) > limit {
		ids = ids[:limit]
		out.NextCursor = ids[limit-1]
	}
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, RunnerKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wire.RunnerList{}, fmt.Errorf("store: list runners: %w", err)
	}
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		r := decodeRunner(m)
		if p.Status != "" && string(r.Status) != p.Status {
			continue
		}
		out.Runners = append(out.Runners, r)
	}
	return out, nil
}

// UpdateEndpoint changes a runner's endpoint.
func (s *Store) UpdateEndpoint(ctx context.Context, runnerID, endpoint string) error {
	return s.setFields(ctx, runnerID, "endpoint", endpoint)
}

// RequestUpdate stores a PendingUpdate that rides on every heartbeat reply
// until the runner reports that version.
func (s *Store) RequestUpdate(ctx context.Context, runnerID string, u wire.PendingUpdate) error {
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("store: request update %s: %w", runnerID, err)
	}
	return s.setFields(ctx, runnerID, "pendingUpdate", string(b))
}

func (s *Store) setFields(ctx context.Context, runnerID string, kv ...any) error {
	code, err := setFieldsScript.Run(ctx, s.rdb, []string{RunnerKey(runnerID)}, kv...).Int()
	if err != nil {
		return fmt.Errorf("store: set fields of %s: %w", runnerID, err)
	}
	if code == 1 {
		return fmt.Errorf("store: set fields of %s: %w", runnerID, ErrRunnerNotFound)
	}
	return nil
}

// DispatchParams describes a task to dispatch. IdempotencyKey, when set, makes
// a retried dispatch return the task the first one created.
type DispatchParams struct {
	RunnerID       string
	Type           string
	Payload        json.RawMessage
	Timeout        time.Duration
	IdempotencyKey string
}

// Dispatch creates a pending task. created is false when the idempotency key
// returned an existing task.
func (s *Store) Dispatch(ctx context.Context, p DispatchParams) (task wire.RunnerTask, created bool, err error) {
	tid := NewID("tsk_")
	useIdem := "0"
	if p.IdempotencyKey != "" {
		useIdem = "1"
	}
	keys := []string{
		RunnerKey(p.RunnerID), TaskKey(tid), RunnerTasksKey(p.RunnerID), RunnerPendingKey(p.RunnerID),
		RunnerActiveKey(p.RunnerID), TaskDeadlinesKey(), IdempotencyKey(p.RunnerID, p.IdempotencyKey), StatsKey(),
	}
	res, err := dispatchScript.Run(ctx, s.rdb, keys,
		tid, p.RunnerID, p.Type, string(p.Payload), p.Timeout.Milliseconds(), useIdem,
		s.opts.IdempotencyTTL.Milliseconds(), DispatchChannel(), fingerprint(p),
	).Slice()
	if err != nil {
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, err)
	}
	switch toInt(res[0]) {
	case 0:
		created := time.UnixMilli(toInt(res[2])).UTC()
		return wire.RunnerTask{
			ID: tid, RunnerID: p.RunnerID, Type: p.Type, Payload: p.Payload, Status: wire.TaskPending,
			TimeoutMs: p.Timeout.Milliseconds(), CreatedAt: created,
		}, true, nil
	case 5:
		t, err := s.GetTask(ctx, toString(res[1]))
		return t, false, err
	case 6:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s (key made task %s): %w", p.RunnerID, toString(res[1]), ErrIdempotencyReused)
	case 1:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerNotFound)
	case 2:
		if toString(res[1]) == string(wire.RunnerUnreachable) {
			return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerUnreachable)
		}
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerOffline)
	}
	return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, errUnexpectedResponse)
}

// fingerprint identifies what a dispatch asks for, so that an
// Idempotency-Key reused for a different request is refused instead of
// silently answered with another task. JSON is compacted first: the same
// payload with other white space is the same request.
func fingerprint(p DispatchParams) string {
	var payload bytes.Buffer
	if json.Compact(&payload, p.Payload) != nil {
		payload.Reset()
		payload.Write(p.Payload)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", p.Type, p.Timeout.Milliseconds())
	h.Write(payload.Bytes())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// GetTask reads one task.
func (s *Store) GetTask(ctx context.Context, id string) (wire.RunnerTask, error) {
	m, err := s.rdb.HGetAll(ctx, TaskKey(id)).Result()
	if err != nil {
		return wire.RunnerTask{}, fmt.Errorf("store: get task %s: %w", id, err)
	}
	if len(m) == 0 {
		return wire.RunnerTask{}, fmt.Errorf("store: get task %s: %w", id, ErrTaskNotFound)
	}
	return decodeTask(m), nil
}

// ListTasksParams filters and pages a runner's tasks, newest first. Cursor is
// the opaque NextCursor of the previous page.
type ListTasksParams struct {
	RunnerID string
	Status   wire.TaskStatus
	Cursor   string
	Limit    int
}

// ListTasks lists a runner's tasks. Pending tasks come from the pending index;
// other filters page the runner's task index and filter the page.
func (s *Store) ListTasks(ctx context.Context, p ListTasksParams) (wire.TaskList, error) {
	limit := clampLimit(p.Limit)
	index := RunnerTasksKey(p.RunnerID)
	if p.Status == wire.TaskPending {
		index = RunnerPendingKey(p.RunnerID)
	}
	// The cursor is "<score>:<last task id>": tasks created in the same
	// millisecond share a score, so the page resumes after the last id seen
	// among them instead of skipping them.
	max, offset := "+inf", int64(0)
	if score, last, ok := strings.Cut(p.Cursor, ":"); ok {
		if _, err := strconv.ParseInt(score, 10, 64); err == nil {
			max = score
			ties, err := s.rdb.ZRevRangeByScore(ctx, index, &redis.ZRangeBy{Min: score, Max: score}).Result()
			if err != nil {
				return wire.TaskList{}, fmt.Errorf("store: list tasks of %s: %w", p.RunnerID, err)
			}
			for _, m := range ties {
				if m >= last {
					offset++
				}
			}
		}
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Min: "-inf", Max: max, Offset: offset, Count: int64(limit) + 1}).Result()
	if err != nil {
		return wire.TaskList{}, fmt.Errorf("store: list tasks of %s: %w", p.RunnerID, err)
	}
	out := wire.TaskList{Tasks: []wire.RunnerTask{}}
	if len(zs) > limit {
		zs = zs[:limit]
		last := zs[limit-1]
		out.NextCursor = strconv.FormatInt(int64(last.Score), 10) + ":" + last.Member.(string)
	}
	if len(zs) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HGetAll(ctx, TaskKey(z.Member.(string)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wire.TaskList{}, fmt.Errorf("store: list tasks of %s: %w", p.RunnerID, err)
	}
	var gone []any
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			gone = append(gone, zs[i].Member)
			continue
		}
		t := decodeTask(m)
		if p.Status != "" && t.Status != p.Status {
			continue
		}
		out.Tasks = append(out.Tasks, t)
	}
	if len(gone) > 0 {
		// Finished tasks expire after the retention; drop their index entries.
		s.rdb.ZRem(ctx, index, gone...)
	}
	return out, nil
}

// TaskUpdateParams moves a task. Actor is "runner" or "operator"; a runner's
// Epoch is checked against its current lease epoch (0 skips the check).
type TaskUpdateParams struct {
	RunnerID string
	TaskID   string
	Status   wire.TaskStatus
	Result   json.RawMessage
	Error    string
	Epoch    int64
	Actor    string
}

// Actors of a task update.
const (
	ActorRunner   = "runner"
	ActorOperator = "operator"
)

// UpdateTask applies a state-machine step to a task.
func (s *Store) UpdateTask(ctx context.Context, p TaskUpdateParams) (wire.RunnerTask, error) {
	keys := []string{
		TaskKey(p.TaskID), RunnerKey(p.RunnerID), RunnerPendingKey(p.RunnerID), RunnerActiveKey(p.RunnerID),
		RunnerCancelKey(p.RunnerID), TaskDeadlinesKey(), StatsKey(),
	}
	res, err := taskUpdateScript.Run(ctx, s.rdb, keys,
		p.TaskID, p.RunnerID, string(p.Status), string(p.Result), p.Error, p.Epoch, p.Actor,
		s.opts.TaskRetention.Milliseconds(),
	).Slice()
	if err != nil {
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, err)
	}
	switch toInt(res[0]) {
	case 0:
		return decodeTask(pairsToMap(toStrings(res[1]))), nil
	case 1:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, ErrTaskNotFound)
	case 3:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (epoch %d, current %d): %w", p.TaskID, p.Epoch, toInt(res[1]), ErrStaleEpoch)
	case 4:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (is %s): %w", p.TaskID, toString(res[1]), ErrTaskTerminal)
	case 5:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (%s to %s): %w", p.TaskID, toString(res[1]), p.Status, ErrInvalidTransition)
	}
	return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, errUnexpectedResponse)
}

// FleetCounts are the fleet gauges, each an O(1) read.
type FleetCounts struct {
	Registered  int64
	Online      int64
	Unreachable int64
	Offline     int64
	Leases      int64
	Quarantined int64
}

// Counts reads the fleet gauges from the indexes (ZCARD is O(1)), so every
// replica reports the same truth at a cost independent of the fleet size.
func (s *Store) Counts(ctx context.Context) (FleetCounts, error) {
	pipe := s.rdb.Pipeline()
	reg := pipe.ZCard(ctx, RunnersKey())
	on := pipe.ZCard(ctx, StatusIndexKey(string(wire.RunnerOnline)))
	un := pipe.ZCard(ctx, StatusIndexKey(string(wire.RunnerUnreachable)))
	off := pipe.ZCard(ctx, StatusIndexKey(string(wire.RunnerOffline)))
	leases := pipe.ZCard(ctx, LeaseDeadlinesKey())
	q := pipe.ZCard(ctx, QuarantineKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return FleetCounts{}, fmt.Errorf("store: counts: %w", err)
	}
	return FleetCounts{
		Registered: reg.Val(), Online: on.Val(), Unreachable: un.Val(), Offline: off.Val(),
		Leases: leases.Val(), Quarantined: q.Val(),
	}, nil
}

// Stats reads the fleet-wide counters (tasks_dispatched,
// tasks_completed:<status>, transitions:<reason>).
func (s *Store) Stats(ctx context.Context) (map[string]int64, error) {
	m, err := s.rdb.HGetAll(ctx, StatsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out, nil
}

func clampLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	if n > MaxListLimit {
		return MaxListLimit
	}
	return n
}
