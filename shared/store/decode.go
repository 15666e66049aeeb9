package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func decodeRunner(m map[string]string) wire.RunnerInfo {
	r := wire.RunnerInfo{
		ID:            m["id"],
		Name:          m["name"],
		Version:       m["version"],
		Realm:         m["realm"],
		Endpoint:      m["endpoint"],
		Status:        wire.RunnerStatus(m["status"]),
		Activity:      wire.RunnerStatus(m["activity"]),
		OfflineReason: m["offlineReason"],
	}
	r.Capacity, _ = strconv.Atoi(m["capacity"])
	r.TasksRunning, _ = strconv.Atoi(m["tasksRunning"])
	r.LeaseEpoch, _ = strconv.ParseInt(m["epoch"], 10, 64)
	if t := msTime(m["registeredAt"]); t != nil {
		r.RegisteredAt = *t
	}
	r.LastHeartbeat = msTime(m["lastHeartbeat"])
	r.OfflineAt = msTime(m["offlineAt"])
	r.StartedAt = msTime(m["startedAt"])
	if r.Status != wire.RunnerOffline {
		r.LeaseExpiresAt = msTime(m["leaseExpiresAt"])
	}
	if s := m["labels"]; s != "" {
		_ = json.Unmarshal([]byte(s), &r.Labels)
	}
	if s := m["resources"]; s != "" {
		var res wire.SystemResources
		if json.Unmarshal([]byte(s), &res) == nil {
			r.Resources = &res
		}
	}
	if s := m["pendingUpdate"]; s != "" {
		var u wire.PendingUpdate
		if json.Unmarshal([]byte(s), &u) == nil {
			r.PendingUpdate = &u
		}
	}
	return r
}

func decodeTask(m map[string]string) wire.RunnerTask {
	t := wire.RunnerTask{
		ID:       m["id"],
		RunnerID: m["runnerId"],
		Realm:    m["realm"],
		Type:     m["type"],
		Status:   wire.TaskStatus(m["status"]),
		Error:    m["error"],
	}
	t.TimeoutMs, _ = strconv.ParseInt(m["timeoutMs"], 10, 64)
	t.LeaseEpoch, _ = strconv.ParseInt(m["epoch"], 10, 64)
	if c := msTime(m["createdAt"]); c != nil {
		t.CreatedAt = *c
	}
	t.StartedAt = msTime(m["startedAt"])
	t.FinishedAt = msTime(m["finishedAt"])
	if s := m["payload"]; s != "" {
		t.Payload = json.RawMessage(s)
	}
	if s := m["result"]; s != "" {
		t.Result = json.RawMessage(s)
	}
	return t
}

func msTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return nil
	}
	t := time.UnixMilli(n).UTC()
	return &t
}

func pairsToMap(kv []string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		out = append(out, toString(x))
	}
	return out
}

// outboxData is the data field of an outbox entry as the scripts write it:
// times in ms, and an empty list encoded by Lua's cjson as {}.
type outboxData struct {
	Runner           wire.EventRunner `json:"runner"`
	Reason           string           `json:"reason,omitempty"`
	FailedTaskIDs    json.RawMessage  `json:"failedTaskIds"`
	LeaseEpoch       int64            `json:"leaseEpoch"`
	LeaseExpiredAtMs int64            `json:"leaseExpiredAtMs"`
}

// DecodeEvent turns one outbox stream entry into the Event webhook consumers
// receive. The entry id becomes the event id; the entry's traceparent
// becomes Traceparent (not part of the webhook body).
func DecodeEvent(msg OutboxEntry) (wire.Event, error) {
	typ, _ := msg.Values["type"].(string)
	ts, _ := msg.Values["ts"].(string)
	raw, _ := msg.Values["data"].(string)
	if typ == "" || raw == "" {
		return wire.Event{}, fmt.Errorf("store: outbox entry %s: missing type or data", msg.ID)
	}
	tp, _ := msg.Values["traceparent"].(string)
	if strings.HasPrefix(typ, "realm.") {
		// realm_transition.lua and realm_delete.lua write the webhook's
		// data as it is delivered: {"realm": {"name", "state", ...}}.
		var d struct {
			Realm *struct {
				Name string `json:"name"`
			} `json:"realm"`
		}
		if err := json.Unmarshal([]byte(raw), &d); err != nil || d.Realm == nil || d.Realm.Name == "" {
			return wire.Event{}, fmt.Errorf("store: outbox entry %s: realm event without a realm name", msg.ID)
		}
		ev := wire.Event{ID: msg.ID, Type: typ, Data: json.RawMessage(raw), Traceparent: tp}
		if t := msTime(ts); t != nil {
			ev.Timestamp = *t
		}
		return ev, nil
	}
	var d outboxData
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return wire.Event{}, fmt.Errorf("store: outbox entry %s: %w", msg.ID, err)
	}
	data := wire.RunnerEventData{Runner: d.Runner, Reason: d.Reason, LeaseEpoch: d.LeaseEpoch, FailedTaskIDs: []string{}}
	if len(d.FailedTaskIDs) > 0 && d.FailedTaskIDs[0] == '[' {
		_ = json.Unmarshal(d.FailedTaskIDs, &data.FailedTaskIDs)
	}
	if d.LeaseExpiredAtMs > 0 {
		t := time.UnixMilli(d.LeaseExpiredAtMs).UTC()
		data.LeaseExpiredAt = &t
	}
	body, err := json.Marshal(data)
	if err != nil {
		return wire.Event{}, fmt.Errorf("store: outbox entry %s: %w", msg.ID, err)
	}
	ev := wire.Event{ID: msg.ID, Type: typ, Data: body, Traceparent: tp}
	if t := msTime(ts); t != nil {
		ev.Timestamp = *t
	}
	return ev, nil
}

// boolArg is a flag as a script argument: "1" or "0".
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
