package test

import (
	"bytes"
	"debug/elf"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binaries are the four images' programs, named as the Dockerfile's targets.
var binaries = []string{"api", "sweeper", "hooks", "ratatoskr"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// builtBinaries builds the four binaries once per test run, exactly as the
// Dockerfile's build stage does: the same directories, the same arguments
// (read from the Dockerfile), its ENV (CGO_ENABLED=0, GOWORK=off), and
// returns the directory that holds them.
func builtBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		df := parseDockerfile(t)
		dir, err := os.MkdirTemp("", "yggdrasil-deploy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		for _, b := range df.builds {
			args := append(append([]string{"build"}, b.args...), "-o", filepath.Join(dir, b.name), ".")
			cmd := exec.Command("go", args...)
			cmd.Dir = filepath.Join(repoRoot(t), b.dir)
			cmd.Env = os.Environ()
			for k, v := range df.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = errors.Join(buildErr, errors.New("go "+strings.Join(args, " ")+" in "+b.dir+": "+err.Error()+"\n"+string(out)))
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func TestBinariesAreStatic(t *testing.T) {
	dir := builtBinaries(t)
	for _, name := range binaries {
		t.Run(name, func(t *testing.T) {
			f, err := elf.Open(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("program header %s: dynamically linked", p.Type)
				}
			}
			libs, err := f.ImportedLibraries()
			if err != nil {
				t.Fatal(err)
			}
			if len(libs) != 0 {
				t.Errorf("needs shared libraries %v", libs)
			}
			// -s: no symbol table; -trimpath: no path of this machine inside.
			if s := f.Section(".symtab"); s != nil {
				t.Error("has a symbol table: built without -ldflags=-s")
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(repoRoot(t))) {
				t.Errorf("contains the build path %s: built without -trimpath", repoRoot(t))
			}
		})
	}
}

// freePort returns a port nothing listens on (bound, then released).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// healthServer answers /health with status on 127.0.0.1 and returns its port.
func healthServer(t *testing.T, status int) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// TestHealthcheckSubcommand runs `<binary> healthcheck` of the real, static
// binaries against nothing, a 503 and a 200 on 127.0.0.1.
func TestHealthcheckSubcommand(t *testing.T) {
	dir := builtBinaries(t)
	cases := map[string]struct {
		port     func(t *testing.T) int
		wantCode int
	}{
		"nothing listens": {port: freePort, wantCode: 1},
		"503":             {port: func(t *testing.T) int { return healthServer(t, 503) }, wantCode: 1},
		"200":             {port: func(t *testing.T) int { return healthServer(t, 200) }, wantCode: 0},
	}
	for _, name := range binaries {
		for cname, tc := range cases {
			t.Run(name+"/"+cname, func(t *testing.T) {
				port := strconv.Itoa(tc.port(t))
				env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
				if name == "ratatoskr" {
					env = append(env, "YGGDRASIL_URL=http://127.0.0.1:"+port, "RUNNER_STATE_DIR="+t.TempDir())
				} else {
					env = append(env, "PORT="+port)
				}
				cmd := exec.Command(filepath.Join(dir, name), "healthcheck")
				cmd.Env = env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				err := cmd.Run()
				code := 0
				if ee, ok := errors.AsType[*exec.ExitError](err); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("took %s", took)
				}
				if code != tc.wantCode {
					t.Fatalf("exit %d, want %d; output %q", code, tc.wantCode, out.String())
				}
				if code == 0 && out.Len() != 0 {
					t.Errorf("printed %q on success, want nothing", out.String())
				}
				if code != 0 && !strings.Contains(out.String(), port) {
					t.Errorf("output %q does not say which port failed", out.String())
				}
			})
		}
	}
}
