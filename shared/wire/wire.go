// Package wire holds the JSON types that runners, operators and the services
// exchange. It is the protocol: field names are camelCase and stable.
//
// It must never import fiber, asynq, go-redis or any service, so that any Go
// program (the runner agent, tools, consumers of webhooks) can use it alone.
package wire

import (
	"encoding/json"
	"time"
)

// RunnerStatus is the lifecycle state of a runner.
type RunnerStatus string

// Runner statuses. A runner is online while it holds a lease, unreachable
// while quarantined by the sweeper after a correlated loss, offline after its
// lease ran out or it deregistered. Busy and idle are what a runner reports
// about itself; both count as online for the control plane.
const (
	RunnerOnline      RunnerStatus = "online"
	RunnerBusy        RunnerStatus = "busy"
	RunnerIdle        RunnerStatus = "idle"
	RunnerDraining    RunnerStatus = "draining"
	RunnerUnreachable RunnerStatus = "unreachable"
	RunnerOffline     RunnerStatus = "offline"
)

// TaskStatus is the state of a task. Succeeded, failed and cancelled are
// terminal: a terminal task never changes again.
type TaskStatus string

// Task statuses, in the order of the state machine.
const (
	TaskPending   TaskStatus = "pending"
	TaskRunning   TaskStatus = "running"
	TaskSucceeded TaskStatus = "succeeded"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled"
)

// Terminal reports whether s is a final state.
func (s TaskStatus) Terminal() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskCancelled
}

// Valid reports whether s is one of the known statuses.
func (s TaskStatus) Valid() bool {
	switch s {
	case TaskPending, TaskRunning, TaskSucceeded, TaskFailed, TaskCancelled:
		return true
	}
	return false
}

// SystemResources is what a runner reports about its host on each heartbeat.
type SystemResources struct {
	CPUPercent    float64   `json:"cpuPercent"`
	MemoryPercent float64   `json:"memoryPercent"`
	MemoryUsedMB  float64   `json:"memoryUsedMb,omitempty"`
	MemoryTotalMB float64   `json:"memoryTotalMb,omitempty"`
	DiskPercent   float64   `json:"diskPercent,omitempty"`
	LoadAvg       []float64 `json:"loadAvg,omitempty"`
	UptimeSeconds float64   `json:"uptimeSeconds,omitempty"`
}

// PendingUpdate asks a runner to update itself to Version. It rides on every
// heartbeat reply until the runner heartbeats with that version.
type PendingUpdate struct {
	Version     string    `json:"version"`
	Command     string    `json:"command,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
}

// RunnerInfo is the public view of a runner. It never carries the token.
type RunnerInfo struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Version        string            `json:"version"`
	Realm          string            `json:"realm,omitempty"`
	Endpoint       string            `json:"endpoint,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Capacity       int               `json:"capacity"`
	Status         RunnerStatus      `json:"status"`
	Activity       RunnerStatus      `json:"activity,omitempty"`
	LeaseEpoch     int64             `json:"leaseEpoch"`
	LeaseExpiresAt *time.Time        `json:"leaseExpiresAt,omitempty"`
	RegisteredAt   time.Time         `json:"registeredAt"`
	LastHeartbeat  *time.Time        `json:"lastHeartbeat,omitempty"`
	Resources      *SystemResources  `json:"resources,omitempty"`
	TasksRunning   int               `json:"tasksRunning"`
	PendingUpdate  *PendingUpdate    `json:"pendingUpdate,omitempty"`
	OfflineReason  string            `json:"offlineReason,omitempty"`
	OfflineAt      *time.Time        `json:"offlineAt,omitempty"`
	// StartedAt is when the runner process started, as its heartbeats report it.
	StartedAt *time.Time `json:"startedAt,omitempty"`
}

// RunnerTask is a unit of work dispatched to one runner.
type RunnerTask struct {
	ID         string          `json:"id"`
	RunnerID   string          `json:"runnerId"`
	Realm      string          `json:"realm,omitempty"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Status     TaskStatus      `json:"status"`
	TimeoutMs  int64           `json:"timeoutMs,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	StartedAt  *time.Time      `json:"startedAt,omitempty"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	LeaseEpoch int64           `json:"leaseEpoch,omitempty"`
}

