package app_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// metricRow is one row of a docs/metrics.md table.
type metricRow struct {
	typ    string
	labels []string
}

// metricsTable parses the table between <!-- metrics-table:<service> -->
// and its closing marker: name -> type and labels.
func metricsTable(t *testing.T, service string) map[string]metricRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	open, end := "<!-- metrics-table:"+service+" -->", "<!-- /metrics-table:"+service+" -->"
	i, j := strings.Index(doc, open), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/metrics.md has no %s ... %s", open, end)
	}
	code := regexp.MustCompile("`([^`]+)`")
	rows := map[string]metricRow{}
	for _, line := range strings.Split(doc[i+len(open):j], "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue // header, separator, blank
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		row := metricRow{typ: strings.TrimSpace(cells[1])}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			row.labels = append(row.labels, m[1])
		}
		sort.Strings(row.labels)
		if _, dup := rows[name]; dup {
			t.Errorf("docs/metrics.md lists %s twice", name)
		}
		rows[name] = row
	}
	if len(rows) == 0 {
		t.Fatalf("docs/metrics.md: the %s table has no rows", service)
	}
	return rows
}

// exposition parses Prometheus text: family -> type (from # TYPE) and the
// label names its samples carry (le and quantile aside).
func exposition(t *testing.T, body string) map[string]metricRow {
	t.Helper()
	fams := map[string]metricRow{}
	labels := map[string]map[string]bool{}
	var current string
	labelName := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			current = f[2]
			fams[current] = metricRow{typ: f[3]}
			labels[current] = map[string]bool{}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") || current == "" {
			continue
		}
		if k := strings.IndexByte(line, '{'); k >= 0 {
			for _, m := range labelName.FindAllStringSubmatch(line[k:], -1) {
				if m[1] != "le" && m[1] != "quantile" {
					labels[current][m[1]] = true
				}
			}
		}
	}
	for name, row := range fams {
		for l := range labels[name] {
			row.labels = append(row.labels, l)
		}
		sort.Strings(row.labels)
		fams[name] = row
	}
	return fams
}

// The metric table of the api in docs/metrics.md is what /metrics serves:
// every served family is documented with its type and labels, and every
// documented family is served. The api runs with a registered runner that
// heartbeats (with resources and its start) and one that went offline, so
// that every per-runner and per-reason series exists.
func TestMetricsTableMatchesExposition(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "doc-1"})
	started := time.Now().Add(-time.Minute)
	if _, err := e.client(reg.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "doc-1", StartedAt: &started,
		TasksRunning: ptr(0), Resources: &wire.SystemResources{CPUPercent: 1, MemoryPercent: 2}}); err != nil {
		t.Fatal(err)
	}
	gone := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "doc-2"})
	if _, err := e.client(gone.Token).Offline(ctx, wire.OfflinePayload{RunnerID: "doc-2"}); err != nil {
		t.Fatal(err)
	}
	served := exposition(t, string(e.do("GET", "/metrics", "", "").body))
	doc := metricsTable(t, "api")

	var patterns []string
	for name := range doc {
		if p, ok := strings.CutSuffix(name, "*"); ok {
			patterns = append(patterns, p)
		}
	}
	matched := map[string]bool{}
	for name, got := range served {
		if want, ok := doc[name]; ok {
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(metricRow{})); diff != "" {
				t.Errorf("%s: docs/metrics.md (-) and /metrics (+) differ:\n%s", name, diff)
			}
			continue
		}
		found := false
		for _, p := range patterns {
			if strings.HasPrefix(name, p) {
				matched[p+"*"], found = true, true
			}
		}
		if !found {
			t.Errorf("/metrics serves %s (%s, labels %v), which docs/metrics.md does not list", name, got.typ, got.labels)
		}
	}
	for name := range doc {
		if _, ok := served[name]; !ok && !matched[name] {
			t.Errorf("docs/metrics.md lists %s, which /metrics does not serve", name)
		}
	}
}
