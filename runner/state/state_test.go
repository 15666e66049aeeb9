package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIdentityRoundTripAndMode(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok, err := d.Identity(); err != nil || ok {
		t.Fatalf("empty dir: ok=%v err=%v", ok, err)
	}
	want := Identity{RunnerID: "rnr_1", Token: "secret", Epoch: 3, URL: "http://127.0.0.1:3000"}
	if err := d.SaveIdentity(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Identity()
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("identity (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(dir, identityFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	// no temp files left behind
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != identityFile && e.Name() != lockFile && e.Name() != runningDir && e.Name() != resultsDir {
			t.Fatalf("unexpected file %s", e.Name())
		}
	}
	if err := d.ClearIdentity(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.Identity(); ok {
		t.Fatal("identity still there after ClearIdentity")
	}
}

func TestLockExcludesSecondAgent(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	d.Close()
	d2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d2.Close()
}

func TestRunningThenResultSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, id := range []string{"tsk_b", "tsk_a", "../../etc/passwd"} {
		if err := d.MarkRunning(Running{TaskID: id, RunnerID: "rnr_1", Epoch: 2, Type: "shell", StartedAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "..", "etc", "passwd.json")); err == nil {
		t.Fatal("a task id escaped the state directory")
	}
	res := Result{TaskID: "tsk_a", RunnerID: "rnr_1", Epoch: 2, Status: "succeeded", Result: json.RawMessage(`{"exitCode":0}`), FinishedAt: t0}
	if err := d.QueueResult(res); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	running, err := d.Running()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range running {
		ids = append(ids, r.TaskID)
	}
	if diff := cmp.Diff([]string{"tsk_b", "../../etc/passwd"}, ids); diff != "" {
		t.Fatalf("running (-want +got):\n%s", diff)
	}
	results, err := d.Results()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Result{res}, results); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	if err := d.DoneResult("tsk_a"); err != nil {
		t.Fatal(err)
	}
	if err := d.DoneResult("tsk_a"); err != nil {
		t.Fatalf("DoneResult twice: %v", err)
	}
	if results, _ := d.Results(); len(results) != 0 {
		t.Fatalf("results after DoneResult: %v", results)
	}
}

func TestListIgnoresTempFilesAndReportsCorruptOnes(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.WriteFile(filepath.Join(dir, resultsDir, ".x.json.tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Results(); err != nil || len(r) != 0 {
		t.Fatalf("temp file: %v %v", r, err)
	}
	if err := os.WriteFile(filepath.Join(dir, resultsDir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Results(); err == nil {
		t.Fatal("corrupt result file: no error")
	}
}
