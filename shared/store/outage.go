package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Outage sources: who saw the control plane fail. Every window is granted
// the same failover grace, whatever its source.
const (
	// OutageBreaker is the API's breaker: open from the first failed call
	// to the probe that closed it.
	OutageBreaker = "breaker"
	// OutageOverload is the API shedding heartbeats (503 + Retry-After):
	// runners it refused could not renew.
	OutageOverload = "overload"
	// OutageRestart is a changed Redis run_id (a restart, or a failover to
	// another instance), found by CheckRestart.
	OutageRestart = "restart"
	// OutageSweeper is a sweeper that lost Redis: from its last successful
	// call to the first one after.
	OutageSweeper = "sweeper"
	// OutageSentinel is a Sentinel master switch seen by a service.
	OutageSentinel = "sentinel"
)

// outageHistory is how many outage windows OutagesKey keeps.
const outageHistory = 1000

// maxOutageSource bounds a source's length (it is part of the window id).
const maxOutageSource = 64

// errBadOutage refuses a window that is none (a caller's bug, not Redis').
var errBadOutage = errors.New("not an outage window")

// record_outage.lua's return codes (see its header).
const (
	outageRecorded = 0
	outageInvalid  = 1
)

// OutageWindow is one recorded outage.
type OutageWindow struct {
	// ID is "<source>:<fromMs>:<toMs>": the same window recorded twice is
	// stored once.
	ID       string
	Source   string
	From, To time.Time
}

// RecordOutage records that the control plane could not serve runners from
// from to to (to zero: until now, by Redis' clock), as seen by source (one
// of the Outage* constants). Before its next sweep the sweeper re-arms every
// lease that fell due in the window or falls due within one lease TTL after
// it (GrantOutageGrace): runners that could not renew are not failed for it.
//
// Callers: the API when its breaker closes again (OutageBreaker, from the
// first failed call), the API after it shed heartbeats under overload
// (OutageOverload, from the first refused heartbeat to the last; such a
// window is granted exactly like an outage: the refused runners could not
// renew either), a service that saw a Sentinel master switch
// (OutageSentinel), the sweeper after it lost Redis (OutageSweeper).
// CheckRestart records restarts itself. from and to are the caller's clock:
// take from a little early rather than late (a wider window only extends
// more leases, which is harmless). It needs Redis to answer: record once
// Redis is back, never from inside the outage.
func (s *Store) RecordOutage(ctx context.Context, from, to time.Time, source string) (OutageWindow, error) {
	if source == "" || len(source) > maxOutageSource || strings.Contains(source, ":") {
		return OutageWindow{}, fmt.Errorf("store: record outage: source %q: %w", source, errBadOutage)
	}
	var toMs int64
	if !to.IsZero() {
		toMs = to.UnixMilli()
	}
	res, err := recordOutageScript.Run(ctx, s.rdb,
		[]string{OutagesKey(), OutagesPendingKey(), OutageGrantsKey()},
		from.UnixMilli(), toMs, source, outageHistory).Slice()
	if err != nil {
		return OutageWindow{}, fmt.Errorf("store: record outage (%s): %w", source, err)
	}
	switch scriptCode(res) {
	case outageRecorded:
	case outageInvalid:
		return OutageWindow{}, fmt.Errorf("store: record outage (%s) %s..%s: %w", source, from, to, errBadOutage)
	default:
		return OutageWindow{}, fmt.Errorf("store: record outage (%s): %w", source, errUnexpectedResponse)
	}
	if len(res) < 4 {
		return OutageWindow{}, fmt.Errorf("store: record outage (%s): %w", source, errUnexpectedResponse)
	}
	return OutageWindow{
		ID: toString(res[1]), Source: source,
		From: time.UnixMilli(toInt(res[2])).UTC(), To: time.UnixMilli(toInt(res[3])).UTC(),
	}, nil
}

// RestartCheck is what CheckRestart found.
type RestartCheck struct {
	// Restarted is true when this call found another Redis instance than
	// the one last seen: Window is the outage it recorded.
	Restarted bool
	Window    OutageWindow
	// Now is Redis' clock.
	Now time.Time
	// Pending is how many outage windows wait for their grace.
	Pending int64
}

