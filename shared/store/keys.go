package store

// Every Redis key the control plane uses is built here and nowhere else.
//
// All keys share the hash tag {ygg}, so every key lives in one cluster slot and
// the Lua scripts, which touch several keys at once, stay legal on a Redis
// Cluster. Scripts that must build per-task keys receive the prefix from
// TaskKeyPrefix instead of spelling it out.

const prefix = "{ygg}:"

// RunnerKey is the runner record. HASH: id, name, version, realm, endpoint,
// labels (JSON), capacity, status, epoch, tokenHash, registeredAt,
// lastHeartbeat, leaseExpiresAt (ms), resources (JSON), tasksRunning,
// pendingUpdate (JSON), offlineReason, offlineAt, unreachableAt (ms),
// startedAt (ms: the process start the runner's heartbeats report),
// heartbeatTraceparent (W3C traceparent of the server span of the request
// that last renewed the lease, a heartbeat or the registration; "" when
// tracing is off: the span an offline transition links to).
func RunnerKey(id string) string { return prefix + "runner:" + id }

// LeaseKey is a runner's lease. STRING holding the epoch, with a PX TTL: its
// expiry (and the keyspace event it raises) is what the sweeper watches.
func LeaseKey(id string) string { return prefix + "lease:" + id }

// LeaseKeyPrefix is what every LeaseKey starts with; the sweeper strips it
// from keyspace expiry events.
const LeaseKeyPrefix = prefix + "lease:"

// LeaseDeadlinesKey is the lease deadline index. ZSET: member runner id,
// score lease deadline in ms (Redis TIME). Only runners holding a lease are in it.
func LeaseDeadlinesKey() string { return prefix + "leases" }

// RunnersKey indexes every runner ever registered. ZSET: member runner id,
// score 0, so that listing pages lexicographically with ZRANGEBYLEX.
func RunnersKey() string { return prefix + "runners" }

// StatusIndexKey indexes runners by lifecycle status (online, unreachable,
// offline). ZSET: member runner id, score 0. ZCARD gives the fleet gauges.
func StatusIndexKey(status string) string { return prefix + "runners:status:" + status }

// OfflineSinceKey indexes offline runners by when they went offline, for
// the retention purge. ZSET: member runner id, score offlineAt in ms. Added by
// offline.lua, removed by register.lua and runner_purge.lua.
func OfflineSinceKey() string { return prefix + "runners:offline-since" }

// RealmIndexKey indexes the runners of one realm. ZSET: member runner id, score 0.
func RealmIndexKey(realm string) string { return prefix + "realm:" + realm }

// RealmIndexPrefix is what every RealmIndexKey starts with.
const RealmIndexPrefix = prefix + "realm:"

// RealmsKey lists the realms. ZSET: member realm name, score 0 (paged with
// ZRANGEBYLEX). A member always has a RealmRecordKey; realm_create.lua and
// register.lua add, realm_delete.lua removes.
func RealmsKey() string { return prefix + "realms" }

// RealmRecordKey is a realm. HASH: name, description, state (active,
// draining, closed), policies (JSON, without the secret), webhookSecret,
// createdAt, stateChangedAt (ms), stateChangedBy (key id or "global
// operator"), and the policies scripts read as flat fields: p:leaseTtlMs,
// p:heartbeatIntervalMs, p:maxRunners, p:registerRate, p:registerBurst,
// p:massExpiryPercent ("" or absent: the global setting).
func RealmRecordKey(name string) string { return prefix + "realmrec:" + name }

// RealmRecordPrefix is what every RealmRecordKey starts with; scripts that
// find a runner's realm build its record key from it.
const RealmRecordPrefix = prefix + "realmrec:"

// RealmLiveKey holds the live (online or unreachable) runners of one realm,
// for the realm's maxRunners. ZSET: member runner id, score 0. register.lua
// adds, offline.lua removes.
func RealmLiveKey(name string) string { return prefix + "realmlive:" + name }

