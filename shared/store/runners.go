package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// RegisterParams describes a registration. TokenHash is the hash of the
// runner's new token; the token itself never reaches the store.
//
// A live runner (online or unreachable) is re-registered only by a caller
// holding its credential: ActsForAnyRunner (an API key RUNNER_AUTH lets act
// as any runner, or auth off), or CallerTokenHash equal to the runner's
// current token hash. Anyone else gets ErrRunnerLive. An offline or unknown
// runner needs neither.
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

	ActsForAnyRunner bool
	CallerTokenHash  string

	// Realm is the realm to register into ("": the default realm).
	// RealmScoped: the caller's key belongs to Realm, so a runner of another
	// realm is ErrRunnerNotFound to it. RealmMustExist refuses an unknown
	// realm (ErrRealmNotFound) instead of creating it on the fly.
	RealmScoped    bool
	RealmMustExist bool
	// RegisterRate (per second, 0 = no limit) and RegisterBurst fill each
	// realm's token bucket, unless the realm's policies override them.
	RegisterRate  float64
	RegisterBurst int
	// HeartbeatInterval is the global interval, for the reply.
	HeartbeatInterval time.Duration
}

// Lease is a runner's lease as granted by a registration or heartbeat, with
// the TTL and heartbeat interval it was granted under (the realm's policies
// or the global settings).
type Lease struct {
	Epoch             int64
	ExpiresAt         time.Time
	TTL               time.Duration
	HeartbeatInterval time.Duration
}

// register.lua's return codes.
const (
	registerDone         = 0
	registerFull         = 1
	registerLive         = 2
	registerRealmState   = 3
	registerRealmUnknown = 4
	registerOtherRealm   = 5
	registerRateLimited  = 6
)

// heartbeat.lua's return codes.
const (
	heartbeatDone       = 0
	heartbeatNotFound   = 1
	heartbeatOffline    = 2
	heartbeatStaleEpoch = 3
	heartbeatBadToken   = 4
)

// set_fields.lua's return codes.
const (
	setFieldsDone     = 0
	setFieldsNotFound = 1
)

// Register registers p.ID, or brings it back under a new epoch; ctx's span
// becomes the runner's heartbeatTraceparent and the runner.registered
// event's trace context. It returns
// ErrFleetFull when MaxRunners live runners exist already, and ErrRunnerLive
// when p.ID is live and the caller holds none of its credentials.
func (s *Store) Register(ctx context.Context, p RegisterParams) (wire.RunnerInfo, Lease, error) {
	labels := ""
	if len(p.Labels) > 0 {
		b, err := json.Marshal(p.Labels)
		if err != nil {
			return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: labels: %w", p.ID, err)
		}
		labels = string(b)
	}
	if p.Realm == "" {
		p.Realm = wire.DefaultRealm
	}
	keys := []string{
		RunnerKey(p.ID), LeaseKey(p.ID), LeaseDeadlinesKey(), RunnersKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		StatusIndexKey(string(wire.RunnerOffline)), RealmsKey(), OutboxKey(),
		RunnerActiveKey(p.ID), RunnerCancelKey(p.ID), QuarantineKey(), TaskDeadlinesKey(), StatsKey(),
		OfflineSinceKey(), RealmRecordKey(p.Realm), RealmLiveKey(p.Realm), RealmBucketKey(p.Realm),
	}
	res, err := registerScript.Run(ctx, s.rdb, keys,
		p.ID, p.Name, p.Version, p.Realm, p.Endpoint, labels, p.Capacity,
		p.TokenHash, p.LeaseTTL.Milliseconds(), p.MaxRunners, RealmIndexPrefix, TaskKeyPrefix,
		boolArg(p.ActsForAnyRunner), p.CallerTokenHash,
		RealmLivePrefix, boolArg(p.RealmScoped), boolArg(!p.RealmMustExist),
		strconv.FormatFloat(p.RegisterRate, 'f', -1, 64), p.RegisterBurst, p.HeartbeatInterval.Milliseconds(), telemetry.Traceparent(ctx),
	).Slice()
	if err != nil {
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, err)
	}
	switch scriptCode(res) {
	case registerFull:
		if len(res) > 1 && toString(res[1]) == "realm" {
			return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s into %s: %w", p.ID, p.Realm, ErrRealmFull)
		}
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, ErrFleetFull)
	case registerLive:
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, ErrRunnerLive)
	case registerRealmState:
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s into %s: %w", p.ID, p.Realm, realmStateErr(toString(res[1])))
	case registerRealmUnknown:
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s into %s: %w", p.ID, p.Realm, ErrRealmNotFound)
	case registerOtherRealm:
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: of another realm: %w", p.ID, ErrRunnerNotFound)
	case registerRateLimited:
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s into %s: %w", p.ID, p.Realm,
			&RateError{After: time.Duration(toInt(res[1])) * time.Millisecond})
	}
	if len(res) < 7 {
		return wire.RunnerInfo{}, Lease{}, fmt.Errorf("store: register %s: %w", p.ID, errUnexpectedResponse)
	}
	lease := Lease{Epoch: toInt(res[1]), ExpiresAt: time.UnixMilli(toInt(res[2])).UTC(),
		TTL: time.Duration(toInt(res[5])) * time.Millisecond, HeartbeatInterval: time.Duration(toInt(res[6])) * time.Millisecond}
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
	RunnerID string
	Epoch    int64
	LeaseTTL time.Duration
	// HeartbeatInterval is the global interval (a realm policy overrides it).
	HeartbeatInterval time.Duration
	Activity          wire.RunnerStatus
	Resources         *wire.SystemResources
	TasksRunning      *int
	Version           string
	// StartedAt is the process start the runner reports (zero: unchanged).
	StartedAt time.Time
	// TokenHash, when set, is the hash of the runner token the caller
	// presented: the script refuses the heartbeat (ErrBadCredential) unless
	// it is the runner's current one. Empty: the caller's credential acts
	// for any runner (an API key RUNNER_AUTH allows, or auth off).
	TokenHash string
}