// restart_check.lua's first reply element when it found a restart.
const restartFound = 1

// CheckRestart compares Redis' run_id with the one stored at the previous
// check (by any sweeper) and, when it changed, records the outage from that
// check to now (OutageRestart). One EVALSHA, cheap enough for every tick.
func (s *Store) CheckRestart(ctx context.Context) (RestartCheck, error) {
	res, err := restartCheckScript.Run(ctx, s.rdb,
		[]string{RedisSeenKey(), OutagesKey(), OutagesPendingKey(), OutageGrantsKey()}, outageHistory).Slice()
	if err != nil {
		return RestartCheck{}, fmt.Errorf("store: restart check: %w", err)
	}
	if len(res) < 5 {
		return RestartCheck{}, fmt.Errorf("store: restart check: %w", errUnexpectedResponse)
	}
	rc := RestartCheck{
		Restarted: scriptCode(res) == restartFound,
		Now:       time.UnixMilli(toInt(res[1])).UTC(),
		Pending:   toInt(res[4]),
	}
	if rc.Restarted {
		rc.Window = OutageWindow{
			ID: toString(res[2]), Source: OutageRestart,
			From: time.UnixMilli(toInt(res[3])).UTC(), To: rc.Now,
		}
	}
	return rc, nil
}

// Grace is what GrantOutageGrace did.
type Grace struct {
	// Windows are the outage windows granted by this call.
	Windows []string
	// Rearmed is how many leases it re-armed.
	Rearmed int64
	// Until is when the re-armed leases now end (Redis' clock).
	Until time.Time
}

// GrantOutageGrace gives every outage window not granted yet its failover
// grace, atomically (outage_grace.lua): each lease whose deadline lies in
// [window start, window end + ttl] is re-armed to now + grace, unless it
// already ends later, or was renewed since the window began and still holds
// more than keep (another API replica served that runner). Safe on every
// sweeper replica at once: a window is granted once.
func (s *Store) GrantOutageGrace(ctx context.Context, ttl, grace, keep time.Duration) (Grace, error) {
	res, err := outageGraceScript.Run(ctx, s.rdb,
		[]string{OutagesPendingKey(), OutageGrantsKey(), LeaseDeadlinesKey(), StatsKey()},
		runnerKeyPrefix, LeaseKeyPrefix, ttl.Milliseconds(), grace.Milliseconds(), keep.Milliseconds()).Slice()
	if err != nil {
		return Grace{}, fmt.Errorf("store: outage grace: %w", err)
	}
	if len(res) < 4 {
		return Grace{}, fmt.Errorf("store: outage grace: %w", errUnexpectedResponse)
	}
	return Grace{
		Windows: toStrings(res[3]), Rearmed: toInt(res[1]),
		Until: time.UnixMilli(toInt(res[2]) + grace.Milliseconds()).UTC(),
	}, nil
}

// OutageRecord is one window of the history with its grant.
type OutageRecord struct {
	OutageWindow
	Granted bool
	// Grant is "<grantedAtMs>:<leases re-armed>:<times granted>" once granted.
	Grant string
}

// Outages returns the latest limit outage windows, newest first.
func (s *Store) Outages(ctx context.Context, limit int) ([]OutageRecord, error) {
	ids, err := s.rdb.ZRevRange(ctx, OutagesKey(), 0, int64(clampLimit(limit))-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: outages: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	grants, err := s.rdb.HMGet(ctx, OutageGrantsKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: outages: %w", err)
	}
	out := make([]OutageRecord, len(ids))
	for i, id := range ids {
		out[i] = OutageRecord{OutageWindow: parseWindowID(id)}
		if g, ok := grants[i].(string); ok {
			out[i].Granted, out[i].Grant = true, g
		}
	}
	return out, nil
}

// parseWindowID splits a window id "<source>:<fromMs>:<toMs>" (the source
// never holds a colon: RecordOutage refuses one).
func parseWindowID(id string) OutageWindow {
	w := OutageWindow{ID: id}
	parts := strings.Split(id, ":")
	if len(parts) != 3 {
		return w
	}
	from, err1 := strconv.ParseInt(parts[1], 10, 64)
	to, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return w
	}
	w.Source, w.From, w.To = parts[0], time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	return w
}
