package config

import (
	"fmt"
	"strings"
)

// MinKeyLen is the shortest key (API_KEYS, ADMIN_API_KEYS) accepted in
// production. Outside production a shorter key is accepted with a warning:
// the original controller's README shows `API_KEYS=my-secret-key`, and a
// development setup copied from it must start.
const MinKeyLen = 16

// Runner credentials RUNNER_AUTH may list.
const (
	// RunnerAuthToken is a runner's own token (always on).
	RunnerAuthToken = "token"
	// RunnerAuthAPIKey lets any key of API_KEYS act as any runner.
	RunnerAuthAPIKey = "api-key"
)

// configuredKeys returns the non-blank keys of a list variable, trimmed: a
// blank entry ("a,,b") is no key, and matches nothing.
func configuredKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// shortKeys counts the keys of a list variable shorter than MinKeyLen.
func shortKeys(keys []string) int {
	n := 0
	for _, k := range configuredKeys(keys) {
		if len(k) < MinKeyLen {
			n++
		}
	}
	return n
}

// checkKeyLength is the short-key rule for the variable name: an error in
// production, a warning elsewhere. Neither ever holds a key, only a count.
func checkKeyLength(name string, keys []string, production bool) (warning string, err error) {
	n := shortKeys(keys)
	switch {
	case n == 0:
		return "", nil
	case production:
		return "", fmt.Errorf("%s: %d key(s) shorter than %d characters; NODE_ENV=production requires at least %d", name, n, MinKeyLen, MinKeyLen)
	}
	return fmt.Sprintf("%s: %d key(s) shorter than %d characters: accepted outside production only "+
		"(NODE_ENV=production refuses them); use long random keys for anything but local development", name, n, MinKeyLen), nil
}
