package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The realm scripts' return codes (each script's header lists them).
const (
	realmDone = 0

	realmCreateExists = 1

	realmUpdateNotFound = 1

	realmTransitionNotFound   = 1
	realmTransitionNotAllowed = 2

	realmDeleteNotFound  = 1
	realmDeleteNotClosed = 2
	realmDeleteLive      = 3
	realmDeleteDefault   = 4

	realmKeyIssueNoRealm  = 1
	realmKeyRevokeUnknown = 1
	realmKeyAuthUnknown   = 1
)

// RealmKeyTouchEvery is how often a realm key's lastUsedAt is written: at
// most once per interval, so that a key used on every heartbeat costs no
// write per request.
const RealmKeyTouchEvery = time.Minute

// ActorGlobalOperator is who a transition records when a global operator
// key (or auth off) made it.
const ActorGlobalOperator = "global operator"

// TaskRealm is the realm a task belongs to: its runner's realm when it was
// dispatched; tasks from before realms are the default realm's.
func TaskRealm(t wire.RunnerTask) string {
	if t.Realm == "" {
		return wire.DefaultRealm
	}
	return t.Realm
}

// RunnerRealm is the realm a runner belongs to ("" on record: the default).
func RunnerRealm(r wire.RunnerInfo) string {
	if r.Realm == "" {
		return wire.DefaultRealm
	}
	return r.Realm
}

// RealmWrite is a realm's stored form as the service computed it: the
// policies without the secret, the secret, and the flat p:* fields scripts read.
type RealmWrite struct {
	Name        string
	Description string
	Policies    wire.RealmPolicies
	// SetSecret, with Secret, changes the webhook secret ("" removes it).
	SetSecret      bool
	Secret         string
	SetDescription bool
}

func (w RealmWrite) encode() (policies, flat string, err error) {
	p := w.Policies
	p.WebhookSecret = ""
	pb, err := json.Marshal(p)
	if err != nil {
		return "", "", err
	}
	f := map[string]string{}
	if p.LeaseTTLMs != nil {
		f["p:leaseTtlMs"] = strconv.FormatInt(*p.LeaseTTLMs, 10)
	}
	if p.HeartbeatIntervalMs != nil {
		f["p:heartbeatIntervalMs"] = strconv.FormatInt(*p.HeartbeatIntervalMs, 10)
	}
	if p.MaxRunners != nil {
		f["p:maxRunners"] = strconv.Itoa(*p.MaxRunners)
	}
	if p.RegisterRate != nil {
		f["p:registerRate"] = strconv.FormatFloat(*p.RegisterRate, 'f', -1, 64)
	}
	if p.RegisterBurst != nil {
		f["p:registerBurst"] = strconv.Itoa(*p.RegisterBurst)
	}
	if p.MassExpiryPercent != nil {
		f["p:massExpiryPercent"] = strconv.Itoa(*p.MassExpiryPercent)
	}
	fb, err := json.Marshal(f)
	if err != nil {
		return "", "", err
	}
	// cjson decodes {} as an empty table either way
	return string(pb), string(fb), nil
}

// CreateRealm creates a realm; ErrRealmExists when the name is taken.
func (s *Store) CreateRealm(ctx context.Context, w RealmWrite, by string) error {
	return s.createRealm(ctx, w, by, false)
}

// EnsureDefaultRealm creates the default realm unless it exists.
func (s *Store) EnsureDefaultRealm(ctx context.Context) error {
	return s.createRealm(ctx, RealmWrite{Name: wire.DefaultRealm, Description: "runners that name no realm"}, "system", true)
}