// RegisterRunnerPayload is the body of POST /runners/register. A runner that
// sends its previous RunnerID comes back as the same runner under a new epoch.
type RegisterRunnerPayload struct {
	RunnerID string            `json:"runnerId,omitempty"`
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Realm    string            `json:"realm,omitempty"`
	Endpoint string            `json:"endpoint,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Capacity int               `json:"capacity,omitempty"`
}

// RegisterRunnerResponse is the reply to a registration. Token is shown once:
// the controller keeps only its hash.
type RegisterRunnerResponse struct {
	RunnerInfo
	Token               string    `json:"token"`
	LeaseTTLMs          int64     `json:"leaseTtlMs"`
	HeartbeatIntervalMs int64     `json:"heartbeatIntervalMs"`
	LeaseExpiresAt      time.Time `json:"leaseExpiresAt"`
	LeaseEpoch          int64     `json:"leaseEpoch"`
}

// HeartbeatPayload is the body of POST /runners/heartbeat.
type HeartbeatPayload struct {
	RunnerID     string           `json:"runnerId"`
	LeaseEpoch   int64            `json:"leaseEpoch,omitempty"`
	Status       RunnerStatus     `json:"status,omitempty"`
	Resources    *SystemResources `json:"resources,omitempty"`
	TasksRunning *int             `json:"tasksRunning,omitempty"`
	Version      string           `json:"version,omitempty"`
	// StartedAt (optional, RFC 3339) is when the runner process started. The
	// controller keeps the latest one on the runner record and exports the
	// runner's uptime from it (else the time since its registration). It may
	// not lie more than a few minutes in the future nor more than ten years back.
	StartedAt *time.Time `json:"startedAt,omitempty"`
}

// HeartbeatResponse renews the lease and carries the controller's requests:
// tasks to start, running tasks to stop and an update to apply.
type HeartbeatResponse struct {
	LeaseExpiresAt      time.Time      `json:"leaseExpiresAt"`
	LeaseEpoch          int64          `json:"leaseEpoch"`
	HeartbeatIntervalMs int64          `json:"heartbeatIntervalMs"`
	PendingUpdate       *PendingUpdate `json:"pendingUpdate,omitempty"`
	Tasks               []RunnerTask   `json:"tasks"`
	CancelTaskIDs       []string       `json:"cancelTaskIds"`
	// Drain: the runner's realm is draining; the runner finishes its tasks
	// and takes no more.
	Drain bool `json:"drain,omitempty"`
	// Deregister: the runner's realm is closed; the runner deregisters
	// (POST /runners/offline) and stops.
	Deregister bool `json:"deregister,omitempty"`
}

// UpdateRunnerPayload is the body of POST /runners/update.
type UpdateRunnerPayload struct {
	RunnerID string `json:"runnerId"`
	Endpoint string `json:"endpoint"`
}

// OfflinePayload is the body of POST /runners/offline.
type OfflinePayload struct {
	RunnerID string `json:"runnerId"`
	Reason   string `json:"reason,omitempty"`
}

// OfflineResponse says which tasks the deregistration failed.
type OfflineResponse struct {
	RunnerID      string   `json:"runnerId"`
	Status        string   `json:"status"`
	FailedTaskIDs []string `json:"failedTaskIds"`
}

// RequestUpdatePayload is the body of POST /runners/:id/request-update.
type RequestUpdatePayload struct {
	Version string `json:"version"`
	Command string `json:"command,omitempty"`
}

// DispatchTaskPayload is the body of POST /runners/:id/tasks.
type DispatchTaskPayload struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	TimeoutMs int64           `json:"timeoutMs,omitempty"`
}

// TaskUpdatePayload is the body of PATCH /runners/:id/tasks/:tid. A runner
// sends its LeaseEpoch; an update from a stale epoch is refused.
type TaskUpdatePayload struct {
	Status     TaskStatus      `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	LeaseEpoch int64           `json:"leaseEpoch,omitempty"`
}

// RunnerList is one page of runners. NextCursor is empty on the last page.
type RunnerList struct {
	Runners    []RunnerInfo `json:"runners"`
	NextCursor string       `json:"nextCursor,omitempty"`
}

// TaskList is one page of a runner's tasks, newest first.
type TaskList struct {
	Tasks      []RunnerTask `json:"tasks"`
	NextCursor string       `json:"nextCursor,omitempty"`
}

// VersionCheckResponse answers POST /version-check/:version.
type VersionCheckResponse struct {
	Version        string `json:"version"`
	Expected       string `json:"expected"`
	Compliant      bool   `json:"compliant"`
	UpdateRequired bool   `json:"updateRequired"`
}

// AdmissionState reports whether the controller admits new registrations.
type AdmissionState struct {
	Admitting bool      `json:"admitting"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the invalid field on a 422.
	Field string `json:"field,omitempty"`
}
