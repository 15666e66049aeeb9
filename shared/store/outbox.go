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

// OutboxReader reads the outbox stream (OutboxKey) as one consumer of a
// consumer group: entries it reads stay pending until it acknowledges them,
// and entries a dead consumer left pending can be claimed by another.
//
// Every method is one Redis command (or a read-only sequence), so none needs
// a script. It never writes events: the lifecycle scripts do.
type OutboxReader struct {
	rdb      redis.UniversalClient
	group    string
	consumer string
}

// NewOutboxReader returns a reader of the outbox for consumer in group.
func NewOutboxReader(c *Conn, group, consumer string) *OutboxReader {
	return &OutboxReader{rdb: c.rdb, group: group, consumer: consumer}
}

// OutboxEntry is one entry of the outbox stream, as read; DecodeEvent turns
// it into the event it records.
type OutboxEntry struct {
	ID     string
	Values map[string]any
}

func entries(msgs []redis.XMessage) []OutboxEntry {
	out := make([]OutboxEntry, len(msgs))
	for i, m := range msgs {
		out[i] = OutboxEntry{ID: m.ID, Values: m.Values}
	}
	return out
}

// Group is the consumer group's name.
func (o *OutboxReader) Group() string { return o.group }

// Consumer is this reader's consumer name.
func (o *OutboxReader) Consumer() string { return o.consumer }

// EnsureGroup creates the consumer group (and the stream) when missing. A new
// group starts at the beginning of the stream, so events recorded before the
// first relay ever ran are delivered too.
func (o *OutboxReader) EnsureGroup(ctx context.Context) error {
	err := o.rdb.XGroupCreateMkStream(ctx, OutboxKey(), o.group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("store: outbox group %s: %w", o.group, err)
	}
	return nil
}

// IsNoGroup reports whether err says the stream or group is gone (a Redis
// restart or flush): the caller calls EnsureGroup again.
func IsNoGroup(err error) bool {
	return redis.HasErrorPrefix(err, "NOGROUP")
}

// isNoSuchKey reports whether err is XINFO's answer for a missing stream.
func isNoSuchKey(err error) bool { return redis.HasErrorPrefix(err, "ERR no such key") }

// Read returns up to count new entries, waiting up to block for the first
// one. No entry within block returns nil, nil.
func (o *OutboxReader) Read(ctx context.Context, count int, block time.Duration) ([]OutboxEntry, error) {
	return o.read(ctx, ">", count, block)
}

// ReadOwnPending returns up to count entries already delivered to this
// consumer name and not acknowledged, from the oldest.
func (o *OutboxReader) ReadOwnPending(ctx context.Context, count int) ([]OutboxEntry, error) {
	return o.read(ctx, "0", count, -1)
}

func (o *OutboxReader) read(ctx context.Context, from string, count int, block time.Duration) ([]OutboxEntry, error) {
	res, err := o.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: o.group, Consumer: o.consumer, Streams: []string{OutboxKey(), from}, Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: outbox read: %w", err)
	}
	var out []OutboxEntry
	for _, s := range res {
		out = append(out, entries(s.Messages)...)
	}
	return out, nil
}

// Claim takes over up to count entries that other consumers of the group
// read but left unacknowledged for at least minIdle (a relay that died).
func (o *OutboxReader) Claim(ctx context.Context, minIdle time.Duration, count int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	start := "0-0"
	for len(out) < count {
		msgs, next, err := o.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: OutboxKey(), Group: o.group, Consumer: o.consumer, MinIdle: minIdle, Start: start, Count: int64(count - len(out)),
		}).Result()
		if err != nil {
			return out, fmt.Errorf("store: outbox claim: %w", err)
		}
		out = append(out, entries(msgs)...)
		if next == "0-0" || next == "" || next == start {
			break
		}
		start = next
	}
	return out, nil
}

// Ack acknowledges entries: they leave the pending list and become trimmable.
func (o *OutboxReader) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := o.rdb.XAck(ctx, OutboxKey(), o.group, ids...).Err(); err != nil {
		return fmt.Errorf("store: outbox ack: %w", err)
	}
	return nil
}

