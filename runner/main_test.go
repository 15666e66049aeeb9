package main

import (
	"io"
	"net/http"
	"net/http/httptest"
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

func TestHealthcheckSubcommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	for name, tc := range map[string]struct {
		url, stateDirFlag string
		status            int
		want              int
		wantStderr        string
	}{
		"controller healthy":   {url: srv.URL + "/", status: 200, want: 0},
		"controller 503":       {url: srv.URL, status: 503, want: 1, wantStderr: "status 503"},
		"bad configuration":    {url: "ftp://x", status: 200, want: 1, wantStderr: "YGGDRASIL_URL"},
		"flags are understood": {url: srv.URL, status: 200, want: 0, stateDirFlag: "-state-dir"},
	} {
		t.Run(name, func(t *testing.T) {
			status = tc.status
			t.Setenv("YGGDRASIL_URL", tc.url)
			t.Setenv("RUNNER_STATE_DIR", t.TempDir())
			args := []string{"healthcheck"}
			if tc.stateDirFlag != "" {
				args = append(args, tc.stateDirFlag, t.TempDir())
			}
			var stderr strings.Builder
			if code := run(args, &stderr); code != tc.want {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.want, stderr.String())
			}
			if tc.wantStderr == "" && stderr.Len() != 0 {
				t.Errorf("printed %q on success", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestVersionFlagPrintsAndExitsZero(t *testing.T) {
	for _, arg := range []string{"-version", "--version"} {
		var out strings.Builder
		stdout = &out
		code := run([]string{arg}, io.Discard)
		stdout = os.Stdout
		if code != 0 {
			t.Errorf("%s: exit code %d, want 0", arg, code)
		}
		if got, want := out.String(), "ratatoskr "+version+"\n"; got != want {
			t.Errorf("%s printed %q, want %q", arg, got, want)
		}
	}
	// the old meaning, with "=": the version to report
	cfg, err := loadConfig([]string{"-version=9.9.9", "-state-dir", t.TempDir()}, io.Discard)
	if err != nil || cfg.Version != "9.9.9" {
		t.Fatalf("-version=9.9.9: version %q, err %v", cfg.Version, err)
	}
	cfg, err = loadConfig([]string{"-report-version", "9.9.8", "-state-dir", t.TempDir()}, io.Discard)
	if err != nil || cfg.Version != "9.9.8" {
		t.Fatalf("-report-version 9.9.8: version %q, err %v", cfg.Version, err)
	}
}
