package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFlagsOverrideEnvironmentAndVersionFileWins(t *testing.T) {
	t.Setenv("YGGDRASIL_URL", "http://10.0.0.1:3000")
	t.Setenv("RUNNER_NAME", "from-env")
	t.Setenv("RUNNER_CAPACITY", "3")
	t.Setenv("RUNNER_LABELS", "a=1,b=2")
	t.Setenv("RUNNER_VERSION", "1.0.0")
	t.Setenv("DRAIN_TIMEOUT", "5s")
	vf := filepath.Join(t.TempDir(), "VERSION")
	if err := os.WriteFile(vf, []byte("2.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{"-name", "from-flag", "-capacity", "7", "-label", "c=3", "-version-file", vf, "-state-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://10.0.0.1:3000" || cfg.Name != "from-flag" || cfg.Capacity != 7 || cfg.Version != "2.0.0" || cfg.DrainTimeout != 5*time.Second {
		t.Fatalf("cfg %+v", cfg)
	}
	if diff := cmp.Diff(map[string]string{"c": "3"}, cfg.Labels); diff != "" {
		t.Fatalf("labels (-want +got):\n%s", diff)
	}
}

func TestBadConfigurationReportsEveryProblem(t *testing.T) {
	t.Setenv("YGGDRASIL_URL", "ftp://x")
	t.Setenv("RUNNER_CAPACITY", "0")
	t.Setenv("LONG_POLL_WAIT", "40s")
	_, err := loadConfig([]string{"-state-dir", t.TempDir()}, io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"YGGDRASIL_URL", "RUNNER_CAPACITY", "HTTP_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if code := run([]string{"-capacity", "0"}, io.Discard); code != 2 {
		t.Fatalf("exit code %d on bad configuration, want 2", code)
	}
}