// HeartbeatResult is what the controller hands back on a heartbeat.
type HeartbeatResult struct {
	Lease         Lease
	PendingUpdate *wire.PendingUpdate
	Tasks         []wire.RunnerTask
	CancelTaskIDs []string
	// RealmState is the state of the runner's realm ("" when it has no record).
	RealmState wire.RealmState
}

// Heartbeat renews a lease, storing the traceparent of ctx's span (the
// request's) as the runner's heartbeatTraceparent, the span an offline
// transition links to. It returns ErrRunnerNotFound, ErrRunnerOffline or
// ErrStaleEpoch when the runner must register (again), ErrBadCredential when
// p.TokenHash is set and is not the runner's. Concurrent heartbeats share
// pipelines when the store batches them (Options.HeartbeatBatch): each is
// still one script call, atomic on its own.
func (s *Store) Heartbeat(ctx context.Context, p HeartbeatParams) (HeartbeatResult, error) {
	resources := ""
	if p.Resources != nil {
		// go-json: the same bytes as encoding/json for this struct, in a
		// fraction of the time (it showed in the heartbeat profile).
		b, err := gojson.Marshal(p.Resources)
		if err != nil {
			return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: resources: %w", p.RunnerID, err)
		}
		resources = string(b)
	}
	tasksRunning := ""
	if p.TasksRunning != nil {
		tasksRunning = strconv.Itoa(*p.TasksRunning)
	}
	startedAt := ""
	if !p.StartedAt.IsZero() {
		startedAt = strconv.FormatInt(p.StartedAt.UnixMilli(), 10)
	}
	id := p.RunnerID
	keys := []string{
		RunnerKey(id), LeaseKey(id), LeaseDeadlinesKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		QuarantineKey(), RunnerPendingKey(id), RunnerCancelKey(id), OutboxKey(),
	}
	args := []any{
		id, p.Epoch, p.LeaseTTL.Milliseconds(), string(p.Activity), resources, tasksRunning, p.Version,
		TaskKeyPrefix, s.opts.MaxTasksPerReply, s.opts.CancelRetention.Milliseconds(), startedAt,
		RealmRecordPrefix, p.HeartbeatInterval.Milliseconds(), telemetry.Traceparent(ctx), p.TokenHash,
	}
	res, err := s.heartbeats.run(ctx, s, keys, args)
	if err != nil {
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, err)
	}
	switch scriptCode(res) {
	case heartbeatDone:
	case heartbeatNotFound:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, ErrRunnerNotFound)
	case heartbeatOffline:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, ErrRunnerOffline)
	case heartbeatStaleEpoch:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s (epoch %d, current %d): %w", id, p.Epoch, toInt(res[1]), ErrStaleEpoch)
	case heartbeatBadToken:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, ErrBadCredential)
	default:
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, errUnexpectedResponse)
	}
	if len(res) < 8 {
		return HeartbeatResult{}, fmt.Errorf("store: heartbeat %s: %w", id, errUnexpectedResponse)
	}
	out := HeartbeatResult{
		Lease: Lease{Epoch: toInt(res[1]), ExpiresAt: time.UnixMilli(toInt(res[2])).UTC(),
			HeartbeatInterval: time.Duration(toInt(res[7])) * time.Millisecond},
		Tasks:         []wire.RunnerTask{},
		CancelTaskIDs: toStrings(res[5]),
		RealmState:    wire.RealmState(toString(res[6])),
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
	if code == setFieldsNotFound {
		return fmt.Errorf("store: set fields of %s: %w", runnerID, ErrRunnerNotFound)
	}
	return nil
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
