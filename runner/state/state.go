// Package state keeps what the Ratatoskr agent must remember across a
// restart, in one directory: its identity (runner id, token, lease epoch),
// the tasks it was running, and the results it has not reported yet.
//
// Every file is written atomically (temp file, fsync, rename) with mode 0600,
// so a crash leaves either the old or the new content, never half of it. A
// lock file keeps two agents from sharing one directory. It must never talk
// to the controller: it only stores.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrLocked means another agent holds the state directory.
var ErrLocked = errors.New("state directory is locked by another ratatoskr process")

// Identity is who the agent is for the controller. Token is a secret.
type Identity struct {
	RunnerID string `json:"runnerId"`
	Token    string `json:"token"`
	Epoch    int64  `json:"leaseEpoch"`
	// URL is the controller that issued the identity: another controller
	// does not know it.
	URL string `json:"url"`
}

// Running records a task the agent started, so that a restart can report it
// failed instead of leaving it running forever.
type Running struct {
	TaskID    string    `json:"taskId"`
	RunnerID  string    `json:"runnerId"`
	Epoch     int64     `json:"leaseEpoch"`
	Type      string    `json:"type"`
	StartedAt time.Time `json:"startedAt"`
}

// Result is a finished task's outcome waiting to be reported.
type Result struct {
	TaskID     string          `json:"taskId"`
	RunnerID   string          `json:"runnerId"`
	Epoch      int64           `json:"leaseEpoch"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	FinishedAt time.Time       `json:"finishedAt"`
}

// Dir is an opened, locked state directory. Its methods are safe for
// concurrent use.
type Dir struct {
	path string
	lock *os.File
	mu   sync.Mutex
}

const (
	identityFile = "identity.json"
	runningDir   = "running"
	resultsDir   = "results"
	lockFile     = "lock"
)

// Open creates (0700) and locks the state directory at path.
func Open(path string) (*Dir, error) {
	for _, d := range []string{path, filepath.Join(path, runningDir), filepath.Join(path, resultsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("state: create %s: %w", d, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(path, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state: %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("state: lock %s: %w", path, err)
	}
	return &Dir{path: path, lock: f}, nil
}

// Close releases the lock.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Identity returns the stored identity; ok is false when there is none.
func (d *Dir) Identity() (id Identity, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ok, err = readJSON(filepath.Join(d.path, identityFile), &id)
	if err != nil {
		return Identity{}, false, err
	}
	return id, ok && id.RunnerID != "", nil
}

// SaveIdentity stores id.
func (d *Dir) SaveIdentity(id Identity) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return writeJSON(filepath.Join(d.path, identityFile), id)
}

// ClearIdentity forgets the identity: the next start registers anew.
func (d *Dir) ClearIdentity() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return remove(filepath.Join(d.path, identityFile))
}

// MarkRunning records that a task started.
func (d *Dir) MarkRunning(r Running) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return writeJSON(d.file(runningDir, r.TaskID), r)
}

// ClearRunning forgets a started task (it never ran, or its result is queued).
func (d *Dir) ClearRunning(taskID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return remove(d.file(runningDir, taskID))
}

// Running lists the recorded started tasks, oldest first.
func (d *Dir) Running() ([]Running, error) {
	var out []Running
	err := d.list(runningDir, func(b []byte) error {
		var r Running
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, err
}

// QueueResult stores a finished task's result, then forgets that it was
// running: in that order, so a crash in between loses nothing.
func (d *Dir) QueueResult(r Result) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := writeJSON(d.file(resultsDir, r.TaskID), r); err != nil {
		return err
	}
	return remove(d.file(runningDir, r.TaskID))
}

// DoneResult forgets a result: it was reported, or it can never be.
func (d *Dir) DoneResult(taskID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return remove(d.file(resultsDir, taskID))
}

// Results lists the unreported results, oldest first.
func (d *Dir) Results() ([]Result, error) {
	var out []Result
	err := d.list(resultsDir, func(b []byte) error {
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].FinishedAt.Before(out[j].FinishedAt) })
	return out, err
}

func (d *Dir) list(sub string, each func([]byte) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := filepath.Join(d.path, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("state: list %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue // temp files of an interrupted write
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("state: read %s: %w", p, err))
			continue
		}
		if err := each(b); err != nil {
			errs = append(errs, fmt.Errorf("state: decode %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// file names a task's file; task ids come from the controller, so anything
// that could leave the directory is escaped.
func (d *Dir) file(sub, taskID string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, taskID)
	return filepath.Join(d.path, sub, safe+".json")
}

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("state: decode %s: %w", path, err)
	}
	return true, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encode %s: %w", path, err)
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes data to path with mode 0600 through a temporary
// file in the same directory and a rename, then syncs the directory.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	cleanup := func() { _ = os.Remove(tmp.Name()) }
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("state: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		cleanup()
		return fmt.Errorf("state: rename %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state: sync dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("state: sync dir %s: %w", dir, err)
	}
	return nil
}

func remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: remove %s: %w", path, err)
	}
	return nil
}

// UpdateAttempt records the last self-update the agent ran, so that an
// update command that "succeeds" without changing the version is not run
// again after every restart.
type UpdateAttempt struct {
	Version string    `json:"version"`
	From    string    `json:"from"`
	At      time.Time `json:"at"`
}

const updateFile = "update.json"

// LastUpdate returns the last recorded update attempt, if any.
func (d *Dir) LastUpdate() (UpdateAttempt, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u UpdateAttempt
	ok, err := readJSON(filepath.Join(d.path, updateFile), &u)
	return u, ok, err
}

// SaveUpdate records an update attempt.
func (d *Dir) SaveUpdate(u UpdateAttempt) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return writeJSON(filepath.Join(d.path, updateFile), u)
}
