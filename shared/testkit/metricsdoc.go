package testkit

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// MetricRow is one metric family as docs/metrics.md documents it or as a
// /metrics scrape serves it: its type and sorted label names (le and
// quantile aside).
type MetricRow struct {
	Type   string
	Labels []string
}

// MetricsTable parses the table of service in the metrics doc at path (the
// rows between <!-- metrics-table:<service> --> and its closing marker):
// family name -> row. A name ending in * stands for a group of families.
func MetricsTable(t testing.TB, path, service string) map[string]MetricRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	open, end := "<!-- metrics-table:"+service+" -->", "<!-- /metrics-table:"+service+" -->"
	i, j := strings.Index(doc, open), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %s ... %s", path, open, end)
	}
	code := regexp.MustCompile("`([^`]+)`")
	rows := map[string]MetricRow{}
	for _, line := range strings.Split(doc[i+len(open):j], "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue // header, separator, blank
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		row := MetricRow{Type: strings.TrimSpace(cells[1])}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			row.Labels = append(row.Labels, m[1])
		}
		sort.Strings(row.Labels)
		if _, dup := rows[name]; dup {
			t.Errorf("%s lists %s twice in the %s table", path, name, service)
		}
		rows[name] = row
	}
	if len(rows) == 0 {
		t.Fatalf("%s: the %s table has no rows", path, service)
	}
	return rows
}

// Exposition parses Prometheus text: family -> type (from # TYPE) and the
// label names its samples carry (le and quantile aside).
func Exposition(t testing.TB, body string) map[string]MetricRow {
	t.Helper()
	fams := map[string]MetricRow{}
	labels := map[string]map[string]bool{}
	var current string
	labelName := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			current = f[2]
			fams[current] = MetricRow{Type: f[3]}
			labels[current] = map[string]bool{}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") || current == "" {
			continue
		}
		if k := strings.IndexByte(line, '{'); k >= 0 {
			end := strings.IndexByte(line, '}')
			if end < k {
				end = len(line)
			}
			for _, m := range labelName.FindAllStringSubmatch(line[k:end], -1) {
				if m[1] != "le" && m[1] != "quantile" {
					labels[current][m[1]] = true
				}
			}
		}
	}
	for name, row := range fams {
		for l := range labels[name] {
			row.Labels = append(row.Labels, l)
		}
		sort.Strings(row.Labels)
		fams[name] = row
	}
	return fams
}

// CompareMetrics fails t for every served family the doc does not list (or
// lists with another type or label set) and every documented family that is
// not served. A doc row named prefix* matches any served family with that
// prefix and needs at least one.
func CompareMetrics(t testing.TB, doc, served map[string]MetricRow) {
	t.Helper()
	var patterns []string
	for name := range doc {
		if p, ok := strings.CutSuffix(name, "*"); ok {
			patterns = append(patterns, p)
		}
	}
	matched := map[string]bool{}
	for name, got := range served {
		if want, ok := doc[name]; ok {
			if diff := cmp.Diff(want, got); diff != "" {
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
			t.Errorf("/metrics serves %s (%s, labels %v), which docs/metrics.md does not list", name, got.Type, got.Labels)
		}
	}
	for name := range doc {
		if _, ok := served[name]; !ok && !matched[name] {
			t.Errorf("docs/metrics.md lists %s, which /metrics does not serve", name)
		}
	}
}