func (s *Store) createRealm(ctx context.Context, w RealmWrite, by string, ensure bool) error {
	policies, flat, err := w.encode()
	if err != nil {
		return fmt.Errorf("store: create realm %s: %w", w.Name, err)
	}
	res, err := realmCreateScript.Run(ctx, s.rdb, []string{RealmRecordKey(w.Name), RealmsKey()},
		w.Name, w.Description, policies, w.Secret, by, flat, boolArg(ensure)).Slice()
	if err != nil {
		return fmt.Errorf("store: create realm %s: %w", w.Name, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return nil
	case realmCreateExists:
		return fmt.Errorf("store: create realm %s: %w", w.Name, ErrRealmExists)
	}
	return fmt.Errorf("store: create realm %s: %w", w.Name, errUnexpectedResponse)
}

// UpdateRealm writes a realm's merged description and policies.
func (s *Store) UpdateRealm(ctx context.Context, w RealmWrite) error {
	policies, flat, err := w.encode()
	if err != nil {
		return fmt.Errorf("store: update realm %s: %w", w.Name, err)
	}
	res, err := realmUpdateScript.Run(ctx, s.rdb, []string{RealmRecordKey(w.Name)},
		boolArg(w.SetDescription), w.Description, policies, boolArg(w.SetSecret), w.Secret, flat).Slice()
	if err != nil {
		return fmt.Errorf("store: update realm %s: %w", w.Name, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return nil
	case realmUpdateNotFound:
		return fmt.Errorf("store: update realm %s: %w", w.Name, ErrRealmNotFound)
	}
	return fmt.Errorf("store: update realm %s: %w", w.Name, errUnexpectedResponse)
}

// GetRealm reads a realm without its counts (GetRealmCounts adds them).
// The default realm is created when missing. The webhook secret is never
// returned: RealmSecret reads it for the hooks service.
func (s *Store) GetRealm(ctx context.Context, name string) (wire.Realm, error) {
	m, err := s.rdb.HGetAll(ctx, RealmRecordKey(name)).Result()
	if err != nil {
		return wire.Realm{}, fmt.Errorf("store: get realm %s: %w", name, err)
	}
	if len(m) == 0 && name == wire.DefaultRealm {
		if err := s.EnsureDefaultRealm(ctx); err != nil {
			return wire.Realm{}, err
		}
		return s.GetRealm(ctx, name)
	}
	if len(m) == 0 {
		return wire.Realm{}, fmt.Errorf("store: get realm %s: %w", name, ErrRealmNotFound)
	}
	return decodeRealm(m), nil
}

func decodeRealm(m map[string]string) wire.Realm {
	r := wire.Realm{Name: m["name"], Description: m["description"], State: wire.RealmState(m["state"]),
		StateChangedBy: m["stateChangedBy"], WebhookSecretSet: m["webhookSecret"] != ""}
	if s := m["policies"]; s != "" {
		_ = json.Unmarshal([]byte(s), &r.Policies)
	}
	r.Policies.WebhookSecret = ""
	if t := msTime(m["createdAt"]); t != nil {
		r.CreatedAt = *t
	}
	if t := msTime(m["stateChangedAt"]); t != nil {
		r.StateChangedAt = *t
	}
	return r
}

// RealmHooks is what the hooks service needs to deliver a realm's events:
// its destinations and the secret to sign them with.
type RealmHooks struct {
	URLs   []string
	Secret string
}

// GetRealmHooks reads a realm's webhook destinations and secret (the
// hooks service signs with it; it never leaves the control plane's side).
// An unknown realm has none.
func (s *Store) GetRealmHooks(ctx context.Context, name string) (RealmHooks, error) {
	v, err := s.rdb.HMGet(ctx, RealmRecordKey(name), "policies", "webhookSecret").Result()
	if err != nil {
		return RealmHooks{}, fmt.Errorf("store: realm hooks %s: %w", name, err)
	}
	var out RealmHooks
	if p, ok := v[0].(string); ok && p != "" {
		var pol wire.RealmPolicies
		if json.Unmarshal([]byte(p), &pol) == nil {
			out.URLs = pol.WebhookURLs
		}
	}
	out.Secret, _ = v[1].(string)
	return out, nil
}

// ListRealms pages the realms by name (the default realm always among them).
func (s *Store) ListRealms(ctx context.Context, cursor string, limit int) (wire.RealmList, error) {
	if err := s.EnsureDefaultRealm(ctx); err != nil {
		return wire.RealmList{}, err
	}
	limit = clampLimit(limit)
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	names, err := s.rdb.ZRangeByLex(ctx, RealmsKey(), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil {
		return wire.RealmList{}, fmt.Errorf("store: list realms: %w", err)
	}
	out := wire.RealmList{Realms: []wire.Realm{}}
	if len(names) > limit {
		names = names[:limit]
		out.NextCursor = names[limit-1]
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, n := range names {
		cmds[i] = pipe.HGetAll(ctx, RealmRecordKey(n))
	}
	if len(names) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return wire.RealmList{}, fmt.Errorf("store: list realms: %w", err)
		}
	}
	for _, c := range cmds {
		// a name left in the index by the label-only realms of old versions
		// has no record: not a realm
		if m := c.Val(); len(m) > 0 {
			out.Realms = append(out.Realms, decodeRealm(m))
		}
	}
	return out, nil
}

// MaxRealmCountRunners bounds how many runners GetRealmCounts reads.
const MaxRealmCountRunners = 10000

// GetRealmCounts counts a realm's runners by status and its unfinished
// tasks (pending, running), reading at most MaxRealmCountRunners runners.
func (s *Store) GetRealmCounts(ctx context.Context, name string) (runners, tasks map[string]int64, err error) {
	ids, err := s.rdb.ZRange(ctx, RealmIndexKey(name), 0, MaxRealmCountRunners-1).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("store: realm counts %s: %w", name, err)
	}
	runners = map[string]int64{string(wire.RunnerOnline): 0, string(wire.RunnerUnreachable): 0, string(wire.RunnerOffline): 0}
	tasks = map[string]int64{string(wire.TaskPending): 0, string(wire.TaskRunning): 0}
	if len(ids) == 0 {
		return runners, tasks, nil
	}
	pipe := s.rdb.Pipeline()
	st := make([]*redis.StringCmd, len(ids))
	act := make([]*redis.IntCmd, len(ids))
	pen := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		st[i] = pipe.HGet(ctx, RunnerKey(id), "status")
		act[i] = pipe.SCard(ctx, RunnerActiveKey(id))
		pen[i] = pipe.ZCard(ctx, RunnerPendingKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("store: realm counts %s: %w", name, err)
	}
	for i := range ids {
		if s := st[i].Val(); s != "" {
			runners[s]++
		}
		p := pen[i].Val()
		tasks[string(wire.TaskPending)] += p
		tasks[string(wire.TaskRunning)] += max(act[i].Val()-p, 0)
	}
	return runners, tasks, nil
}

// TransitionRealm moves a realm to state and writes realm.<state> to the
// outbox in the same script; by is who did it.
func (s *Store) TransitionRealm(ctx context.Context, name string, state wire.RealmState, by string) error {
	if name == wire.DefaultRealm {
		if err := s.EnsureDefaultRealm(ctx); err != nil {
			return err
		}
	}
	res, err := realmTransitionScript.Run(ctx, s.rdb, []string{RealmRecordKey(name), OutboxKey()}, name, string(state), by).Slice()
	if err != nil {
		return fmt.Errorf("store: realm %s to %s: %w", name, state, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return nil
	case realmTransitionNotFound:
		return fmt.Errorf("store: realm %s to %s: %w", name, state, ErrRealmNotFound)
	case realmTransitionNotAllowed:
		return fmt.Errorf("store: realm %s to %s from %s: %w", name, state, toString(res[1]), ErrRealmTransition)
	}
	return fmt.Errorf("store: realm %s to %s: %w", name, state, errUnexpectedResponse)
}

// DeleteRealm deletes a closed realm with no live runner: its record, keys
// and offline runners go, and realm.deleted goes to the outbox.
func (s *Store) DeleteRealm(ctx context.Context, name, by string) error {
	keys := []string{
		RealmRecordKey(name), RealmsKey(), RealmIndexKey(name), RealmLiveKey(name), RealmKeysKey(name), OutboxKey(),
		RunnersKey(), StatusIndexKey(string(wire.RunnerOffline)), OfflineSinceKey(), RealmBucketKey(name),
		RealmRecentExpiriesKey(name), RealmQuarantineKey(name), RealmQuarantineStateKey(name), QuarantinedRealmsKey(),
	}
	res, err := realmDeleteScript.Run(ctx, s.rdb, keys, name, by, runnerKeyPrefix, RealmKeyRecordPrefix).Slice()
	if err != nil {
		return fmt.Errorf("store: delete realm %s: %w", name, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return nil
	case realmDeleteNotFound:
		return fmt.Errorf("store: delete realm %s: %w", name, ErrRealmNotFound)
	case realmDeleteNotClosed:
		return fmt.Errorf("store: delete realm %s (%s): %w", name, toString(res[1]), ErrRealmTransition)
	case realmDeleteLive:
		return fmt.Errorf("store: delete realm %s: %w", name, ErrRealmHasLiveRunners)
	case realmDeleteDefault:
		return fmt.Errorf("store: delete realm %s: %w", name, ErrDefaultRealm)
	}
	return fmt.Errorf("store: delete realm %s: %w", name, errUnexpectedResponse)
}

// RealmKeyRecord is a realm-scoped key as stored (never the key itself).
type RealmKeyRecord struct {
	ID, Realm, Name, Role string
	// Hash is the stored SHA-256 hex, for the caller's constant-time check.
	Hash string
}

// IssueRealmKey stores a key's hash under realm; ErrRealmNotFound when the
// realm does not exist.
func (s *Store) IssueRealmKey(ctx context.Context, realm, id, hash, name, role string) (time.Time, error) {
	if realm == wire.DefaultRealm {
		if err := s.EnsureDefaultRealm(ctx); err != nil {
			return time.Time{}, err
		}
	}
	res, err := realmKeyIssueScript.Run(ctx, s.rdb, []string{RealmRecordKey(realm), RealmKeysKey(realm), RealmKeyRecordKey(hash)},
		realm, id, hash, name, role).Slice()
	if err != nil {
		return time.Time{}, fmt.Errorf("store: issue key in %s: %w", realm, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return time.UnixMilli(toInt(res[1])).UTC(), nil
	case realmKeyIssueNoRealm:
		return time.Time{}, fmt.Errorf("store: issue key in %s: %w", realm, ErrRealmNotFound)
	}
	return time.Time{}, fmt.Errorf("store: issue key in %s: %w", realm, errUnexpectedResponse)
}

// ListRealmKeys lists a realm's keys (never their material).
func (s *Store) ListRealmKeys(ctx context.Context, realm string) ([]wire.RealmKey, error) {
	m, err := s.rdb.HGetAll(ctx, RealmKeysKey(realm)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list keys of %s: %w", realm, err)
	}
	out := []wire.RealmKey{}
	if len(m) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for _, h := range m {
		cmds = append(cmds, pipe.HGetAll(ctx, RealmKeyRecordKey(h)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: list keys of %s: %w", realm, err)
	}
	for _, c := range cmds {
		r := c.Val()
		if len(r) == 0 {
			continue
		}
		k := wire.RealmKey{ID: r["id"], Name: r["name"], Role: r["role"], LastUsedAt: msTime(r["lastUsedAt"])}
		if t := msTime(r["createdAt"]); t != nil {
			k.CreatedAt = *t
		}
		out = append(out, k)
	}
	sortKeys(out)
	return out, nil
}

func sortKeys(ks []wire.RealmKey) {
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && (ks[j].CreatedAt.Before(ks[j-1].CreatedAt) ||
			(ks[j].CreatedAt.Equal(ks[j-1].CreatedAt) && ks[j].ID < ks[j-1].ID)); j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
}

// RevokeRealmKey deletes a realm's key: the next request with it, on any
// replica, finds no record. ErrRealmKeyNotFound when realm has no such key.
func (s *Store) RevokeRealmKey(ctx context.Context, realm, id string) error {
	res, err := realmKeyRevokeScript.Run(ctx, s.rdb, []string{RealmKeysKey(realm)}, id, RealmKeyRecordPrefix).Slice()
	if err != nil {
		return fmt.Errorf("store: revoke key in %s: %w", realm, err)
	}
	switch scriptCode(res) {
	case realmDone:
		return nil
	case realmKeyRevokeUnknown:
		return fmt.Errorf("store: revoke key in %s: %w", realm, ErrRealmKeyNotFound)
	}
	return fmt.Errorf("store: revoke key in %s: %w", realm, errUnexpectedResponse)
}

// LookupRealmKey resolves a realm-scoped key by its SHA-256 hex (one script
// call per request: a revoked key fails from the next request on, on every
// replica). ErrRealmKeyNotFound when no such key exists.
func (s *Store) LookupRealmKey(ctx context.Context, hash string) (RealmKeyRecord, error) {
	res, err := realmKeyAuthScript.Run(ctx, s.rdb, []string{RealmKeyRecordKey(hash)}, RealmKeyTouchEvery.Milliseconds()).Slice()
	if err != nil {
		return RealmKeyRecord{}, fmt.Errorf("store: realm key lookup: %w", err)
	}
	switch scriptCode(res) {
	case realmDone:
		if len(res) < 5 {
			return RealmKeyRecord{}, fmt.Errorf("store: realm key lookup: %w", errUnexpectedResponse)
		}
		return RealmKeyRecord{ID: toString(res[1]), Realm: toString(res[2]), Role: toString(res[3]), Hash: toString(res[4])}, nil
	case realmKeyAuthUnknown:
		return RealmKeyRecord{}, fmt.Errorf("store: realm key lookup: %w", ErrRealmKeyNotFound)
	}
	return RealmKeyRecord{}, fmt.Errorf("store: realm key lookup: %w", errUnexpectedResponse)
}

// RunnerRealmOf reads the realm a runner belongs to (the default realm for
// one that names none); ErrRunnerNotFound for an unknown runner.
func (s *Store) RunnerRealmOf(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.HMGet(ctx, RunnerKey(id), "status", "realm").Result()
	if err != nil {
		return "", fmt.Errorf("store: realm of %s: %w", id, err)
	}
	if v[0] == nil {
		return "", fmt.Errorf("store: realm of %s: %w", id, ErrRunnerNotFound)
	}
	r, _ := v[1].(string)
	if r == "" {
		r = wire.DefaultRealm
	}
	return r, nil
}

// RealmLiveCount is how many runners of realm are live (online or unreachable).
func (s *Store) RealmLiveCount(ctx context.Context, realm string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, RealmLiveKey(realm)).Result()
	if err != nil {
		return 0, fmt.Errorf("store: live runners of %s: %w", realm, err)
	}
	return n, nil
}

// MaxMetricRealms bounds how many realms RealmRunnerCounts reads (in name
// order), and so the realm label's values in the api's metrics.
const MaxMetricRealms = 1000

// maxUnreachableScan bounds how many unreachable runners RealmRunnerCounts
// reads the realm of.
const maxUnreachableScan = 10000

// RealmRunnerCount is one realm's runners by status.
type RealmRunnerCount struct {
	Realm                        string
	Online, Offline, Unreachable int64
}

// RealmRunnerCounts counts every realm's runners (up to MaxMetricRealms
// realms) by status with two pipelined reads: each realm's index (every
// status) and live set (online or unreachable), and the realm of each
// unreachable runner (normally none: they are the quarantined ones).
func (s *Store) RealmRunnerCounts(ctx context.Context) ([]RealmRunnerCount, error) {
	if err := s.EnsureDefaultRealm(ctx); err != nil {
		return nil, err
	}
	names, err := s.rdb.ZRange(ctx, RealmsKey(), 0, MaxMetricRealms-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: realm runner counts: %w", err)
	}
	pipe := s.rdb.Pipeline()
	all := make([]*redis.IntCmd, len(names))
	live := make([]*redis.IntCmd, len(names))
	for i, n := range names {
		all[i] = pipe.ZCard(ctx, RealmIndexKey(n))
		live[i] = pipe.ZCard(ctx, RealmLiveKey(n))
	}
	unr := pipe.ZRange(ctx, StatusIndexKey(string(wire.RunnerUnreachable)), 0, maxUnreachableScan-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: realm runner counts: %w", err)
	}
	unreachable := map[string]int64{}
	if ids := unr.Val(); len(ids) > 0 {
		pipe := s.rdb.Pipeline()
		realms := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			realms[i] = pipe.HGet(ctx, RunnerKey(id), "realm")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("store: realm runner counts: %w", err)
		}
		for _, r := range realms {
			name := r.Val()
			if name == "" {
				name = wire.DefaultRealm
			}
			unreachable[name]++
		}
	}
	out := make([]RealmRunnerCount, len(names))
	for i, n := range names {
		l, u := live[i].Val(), unreachable[n]
		out[i] = RealmRunnerCount{Realm: n, Online: max(l-u, 0), Unreachable: u, Offline: max(all[i].Val()-l, 0)}
	}
	return out, nil
}
