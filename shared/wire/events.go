package wire

import (
	"encoding/json"
	"time"
)

// Event types carried by the outbox and delivered as webhooks.
const (
	EventRunnerRegistered  = "runner.registered"
	EventRunnerOffline     = "runner.offline"
	EventRunnerUnreachable = "runner.unreachable"
	EventRunnerRecovered   = "runner.recovered"
	// realm.<state>: a realm's lifecycle transition (realm_transition.lua,
	// realm_delete.lua); data {"realm": {"name", "state", ...}}.
	EventRealmDraining = "realm.draining"
	EventRealmActive   = "realm.active"
	EventRealmClosed   = "realm.closed"
	EventRealmDeleted  = "realm.deleted"
)

// Offline reasons.
const (
	ReasonLeaseExpired = "lease_expired"
	ReasonDeregistered = "deregistered"
)

// Event is one lifecycle event, as webhook consumers receive it. ID is stable
// across retries (it becomes the webhook-id header).
type Event struct {
	ID        string          `json:"-"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	// Traceparent is the W3C traceparent of the span that recorded the
	// event (the offline transition's, the registering or recovering
	// request's), "" when none. Not in the webhook body: the delivery sends
	// it as the request's own traceparent header, in that trace.
	Traceparent string `json:"-"`
}

// EventRunner identifies the runner an event is about.
type EventRunner struct {
	ID       string            `json:"id"`
	Name     string            `json:"name,omitempty"`
	Version  string            `json:"version,omitempty"`
	Realm    string            `json:"realm,omitempty"`
	Endpoint string            `json:"endpoint,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// RunnerEventData is the data of every runner.* event. Reason,
// FailedTaskIDs and LeaseExpiredAt are set on runner.offline.
type RunnerEventData struct {
	Runner         EventRunner `json:"runner"`
	Reason         string      `json:"reason,omitempty"`
	FailedTaskIDs  []string    `json:"failedTaskIds"`
	LeaseEpoch     int64       `json:"leaseEpoch"`
	LeaseExpiredAt *time.Time  `json:"leaseExpiredAt,omitempty"`
}
