package test

import (
	"os"
	"path/filepath"
	"testing"
)

// repoRoot is the top of the tree: two levels above this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repo root %s: %v", root, err)
	}
	return root
}
