package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TaskType is the asynq task type of one webhook delivery.
const TaskType = "hook:deliver"

// Queue is the asynq queue deliveries go through.
const Queue = "hooks"

// Payload is what a delivery task carries. The body is built once, by the
// relay, so that every retry sends the same bytes; the signature is not
// stored (it depends on the attempt time and on the secrets configured when
// the attempt runs).
type Payload struct {
	EventID   string `json:"eventId"`
	EventType string `json:"eventType"`
	// EventTimeMs is when the event was recorded (Redis time, ms).
	EventTimeMs int64 `json:"eventTimeMs"`
	// RunnerID is the runner the event is about, for the delivery's log
	// lines ("" in tasks enqueued before it was added).
	RunnerID string `json:"runnerId,omitempty"`
	URL      string `json:"url"`
	// Realm, when set, makes this a delivery to one of that realm's own
	// webhookUrls: the attempt signs with the realm's secret, which the
	// handler reads from the store (cached briefly), never from the task.
	// "" is a delivery to the global destinations (RUNNER_OFFLINE_HOOK).
	Realm string `json:"realm,omitempty"`
	Body  string `json:"body"`
	// Trace is the relay span's trace context (W3C traceparent, tracestate),
	// so that every attempt of a delivery is a child of the span that
	// enqueued it. Absent when tracing was off.
	Trace map[string]string `json:"trace,omitempty"`
}

// WebhookID is the webhook-id header of every attempt of an event: the same
// on every retry and to every URL, so receivers can deduplicate.
func (p Payload) WebhookID() string { return "msg_" + p.EventID }

// TaskID is the asynq task id of the delivery of event eventID to url. It is
// derived from both, so that enqueueing the same pair again conflicts (and is
// recognised as a duplicate) while each URL keeps its own retries.
func TaskID(eventID, url string) string {
	h := sha256.Sum256([]byte(url))
	return "evt:" + eventID + ":" + hex.EncodeToString(h[:6])
}

// RealmTaskID is the task id of the delivery of event eventID to url as
// one of realm's destinations. It differs from TaskID(eventID, url): a URL
// listed both globally and by the realm gets one delivery per list entry,
// each signed with its own list's secret.
func RealmTaskID(eventID, realm, url string) string {
	h := sha256.Sum256([]byte(realm + "\x00" + url))
	return "evt:" + eventID + ":r:" + hex.EncodeToString(h[:6])
}

// NewTask builds the delivery task of ev to url.
func NewTask(ev wire.Event, url string) (*asynq.Task, error) { return NewTracedTask(ev, url, nil) }

// NewTracedTask is NewTask carrying trace, the propagation fields of the
// span that enqueues it (nil or empty: none).
func NewTracedTask(ev wire.Event, url string, trace map[string]string) (*asynq.Task, error) {
	return NewRealmTask(ev, "", url, trace)
}

// NewRealmTask is NewTracedTask for one of realm's own destinations ("":
// a global one).
func NewRealmTask(ev wire.Event, realm, url string, trace map[string]string) (*asynq.Task, error) {
	if len(trace) == 0 {
		trace = nil
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("delivery: encode event %s: %w", ev.ID, err)
	}
	var about struct {
		Runner struct {
			ID string `json:"id"`
		} `json:"runner"`
	}
	_ = json.Unmarshal(ev.Data, &about) // an event about no runner logs none
	p, err := json.Marshal(Payload{
		EventID: ev.ID, EventType: ev.Type, EventTimeMs: ev.Timestamp.UnixMilli(), RunnerID: about.Runner.ID,
		URL: url, Realm: realm, Body: string(body), Trace: trace,
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: encode task %s: %w", ev.ID, err)
	}
	return asynq.NewTask(TaskType, p), nil
}

// DecodePayload reads a task's payload.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("delivery: decode task payload: %w", err)
	}
	if p.EventID == "" || p.URL == "" {
		return p, fmt.Errorf("delivery: task payload without event id or url")
	}
	return p, nil
}

// EventRealm is the realm an event is about: the runner's realm for
// runner.* events ("default" when it names none), the realm's name for
// realm.* events; "" when the data names neither.
func EventRealm(ev wire.Event) string {
	var about struct {
		Runner *struct {
			Realm string `json:"realm"`
		} `json:"runner"`
		Realm *struct {
			Name string `json:"name"`
		} `json:"realm"`
	}
	if json.Unmarshal(ev.Data, &about) != nil {
		return ""
	}
	switch {
	case about.Runner != nil && about.Runner.Realm != "":
		return about.Runner.Realm
	case about.Runner != nil:
		return "default"
	case about.Realm != nil:
		return about.Realm.Name
	}
	return ""
}