// RealmLivePrefix is what every RealmLiveKey starts with.
const RealmLivePrefix = prefix + "realmlive:"

// RealmBucketKey is a realm's registration token bucket. HASH: tokens
// (float), at (ms, Redis TIME of the last refill), with a PX TTL of the time
// a full refill takes. Read and written by register.lua only.
func RealmBucketKey(name string) string { return prefix + "realmbucket:" + name }

// RealmBucketPrefix is what every RealmBucketKey starts with.
const RealmBucketPrefix = prefix + "realmbucket:"

// RealmKeysKey lists the keys issued for one realm. HASH: field key id,
// value the key's SHA-256 hex (the RealmKeyRecordKey it points to).
func RealmKeysKey(name string) string { return prefix + "realmkeys:" + name }

// RealmKeyRecordKey is one realm-scoped key, found by the SHA-256 hex of the
// key itself (the key is never stored). HASH: id, realm, name, role
// (register or operator), hash (the SHA-256 hex again, compared in
// constant time), createdAt, lastUsedAt (ms).
func RealmKeyRecordKey(hash string) string { return prefix + "realmkey:" + hash }

// RealmKeyRecordPrefix is what every RealmKeyRecordKey starts with.
const RealmKeyRecordPrefix = prefix + "realmkey:"

// TaskKey is a task. HASH: id, runnerId, type, payload, status, timeoutMs,
// createdAt, startedAt, finishedAt (ms), result, error, epoch.
func TaskKey(id string) string { return prefix + "task:" + id }

// TaskKeyPrefix is what every TaskKey starts with; scripts that fail a
// runner's tasks build task keys from it.
const TaskKeyPrefix = prefix + "task:"

// RunnerTasksKey indexes all of a runner's tasks. ZSET: member task id,
// score creation time in ms.
func RunnerTasksKey(runnerID string) string { return prefix + "runner:" + runnerID + ":tasks" }

// RunnerPendingKey holds a runner's dispatched, not yet started tasks. ZSET:
// member task id, score creation time in ms.
func RunnerPendingKey(runnerID string) string { return prefix + "runner:" + runnerID + ":pending" }

// RunnerActiveKey holds a runner's unfinished (pending or running) tasks.
// SET of task ids.
func RunnerActiveKey(runnerID string) string { return prefix + "runner:" + runnerID + ":active" }

// RunnerCancelKey holds running tasks the runner must stop (cancelled by an
// operator or timed out). ZSET: member task id, score time added in ms.
func RunnerCancelKey(runnerID string) string { return prefix + "runner:" + runnerID + ":cancel" }

// TasksKey indexes every task of the fleet, for GET /tasks. ZSET: member
// task id, score creation time in ms. Written by dispatch.lua; entries whose
// task hash expired are dropped when a listing meets them and by the
// sweeper's rolling trim (TrimTaskIndex).
func TasksKey() string { return prefix + "tasks" }

// TaskDeadlinesKey is the task deadline index. ZSET: member task id, score
// dispatch time + timeoutMs in ms. Only unfinished tasks with a timeout are in it.
func TaskDeadlinesKey() string { return prefix + "tasks:deadlines" }

// IdempotencyKey maps a dispatch's Idempotency-Key to the task it created.
// STRING holding the task id, with a TTL.
func IdempotencyKey(runnerID, key string) string {
	return prefix + "idem:" + runnerID + ":" + key
}

// OutboxKey is the durable outbox of lifecycle events read by the hooks
// relay. STREAM: fields type, ts (ms), data (JSON), traceparent (W3C
// traceparent of the span that wrote the event, "" when none: the
// transition's, the registering or recovering heartbeat request's).
func OutboxKey() string { return prefix + "outbox" }

