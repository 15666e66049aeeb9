package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// GET / is where a newcomer lands: JSON links to the console, the contract,
// health and metrics, without a credential even with auth on; a browser gets
// the same links as a page.
func TestIndexPointsToTheConsoleAndTheContract(t *testing.T) {
	e := start(t, authCfg)
	r := e.do("GET", "/", "", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET / = %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var idx struct {
		Links map[string]struct {
			Href string `json:"href"`
		} `json:"links"`
	}
	if err := json.Unmarshal(r.body, &idx); err != nil {
		t.Fatalf("GET / body %s: %v", r.body, err)
	}
	got := map[string]string{}
	for k, l := range idx.Links {
		got[k] = l.Href
	}
	want := map[string]string{"console": "/ui", "openapi": "/openapi.json", "health": "/health", "ready": "/ready", "metrics": "/metrics"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET / links (-want +got):\n%s", diff)
	}

	page := e.do("GET", "/", "", "", "Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / as a browser = %d %s", page.status, page.header.Get("Content-Type"))
	}
	for _, href := range []string{`href="/ui"`, `href="/openapi.json"`, `href="/metrics"`} {
		if !strings.Contains(string(page.body), href) {
			t.Errorf("the page has no %s:\n%s", href, page.body)
		}
	}
	if r := e.do("POST", "/", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", r.status)
	}
}
