package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileTransportAppendsWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub-absent-is-an-error", "x.log")
	if _, _, err := Open(Config{Transports: []string{"file:" + path}}); err == nil {
		t.Fatalf("Open with a file in a missing directory: want an error")
	}

	path = filepath.Join(t.TempDir(), "ygg.log")
	for i, msg := range []string{"first", "second"} {
		l, c, err := Open(Config{Level: LevelInfo, Format: FormatJSON, Transports: []string{"file:" + path}})
		if err != nil {
			t.Fatal(err)
		}
		l.Info(msg, "n", i)
		l.Debug("below the level")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("file holds %d lines, want 2 (appended, debug dropped):\n%s", len(lines), b)
	}
	for i, want := range []string{"first", "second"} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil || m["msg"] != want {
			t.Errorf("line %d = %q, want json with msg %q (err %v)", i, lines[i], want, err)
		}
	}
}

func TestSeveralTransportsFanOut(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	l, c, err := Open(Config{Transports: []string{"file:" + a, " file:" + b}})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "runner_id", "r1")
	_ = c.Close()
	for _, p := range []string{a, b} {
		got, _ := os.ReadFile(p)
		// simple is the default format: slog's text handler
		if !strings.Contains(string(got), `level=INFO msg=hello runner_id=r1`) {
			t.Errorf("%s = %q, want the simple line", p, got)
		}
	}
	var w1, w2 bytes.Buffer
	l2, err := NewTo(Config{Format: FormatSimple}, &w1, &w2)
	if err != nil {
		t.Fatal(err)
	}
	l2.Warn("both")
	if !strings.Contains(w1.String(), "msg=both") || w1.String() != w2.String() {
		t.Errorf("fan-out: %q / %q", w1.String(), w2.String())
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Level: "loud"}, []string{`unknown log level "loud"`}},
		{Config{Format: "xml"}, []string{`unknown log format "xml"`}},
		{Config{Transports: []string{"syslog", "file:", "console", "console"}},
			[]string{`unknown transport "syslog"`, `"file:" names no file`, `"console" given twice`}},
	} {
		_, _, err := Open(tc.cfg)
		if err == nil {
			t.Errorf("Open(%+v): want an error", tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Open(%+v) = %v, want it to say %q", tc.cfg, err, w)
			}
		}
	}
	if err := CheckTransports([]string{"console", "file:/tmp/x.log"}); err != nil {
		t.Errorf("valid transports refused: %v", err)
	}
}
