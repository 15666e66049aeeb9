package main

import (
	"strings"
	"testing"
)

// TestRunRefusesBeforeSendingAnything: bad flags fail before any request or
// spawned process, with every problem named.
func TestRunRefusesBeforeSendingAnything(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"remote url", []string{"-quiet", "-url", "http://10.1.2.3:3000", "-duration", "1s"}, []string{"not a loopback address"}},
		{"several problems", []string{"-quiet", "-runners", "0", "-duration", "5h", "-scenario", "loss"},
			[]string{"-runners", "-duration", "-operator-key"}},
		{"stray argument", []string{"-quiet", "extra"}, []string{"unexpected arguments"}},
		{"unknown flag", []string{"-bogus"}, []string{"bogus"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args)
			if err == nil {
				t.Fatal("run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
