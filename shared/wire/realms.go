package wire

import (
	"encoding/json"
	"time"
)

// RealmState is where a realm stands in its lifecycle:
// active -> draining -> closed -> deleted, draining -> active, active -> closed.
type RealmState string

// Realm states. Draining: registrations into the realm and dispatches to
// its runners are refused (409) and heartbeat replies carry Drain. Closed:
// heartbeat replies carry Deregister.
const (
	RealmActive   RealmState = "active"
	RealmDraining RealmState = "draining"
	RealmClosed   RealmState = "closed"
)

// DefaultRealm is the realm that always exists; a runner naming no realm joins it.
const DefaultRealm = "default"

// Realm key roles.
const (
	// RealmRoleRegister registers runners into the realm and, where
	// RUNNER_AUTH allows keys, acts as their runner credential.
	RealmRoleRegister = "register"
	// RealmRoleOperator is the realm's operator: what operators do, inside
	// the realm.
	RealmRoleOperator = "operator"
)

// RealmPolicies override global settings for one realm. A nil field is
// the global setting. WebhookSecret is write-only: a realm read never
// carries it (Realm.WebhookSecretSet says whether one is set).
type RealmPolicies struct {
	LeaseTTLMs            *int64   `json:"leaseTtlMs,omitempty"`
	HeartbeatIntervalMs   *int64   `json:"heartbeatIntervalMs,omitempty"`
	ExpectedRunnerVersion *string  `json:"expectedRunnerVersion,omitempty"`
	MaxRunners            *int     `json:"maxRunners,omitempty"`
	WebhookURLs           []string `json:"webhookUrls,omitempty"`
	WebhookSecret         string   `json:"webhookSecret,omitempty"`
	MassExpiryPercent     *int     `json:"massExpiryPercent,omitempty"`
	// RegisterRate (registrations per second) and RegisterBurst override
	// REGISTER_RATE and REGISTER_BURST for the realm's token bucket.
	RegisterRate  *float64 `json:"registerRate,omitempty"`
	RegisterBurst *int     `json:"registerBurst,omitempty"`
}

// Realm is a pool of runners with its own lifecycle, keys and policies.
type Realm struct {
	Name             string        `json:"name"`
	Description      string        `json:"description"`
	State            RealmState    `json:"state"`
	Policies         RealmPolicies `json:"policies"`
	WebhookSecretSet bool          `json:"webhookSecretSet"`
	CreatedAt        time.Time     `json:"createdAt"`
	StateChangedAt   time.Time     `json:"stateChangedAt"`
	// StateChangedBy is the key id of a realm operator key, "global
	// operator", or "registration" for a realm a registration created.
	StateChangedBy string `json:"stateChangedBy"`
	// Runners counts the realm's runners by status (online, unreachable,
	// offline); Tasks its unfinished tasks by status (pending, running).
	// Both are set on GET /realms/:name only.
	Runners map[string]int64 `json:"runners,omitempty"`
	Tasks   map[string]int64 `json:"tasks,omitempty"`
}

// CreateRealmPayload is the body of POST /realms. Name is a DNS label.
type CreateRealmPayload struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Policies    *RealmPolicies `json:"policies,omitempty"`
}

// PatchRealmPayload is the body of PATCH /realms/:name. Policies merge into
// the realm's: a field present sets it, a field set to null removes it.
type PatchRealmPayload struct {
	Description *string         `json:"description,omitempty"`
	Policies    json.RawMessage `json:"policies,omitempty"`
}

// RealmList is one page of realms.
type RealmList struct {
	Realms     []Realm `json:"realms"`
	NextCursor string  `json:"nextCursor,omitempty"`
}

// IssueRealmKeyPayload is the body of POST /realms/:name/keys.
type IssueRealmKeyPayload struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// RealmKey describes a realm-scoped key. Key is set once, in the reply to
// its issue; the controller keeps only its SHA-256.
type RealmKey struct {
	ID         string     `json:"id"`
	Key        string     `json:"key,omitempty"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

// RealmKeyList is GET /realms/:name/keys.
type RealmKeyList struct {
	Keys []RealmKey `json:"keys"`
}