// Trim removes every entry the group is done with: entries older than both
// the oldest pending entry and the next entry the group has not read yet. It
// returns how many entries went.
//
// The group's last-delivered id is read before the pending list, so an entry
// read in between (newer than that id) is never below the threshold, and an
// entry acknowledged in between is one the group is done with. The outbox has
// one reader group; a second group would need the minimum over all groups.
func (o *OutboxReader) Trim(ctx context.Context) (int64, error) {
	groups, err := o.rdb.XInfoGroups(ctx, OutboxKey()).Result()
	if err != nil {
		if IsNoGroup(err) || isNoSuchKey(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("store: outbox trim: %w", err)
	}
	threshold := ""
	for _, g := range groups {
		if g.Name == o.group {
			threshold = nextStreamID(g.LastDeliveredID)
		}
	}
	if threshold == "" {
		return 0, nil
	}
	p, err := o.rdb.XPending(ctx, OutboxKey(), o.group).Result()
	if err != nil {
		return 0, fmt.Errorf("store: outbox trim: %w", err)
	}
	if p.Count > 0 && compareStreamIDs(p.Lower, threshold) < 0 {
		threshold = p.Lower
	}
	n, err := o.rdb.XTrimMinID(ctx, OutboxKey(), threshold).Result()
	if err != nil {
		return 0, fmt.Errorf("store: outbox trim: %w", err)
	}
	return n, nil
}

// OutboxStats describes how far the group is behind the outbox.
type OutboxStats struct {
	// Length is the number of entries in the stream.
	Length int64
	// Pending is the number of entries read but not acknowledged.
	Pending int64
	// Lag is the number of entries not read yet by the group (-1 unknown).
	Lag int64
	// OldestUndelivered is the age of the oldest entry the group has not
	// acknowledged (pending or unread); zero when there is none.
	OldestUndelivered time.Duration
	// Consumers is the number of consumer names the group knows.
	Consumers int64
}

// Stats reads the group's backlog, with ages measured on the Redis clock
// (entry ids carry the Redis time at which they were written).
func (o *OutboxReader) Stats(ctx context.Context) (OutboxStats, error) {
	st := OutboxStats{Lag: -1}
	now, err := o.rdb.Time(ctx).Result()
	if err != nil {
		return st, fmt.Errorf("store: outbox stats: %w", err)
	}
	st.Length, err = o.rdb.XLen(ctx, OutboxKey()).Result()
	if err != nil {
		return st, fmt.Errorf("store: outbox stats: %w", err)
	}
	groups, err := o.rdb.XInfoGroups(ctx, OutboxKey()).Result()
	if err != nil && !IsNoGroup(err) && !isNoSuchKey(err) {
		return st, fmt.Errorf("store: outbox stats: %w", err)
	}
	var last string
	for _, g := range groups {
		if g.Name == o.group {
			st.Pending, st.Lag, st.Consumers, last = g.Pending, g.Lag, g.Consumers, g.LastDeliveredID
		}
	}
	if last == "" { // no group yet: everything is undelivered
		last = "0-0"
		st.Lag = st.Length
	}
	oldest := ""
	if st.Pending > 0 {
		p, err := o.rdb.XPending(ctx, OutboxKey(), o.group).Result()
		if err != nil {
			return st, fmt.Errorf("store: outbox stats: %w", err)
		}
		oldest = p.Lower
	} else {
		unread, err := o.rdb.XRangeN(ctx, OutboxKey(), "("+last, "+", 1).Result()
		if err != nil {
			return st, fmt.Errorf("store: outbox stats: %w", err)
		}
		if len(unread) > 0 {
			oldest = unread[0].ID
		}
	}
	if ms, _, ok := parseStreamID(oldest); ok {
		if age := now.Sub(time.UnixMilli(ms)); age > 0 {
			st.OldestUndelivered = age
		}
	}
	return st, nil
}

// PruneConsumers deletes the group's consumer names, other than this one,
// that hold no pending entry and have been idle for longer than idle: every
// relay process uses a new name, and dead names would pile up.
func (o *OutboxReader) PruneConsumers(ctx context.Context, idle time.Duration) (int, error) {
	cs, err := o.rdb.XInfoConsumers(ctx, OutboxKey(), o.group).Result()
	if err != nil {
		return 0, fmt.Errorf("store: outbox consumers: %w", err)
	}
	n := 0
	for _, c := range cs {
		if c.Name == o.consumer || c.Pending > 0 || c.Idle < idle {
			continue
		}
		if err := o.rdb.XGroupDelConsumer(ctx, OutboxKey(), o.group, c.Name).Err(); err != nil {
			return n, fmt.Errorf("store: outbox consumers: %w", err)
		}
		n++
	}
	return n, nil
}

// parseStreamID splits "ms-seq".
func parseStreamID(id string) (ms, seq int64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// nextStreamID is the smallest id after id ("" when id is unparsable).
func nextStreamID(id string) string {
	ms, seq, ok := parseStreamID(id)
	if !ok {
		return ""
	}
	return strconv.FormatInt(ms, 10) + "-" + strconv.FormatInt(seq+1, 10)
}

// compareStreamIDs orders two stream ids numerically.
func compareStreamIDs(a, b string) int {
	am, as, _ := parseStreamID(a)
	bm, bs, _ := parseStreamID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

// TailOutbox reads the outbox outside any consumer group (plain XREAD), for
// a watcher that wants to see lifecycle events as they are written without
// taking them from the hooks relay: up to count entries after the entry id
// after (start from OutboxLastID), waiting up to block for the first one.
// It returns the entries and the id to pass next time (after itself when
// nothing came). Entries the relay trimmed meanwhile are skipped, which a
// watcher using them as hints can afford.
func (c *Conn) TailOutbox(ctx context.Context, after string, count int, block time.Duration) ([]OutboxEntry, string, error) {
	res, err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{OutboxKey(), after}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("store: outbox tail: %w", err)
	}
	var out []OutboxEntry
	for _, s := range res {
		out = append(out, entries(s.Messages)...)
	}
	if len(out) > 0 {
		after = out[len(out)-1].ID
	}
	return out, after, nil
}

// OutboxLastID is the id of the outbox's newest entry ("0-0" for an empty or
// missing stream): where a TailOutbox that wants only new entries starts.
func (c *Conn) OutboxLastID(ctx context.Context) (string, error) {
	msgs, err := c.rdb.XRevRangeN(ctx, OutboxKey(), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("store: outbox last id: %w", err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}
