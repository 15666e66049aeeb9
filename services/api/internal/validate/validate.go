// Package validate checks every value that comes from outside before it goes
// near Redis: ids that become parts of Redis keys, names, labels, URLs, JSON
// documents, durations. A failure is an *Error naming the field, which the
// HTTP layer turns into a 422.
//
// It must never touch Redis or HTTP: it is pure functions over values.
package validate

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Error is a failed validation of one field.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Fail returns an *Error for field.
func Fail(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits.
const (
	MaxNameLen       = 128
	MaxVersionLen    = 64
	MaxLabels        = 64
	MaxLabelKeyLen   = 128
	MaxLabelValueLen = 256
	MaxCapacity      = 1024
	MaxEndpointLen   = 2048
	MaxTaskTimeout   = 7 * 24 * time.Hour
	MaxErrorLen      = 4096
	MaxCommandLen    = 4096
	MaxReasonLen     = 512
	MaxIdemKeyLen    = 128
	MaxTasksRunning  = 1 << 20
	MaxLoadAvg       = 16
)

var (
	idRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	typeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$`)
)

// ID reports whether s is a valid runner, task or realm id (idRe). Ids never
// hold ':' or spaces because they go into Redis keys. It is a byte loop, not
// idRe.MatchString: every heartbeat checks one, and the regexp showed in the
// api's profile (TestIDMatchesItsPattern holds the two to the same answers).
func ID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// CheckID validates an id field.
func CheckID(field, s string) error {
	if s == "" {
		return Fail(field, "is required")
	}
	if !ID(s) {
		return Fail(field, "must match %s", idRe.String())
	}
	return nil
}

// text checks a required or optional printable string of at most max bytes.
func text(field, s string, required bool, max int) error {
	if s == "" {
		if required {
			return Fail(field, "is required")
		}
		return nil
	}
	if len(s) > max {
		return Fail(field, "must be at most %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return Fail(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return Fail(field, "must not contain control characters")
		}
	}
	return nil
}

// Version checks a runner version string (not necessarily semver).
func Version(field, s string, required bool) error {
	if err := text(field, s, required, MaxVersionLen); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \t") {
		return Fail(field, "must not contain spaces")
	}
	return nil
}

// Endpoint checks an optional http(s) URL.
func Endpoint(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxEndpointLen {
		return Fail(field, "must be at most %d bytes", MaxEndpointLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return Fail(field, "must be an http or https URL with a host")
	}
	return nil
}

// Register validates and normalises a registration (Capacity 0 becomes 1).
func Register(p *wire.RegisterRunnerPayload) error {
	if p.RunnerID != "" && !ID(p.RunnerID) {
		return Fail("runnerId", "must match %s", idRe.String())
	}
	if err := text("name", p.Name, true, MaxNameLen); err != nil {
		return err
	}
	if err := Version("version", p.Version, true); err != nil {
		return err
	}
	if p.Realm != "" && !RealmName(p.Realm) {
		return Fail("realm", "must be a realm name (a DNS label: lowercase, 1-63 of [a-z0-9-], no leading or trailing -)")
	}
	if err := Endpoint("endpoint", p.Endpoint); err != nil {
		return err
	}
	if len(p.Labels) > MaxLabels {
		return Fail("labels", "must have at most %d entries", MaxLabels)
	}
	for k, v := range p.Labels {
		if err := text("labels", k, true, MaxLabelKeyLen); err != nil {
			return Fail("labels", "key %q: %s", truncate(k), err.(*Error).Reason)
		}
		if err := text("labels", v, false, MaxLabelValueLen); err != nil {
			return Fail("labels", "value of %q: %s", truncate(k), err.(*Error).Reason)
		}
	}
	if p.Capacity < 0 || p.Capacity > MaxCapacity {
		return Fail("capacity", "must be between 0 and %d", MaxCapacity)
	}
	if p.Capacity == 0 {
		p.Capacity = 1
	}
	return nil
}

// Heartbeat validates a heartbeat.
func Heartbeat(p *wire.HeartbeatPayload) error {
	if err := CheckID("runnerId", p.RunnerID); err != nil {
		return err
	}
	if p.LeaseEpoch < 0 {
		return Fail("leaseEpoch", "must not be negative")
	}
	switch p.Status {
	case "", wire.RunnerOnline, wire.RunnerBusy, wire.RunnerIdle, wire.RunnerDraining:
	default:
		return Fail("status", "must be one of online, busy, idle, draining")
	}
	if p.TasksRunning != nil && (*p.TasksRunning < 0 || *p.TasksRunning > MaxTasksRunning) {
		return Fail("tasksRunning", "must be between 0 and %d", MaxTasksRunning)
	}
	if err := Version("version", p.Version, false); err != nil {
		return err
	}
	if r := p.Resources; r != nil {
		for _, f := range []struct {
			name string
			v    float64
			max  float64
		}{
			{"resources.cpuPercent", r.CPUPercent, 100 * MaxCapacity},
			{"resources.memoryPercent", r.MemoryPercent, 100},
			{"resources.diskPercent", r.DiskPercent, 100},
			{"resources.memoryUsedMb", r.MemoryUsedMB, math.MaxFloat32},
			{"resources.memoryTotalMb", r.MemoryTotalMB, math.MaxFloat32},
			{"resources.uptimeSeconds", r.UptimeSeconds, math.MaxFloat32},
		} {
			if math.IsNaN(f.v) || f.v < 0 || f.v > f.max {
				return Fail(f.name, "must be between 0 and %g", f.max)
			}
		}
		if len(r.LoadAvg) > MaxLoadAvg {
			return Fail("resources.loadAvg", "must have at most %d entries", MaxLoadAvg)
		}
		for _, v := range r.LoadAvg {
			if math.IsNaN(v) || v < 0 || v > math.MaxFloat32 {
				return Fail("resources.loadAvg", "must hold non-negative numbers")
			}
		}
	}
	return nil
}

// Update validates an endpoint change.
func Update(p *wire.UpdateRunnerPayload) error {
	if err := CheckID("runnerId", p.RunnerID); err != nil {
		return err
	}
	return Endpoint("endpoint", p.Endpoint)
}

// Offline validates a deregistration.
func Offline(p *wire.OfflinePayload) error {
	if err := CheckID("runnerId", p.RunnerID); err != nil {
		return err
	}
	return text("reason", p.Reason, false, MaxReasonLen)
}

// Dispatch validates a task dispatch.
func Dispatch(p *wire.DispatchTaskPayload) error {
	if p.Type == "" {
		return Fail("type", "is required")
	}
	if !typeRe.MatchString(p.Type) {
		return Fail("type", "must match %s", typeRe.String())
	}
	if len(p.Payload) > 0 && !json.Valid(p.Payload) {
		return Fail("payload", "must be valid JSON")
	}
	if p.TimeoutMs < 0 || p.TimeoutMs > MaxTaskTimeout.Milliseconds() {
		return Fail("timeoutMs", "must be between 0 and %d", MaxTaskTimeout.Milliseconds())
	}
	return nil
}

// IdempotencyKey validates an optional Idempotency-Key header value.
func IdempotencyKey(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxIdemKeyLen {
		return Fail("Idempotency-Key", "must be at most %d bytes", MaxIdemKeyLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return Fail("Idempotency-Key", "must be printable ASCII")
		}
	}
	return nil
}

// TaskUpdate validates a task status change.
func TaskUpdate(p *wire.TaskUpdatePayload) error {
	if p.Status == "" {
		return Fail("status", "is required")
	}
	if !p.Status.Valid() {
		return Fail("status", "must be one of pending, running, succeeded, failed, cancelled")
	}
	if len(p.Result) > 0 && !json.Valid(p.Result) {
		return Fail("result", "must be valid JSON")
	}
	if err := text("error", p.Error, false, MaxErrorLen); err != nil {
		return err
	}
	if p.LeaseEpoch < 0 {
		return Fail("leaseEpoch", "must not be negative")
	}
	return nil
}

// RequestUpdate validates an update request.
func RequestUpdate(p *wire.RequestUpdatePayload) error {
	if err := Version("version", p.Version, true); err != nil {
		return err
	}
	return text("command", p.Command, false, MaxCommandLen)
}

// RunnerStatusFilter validates a runner listing's status filter.
func RunnerStatusFilter(s string) error {
	switch wire.RunnerStatus(s) {
	case "", wire.RunnerOnline, wire.RunnerUnreachable, wire.RunnerOffline:
		return nil
	}
	return Fail("status", "must be one of online, unreachable, offline")
}

// TaskStatusFilter validates a task listing's status filter.
func TaskStatusFilter(s string) error {
	if s == "" || wire.TaskStatus(s).Valid() {
		return nil
	}
	return Fail("status", "must be one of pending, running, succeeded, failed, cancelled")
}

// TaskStatusList parses a runner's task listing status filter: one status or
// several, comma-separated (succeeded,failed,cancelled).
func TaskStatusList(s string) ([]wire.TaskStatus, error) {
	if s == "" {
		return nil, nil
	}
	var out []wire.TaskStatus
	for _, part := range strings.Split(s, ",") {
		st := wire.TaskStatus(strings.TrimSpace(part))
		if !st.Valid() {
			return nil, Fail("status", "must be one or more of pending, running, succeeded, failed, cancelled, comma-separated")
		}
		out = append(out, st)
	}
	return out, nil
}

// Limit parses an optional page size (1..max).
func Limit(s string, max int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, Fail("limit", "must be an integer between 1 and %d", max)
	}
	return n, nil
}

// TaskCursor validates a task listing cursor: what NextCursor holds,
// "<creation ms>:<last task id>" (a bare millisecond score is accepted too).
func TaskCursor(s string) error {
	if s == "" {
		return nil
	}
	score, last, hasID := strings.Cut(s, ":")
	if len(score) > 20 || (hasID && !ID(last)) {
		return Fail("cursor", "is not a cursor")
	}
	if n, err := strconv.ParseInt(score, 10, 64); err != nil || n < 0 {
		return Fail("cursor", "is not a cursor")
	}
	return nil
}

// Bounds of a reported process start (StartedAt): clocks differ a little,
// and a start decades back is a broken clock, not an uptime.
const (
	MaxStartedAtSkew = 5 * time.Minute
	MaxStartedAtAge  = 10 * 365 * 24 * time.Hour
)

// StartedAt validates the process start a runner reports against now.
func StartedAt(field string, t, now time.Time) error {
	switch {
	case t.After(now.Add(MaxStartedAtSkew)):
		return Fail(field, "lies in the future (more than %s ahead of the controller's clock)", MaxStartedAtSkew)
	case t.Before(now.Add(-MaxStartedAtAge)):
		return Fail(field, "is more than ten years ago")
	}
	return nil
}

// TaskTypeFilter validates a task listing's type filter (a task type).
func TaskTypeFilter(s string) error {
	if s == "" || typeRe.MatchString(s) {
		return nil
	}
	return Fail("type", "is not a task type")
}

// Wait parses a long-poll wait: a Go duration ("20s") or an integer of
// milliseconds, capped at max. Zero max disables long polling.
func Wait(s string, max time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/int64(time.Millisecond) {
			return 0, Fail("wait", "must be a non-negative duration")
		}
		d = time.Duration(n) * time.Millisecond
	} else {
		d, err = time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, Fail("wait", "must be a duration like 20s or milliseconds")
		}
	}
	if d > max {
		d = max
	}
	return d, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