// StatsKey holds fleet-wide counters. HASH: tasks_dispatched,
// tasks_completed:<status>, transitions:<reason>, quarantine_entries,
// realm_quarantine_entries, realm_quarantine_exits:<reason>,
// quarantine_exits:<reason>, outage_grants, outage_leases_rearmed.
func StatsKey() string { return prefix + "stats" }

// QuarantineKey holds the runners the sweeper quarantined after a correlated
// loss. ZSET: member runner id, score time quarantined in ms.
func QuarantineKey() string { return prefix + "quarantine" }

// QuarantineStateKey is the sweeper's correlated-loss state. HASH: active
// (0/1), since (ms), reason, rule (mass_expiry or fleet_silent), count,
// exitedAt (ms), exitReason.
func QuarantineStateKey() string { return prefix + "quarantine:state" }

// RecentExpiriesKey records recent lease expiries for correlated-loss
// detection. ZSET: member runner id, score expiry time in ms.
func RecentExpiriesKey() string { return prefix + "expiries:recent" }

// RealmRecentExpiriesKey records one realm's recent lease expiries, for the
// per-realm mass_expiry rule. ZSET: member runner id, score expiry time in
// ms (a TTL of one window).
func RealmRecentExpiriesKey(realm string) string { return RealmRecentExpiriesPrefix + realm }

// RealmRecentExpiriesPrefix is what every RealmRecentExpiriesKey starts with.
const RealmRecentExpiriesPrefix = prefix + "realmexpiries:"

// RealmQuarantineKey holds the runners a realm's own quarantine made
// unreachable. ZSET: member runner id, score time quarantined in ms.
func RealmQuarantineKey(realm string) string { return RealmQuarantinePrefix + realm }

// RealmQuarantinePrefix is what every RealmQuarantineKey starts with.
const RealmQuarantinePrefix = prefix + "realmquarantine:"

// RealmQuarantineStateKey is one realm's correlated-loss state. HASH: as
// QuarantineStateKey (active, since, reason, rule, count, exitedAt,
// exitReason).
func RealmQuarantineStateKey(realm string) string { return RealmQuarantineStatePrefix + realm }

// RealmQuarantineStatePrefix is what every RealmQuarantineStateKey starts with.
const RealmQuarantineStatePrefix = prefix + "realmqstate:"

// QuarantinedRealmsKey lists the realms whose own quarantine is active or
// still holds runners. ZSET: member realm name, score since (ms).
func QuarantinedRealmsKey() string { return prefix + "quarantinedrealms" }

// DispatchChannel is the pub/sub channel on which a dispatch announces the
// runner id, waking long polls on every API replica.
func DispatchChannel() string { return prefix + "dispatch" }

// OutagesKey is the history of control-plane outage windows (a Redis
// restart, the API's breaker open, an overload, a sweeper that lost Redis).
// ZSET: member window id "<source>:<fromMs>:<toMs>", score toMs. The latest
// outageHistory windows are kept.
func OutagesKey() string { return prefix + "outages" }

// OutagesPendingKey holds the outage windows whose failover grace has not
// been granted yet. ZSET: member window id (as in OutagesKey), score fromMs.
// The lease gate sweeps nothing while it is not empty.
func OutagesPendingKey() string { return prefix + "outages:pending" }

// OutageGrantsKey records each granted window. HASH: field window id, value
// "<grantedAtMs>:<leases re-armed>:<times granted>".
func OutageGrantsKey() string { return prefix + "outages:granted" }

// RedisSeenKey is the Redis instance the sweepers last saw. HASH: runId
// (INFO server run_id), at (ms, Redis TIME of the latest check). A run_id
// other than the live one means Redis restarted (or failed over) since at.
func RedisSeenKey() string { return prefix + "redis:seen" }

// TaskEventsChannel is the pub/sub channel on which a task status change
// (task_update.lua) announces the runner id, so that the web console on
// every API replica refreshes what it shows. Messages are hints.
func TaskEventsChannel() string { return prefix + "events" }
