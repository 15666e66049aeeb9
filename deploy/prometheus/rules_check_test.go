package prometheus

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql is the parser with Prometheus's default options (what a server
// without feature flags accepts).
var promql = parser.NewParser(parser.Options{})

// services are the tables of docs/metrics.md whose families the rules and
// the dashboard may name.
var services = []string{"api", "sweeper", "hooks"}

const (
	docPath     = "../../docs/metrics.md"
	runbookPath = "../../docs/runbooks.md"
	runbookBase = "https://github.com/yggdrasil-cp/yggdrasil/blob/main/docs/runbooks.md#"
)

// family is a documented metric family.
type family struct {
	typ    string
	labels map[string]bool
}

// exported reads every documented family of every service (default
// METRICS_PREFIX); rows ending in * (go_*, process_*) are skipped: a rule
// must not depend on a library's collector.
func exported(t *testing.T) map[string]family {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	code := regexp.MustCompile("`([^`]+)`")
	out := map[string]family{}
	for _, svc := range services {
		open, end := "<!-- metrics-table:"+svc+" -->", "<!-- /metrics-table:"+svc+" -->"
		i, j := strings.Index(doc, open), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("docs/metrics.md has no %s table", svc)
		}
		for _, line := range strings.Split(doc[i:j], "\n") {
			cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
			if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
				continue
			}
			name := strings.Trim(strings.TrimSpace(cells[0]), "`")
			if strings.HasSuffix(name, "*") {
				continue
			}
			f, ok := out[name]
			if !ok {
				f = family{typ: strings.TrimSpace(cells[1]), labels: map[string]bool{}}
			}
			for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
				f.labels[m[1]] = true
			}
			out[name] = f
		}
	}
	if len(out) < 30 {
		t.Fatalf("docs/metrics.md: only %d families found", len(out))
	}
	return out
}

// Labels every series has once scraped, or that a histogram sample carries.
var scrapeLabels = map[string]bool{"job": true, "instance": true, "__name__": true}

// checkExpr parses expr and fails for every selector whose metric is not
// documented (a histogram is selected by its _bucket, _sum or _count) or
// whose matchers name a label the family does not have.
func checkExpr(t *testing.T, where, expr string, fams map[string]family) {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	n := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		n++
		name := vs.Name
		f, ok := fams[name]
		extra := map[string]bool{}
		if !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suf); cut {
					if hf, found := fams[base]; found && hf.typ == "histogram" {
						f, ok = hf, true
						if suf == "_bucket" {
							extra["le"] = true
						}
					}
				}
			}
		}
		if !ok {
			t.Errorf("%s: %q names %s, which no service exports (docs/metrics.md)", where, expr, name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if !f.labels[m.Name] && !scrapeLabels[m.Name] && !extra[m.Name] {
				t.Errorf("%s: %q matches label %s, which %s does not have", where, expr, m.Name, name)
			}
		}
		return nil
	})
	if n == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
}

// TestRulesParseAndNameExportedMetrics: rules.yaml passes the Prometheus
// rule parser (the one promtool uses), every expression parses and names
// only documented families and labels, and every alert has a severity, a
// summary and a runbook_url that points at its paragraph in
// docs/runbooks.md.
func TestRulesParseAndNameExportedMetrics(t *testing.T) {
	groups, errs := rulefmt.ParseFile("rules.yaml", false, model.LegacyValidation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("rules.yaml: %v", errors.Join(errs...))
	}
	fams := exported(t)
	runbooks, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]string{} // anchor -> section text
	sections := regexp.MustCompile(`(?m)^### (\S+)\s*$`).FindAllStringSubmatchIndex(string(runbooks), -1)
	for i, m := range sections {
		end := len(runbooks)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		headings[strings.ToLower(string(runbooks[m[2]:m[3]]))] = string(runbooks[m[1]:end])
	}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert + r.Record
			checkExpr(t, where, r.Expr, fams)
			if r.Alert == "" {
				continue
			}
			alerts++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", where)
			}
			anchor := strings.ToLower(r.Alert)
			if got := r.Annotations["runbook_url"]; got != runbookBase+anchor {
				t.Errorf("%s: runbook_url %q, want %q", where, got, runbookBase+anchor)
			}
			body, ok := headings[anchor]
			if !ok {
				t.Errorf("%s: docs/runbooks.md has no section ### %s", where, r.Alert)
				continue
			}
			for _, part := range []string{"**Means**", "**Confirm**", "**Do**"} {
				if !strings.Contains(body, part) {
					t.Errorf("docs/runbooks.md ### %s lacks %s", r.Alert, part)
				}
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts, want the full set", alerts)
	}
}

// TestDashboardQueriesNameExportedMetrics: every query of the Grafana
// dashboard parses as PromQL (Grafana's $__ interval variables replaced by a
// duration) and names only documented families.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "grafana", "yggdrasil.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("yggdrasil.json: %v", err)
	}
	fams := exported(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	var exprs []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				exprs = append(exprs, e)
				checkExpr(t, path, vars.Replace(e), fams)
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(x[k], path+"."+k)
			}
		case []any:
			for _, e := range x {
				walk(e, path)
			}
		}
	}
	walk(dash, "dashboard")
	if len(exprs) < 15 {
		t.Errorf("%d queries in the dashboard, want its panels' queries", len(exprs))
	}
	for _, want := range []string{"runners_online", "heartbeat_duration_seconds", "detection_lag_seconds", "outbox_oldest_undelivered_seconds", "deliveries_total", "breaker_open", "redis_errors_total"} {
		if !strings.Contains(strings.Join(exprs, "\n"), want) {
			t.Errorf("no dashboard panel reads %s", want)
		}
	}
}

// promtool runs promtool with args; a missing promtool fails the test
// (.ci/run and make promtool install it), it never skips.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (make promtool installs it from Debian's prometheus package): %v", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		err = <-done
		t.Fatalf("promtool %v: still running after 60 s", args)
	}
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestPromtoolCheckRules: promtool accepts rules.yaml.
func TestPromtoolCheckRules(t *testing.T) {
	if out := promtool(t, "check", "rules", "rules.yaml"); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

// TestPromtoolTestRules: the unit tests of rules_test.yaml pass (each main
// alert fires on its synthetic series and stays silent on healthy ones).
func TestPromtoolTestRules(t *testing.T) {
	if out := promtool(t, "test", "rules", "rules_test.yaml"); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}
