package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM ... AS name section of the Dockerfile.
type dockerStage struct {
	name, from string
	lines      []string // instructions, continuation lines joined
}

// goBuild is one `RUN cd DIR && go build ARGS -o /out/NAME .` of the build stage.
type goBuild struct {
	dir, name string
	args      []string // between "go build" and "-o", ARGs substituted
}

type dockerfile struct {
	stages map[string]*dockerStage
	env    map[string]string // ENV of the build stage
	builds []goBuild
}

var fromLine = regexp.MustCompile(`^FROM\s+(\S+)\s+AS\s+(\S+)$`)

// parseDockerfile reads just enough of the Dockerfile to check it: stages,
// the build stage's ENV, ARG defaults and go build lines.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df := dockerfile{stages: map[string]*dockerStage{}, env: map[string]string{}}
	args := map[string]string{}
	var cur *dockerStage
	sc := bufio.NewScanner(f)
	var pending string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if m := fromLine.FindStringSubmatch(line); m != nil {
			cur = &dockerStage{name: m[2], from: os.Expand(m[1], func(k string) string { return args[k] })}
			df.stages[cur.name] = cur
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "ARG "), "="); strings.HasPrefix(line, "ARG ") && ok {
			args[k] = v
			continue
		}
		if cur == nil {
			t.Fatalf("Dockerfile: %q before the first FROM ... AS", line)
		}
		cur.lines = append(cur.lines, line)
		if cur.name != "build" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				df.env[k] = v
			}
		}
		if rest, ok := strings.CutPrefix(line, "RUN cd "); ok && strings.Contains(rest, "go build") {
			dir, cmd, _ := strings.Cut(rest, " && go build ")
			words := shellWords(t, os.Expand(cmd, func(k string) string { return args[k] }))
			if len(words) < 3 || words[len(words)-3] != "-o" || words[len(words)-1] != "." {
				t.Fatalf("Dockerfile: %q is not `go build ARGS -o /out/NAME .`", line)
			}
			df.builds = append(df.builds, goBuild{
				dir: dir, name: filepath.Base(words[len(words)-2]), args: words[:len(words)-3],
			})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return df
}

// shellWords splits s like sh does for the quoting the Dockerfile uses:
// double quotes group, and are removed.
func shellWords(t *testing.T, s string) []string {
	var words []string
	var w strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case r == ' ' && !inQuote:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

func (s *dockerStage) has(prefix string) bool {
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	build, ok := df.stages["build"]
	if !ok || !strings.HasPrefix(build.from, "golang:1.26") {
		t.Fatalf("build stage = %+v, want FROM golang:1.26 AS build", build)
	}
	if df.env["CGO_ENABLED"] != "0" {
		t.Errorf("build stage: CGO_ENABLED = %q, want 0", df.env["CGO_ENABLED"])
	}
	built := map[string]goBuild{}
	for _, b := range df.builds {
		built[b.name] = b
		joined := strings.Join(b.args, " ")
		if !strings.Contains(joined, "-trimpath") || !strings.Contains(joined, "-ldflags=-s -w") {
			t.Errorf("go build of %s: %q lacks -trimpath or -ldflags=\"-s -w\"", b.name, joined)
		}
	}
	for _, name := range binaries {
		t.Run(name, func(t *testing.T) {
			if _, ok := built[name]; !ok {
				t.Errorf("no go build of %s in the build stage", name)
			}
			st, ok := df.stages[name]
			if !ok {
				t.Fatalf("no target %s", name)
			}
			wantFrom := "gcr.io/distroless/static-debian12:nonroot"
			if name == "ratatoskr" {
				// Script tasks run with /bin/sh -c: distroless has no shell.
				wantFrom = "debian:12-slim"
			}
			if st.from != wantFrom {
				t.Errorf("FROM %s, want %s", st.from, wantFrom)
			}
			bin := "/usr/local/bin/" + name
			for _, want := range []string{
				"COPY --from=build /out/" + name + " " + bin,
				"USER 65532:65532",
				fmt.Sprintf(`ENTRYPOINT ["%s"]`, bin),
			} {
				if !st.has(want) {
					t.Errorf("stage %s lacks %q", name, want)
				}
			}
			hc := false
			for _, l := range st.lines {
				if strings.HasPrefix(l, "HEALTHCHECK ") && strings.HasSuffix(l, fmt.Sprintf(`CMD ["%s", "healthcheck"]`, bin)) {
					hc = true
				}
			}
			if !hc {
				t.Errorf("stage %s has no HEALTHCHECK ... CMD [%q, \"healthcheck\"]", name, bin)
			}
			// The image's user is the last USER; a RUN after it would be
			// fine, a USER root after it would not.
			user := ""
			for _, l := range st.lines {
				if u, ok := strings.CutPrefix(l, "USER "); ok {
					user = u
				}
			}
			if user != "65532:65532" {
				t.Errorf("stage %s runs as %q, want 65532:65532", name, user)
			}
		})
	}
}
