package testkit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v4"
)

// ContractRoutes lists "METHOD /path" of every operation that openapi.yaml,
// the contract at the repository top (found by walking up from the working
// directory to go.work), documents for service ("api", "sweeper", "hooks"):
// the x-service of a path item's own servers, else of the top-level ones.
// A service's test compares its registered routes with these.
func ContractRoutes(t testing.TB, service string) []string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testkit: no go.work above the working directory: cannot find openapi.yaml")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type server struct {
		Service string `yaml:"x-service"`
	}
	var doc struct {
		Servers []server                  `yaml:"servers"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	methods := map[string]string{"get": "GET", "put": "PUT", "post": "POST", "delete": "DELETE", "options": "OPTIONS",
		"head": "HEAD", "patch": "PATCH", "trace": "TRACE"}
	var out []string
	for path, item := range doc.Paths {
		servers := doc.Servers
		if raw, ok := item["servers"]; ok {
			servers = nil
			b, _ := yaml.Marshal(raw)
			if err := yaml.Unmarshal(b, &servers); err != nil {
				t.Fatalf("openapi.yaml: servers of %s: %v", path, err)
			}
		}
		if !slices.ContainsFunc(servers, func(s server) bool { return s.Service == service }) {
			continue
		}
		for k := range item {
			if m, ok := methods[k]; ok {
				out = append(out, m+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}
