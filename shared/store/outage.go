package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// OutageRetention is how long a recorded outage window is kept after it
// ended: long enough for any sweeper to see it, short enough that the set
// stays small.
const OutageRetention = 24 * time.Hour

// record_outage.lua's return codes.
const (
	recordOutageAdded = 0
	recordOutageKnown = 1
)

// Outage is one recorded window in which the control plane failed.
type Outage struct {
	Source   string
	From, To time.Time
}

// RecordOutage records that the control plane, as seen by source ("api",
// "sweeper", ...), failed from from to to. Recording the same window twice
// is harmless; a longer window with the same source and start replaces the
// shorter one (a window recorded while it was still going on). Windows that
// ended more than OutageRetention ago are dropped.
func (s *Store) RecordOutage(ctx context.Context, from, to time.Time, source string) error {
	if source == "" || strings.Contains(source, ":") {
		return fmt.Errorf("store: record outage: source %q must be non-empty and hold no ':'", source)
	}
	if to.Before(from) {
		return fmt.Errorf("store: record outage: window ends (%s) before it starts (%s)", to, from)
	}
	start := source + ":" + strconv.FormatInt(from.UnixMilli(), 10) + ":"
	member := start + strconv.FormatInt(to.UnixMilli(), 10)
	code, err := recordOutageScript.Run(ctx, s.rdb, []string{OutagesKey()},
		member, to.UnixMilli(), OutageRetention.Milliseconds(), start).Int()
	if err != nil {
		return fmt.Errorf("store: record outage %s: %w", member, err)
	}
	if code != recordOutageAdded && code != recordOutageKnown {
		return fmt.Errorf("store: record outage %s: unexpected code %d", member, code)
	}
	return nil
}

// Outages returns the recorded windows that ended at or after since, oldest
// end first.
func (s *Store) Outages(ctx context.Context, since time.Time) ([]Outage, error) {
	members, err := s.rdb.ZRangeByScore(ctx, OutagesKey(), &redis.ZRangeBy{Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: outages: %w", err)
	}
	out := make([]Outage, 0, len(members))
	for _, m := range members {
		o, err := parseOutage(m)
		if err != nil {
			return nil, fmt.Errorf("store: outages: %w", err)
		}
		out = append(out, o)
	}
	return out, nil
}

func parseOutage(member string) (Outage, error) {
	parts := strings.Split(member, ":")
	if len(parts) != 3 {
		return Outage{}, errors.New("malformed outage member " + strconv.Quote(member))
	}
	from, err1 := strconv.ParseInt(parts[1], 10, 64)
	to, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Outage{}, fmt.Errorf("malformed outage member %q: %w", member, err)
	}
	return Outage{Source: parts[0], From: time.UnixMilli(from), To: time.UnixMilli(to)}, nil
}
