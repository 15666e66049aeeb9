// Package e2e holds the end-to-end tests of Ratatoskr: they build the real
// bin/api, bin/sweeper, bin/hooks and bin/ratatoskr, run them against a
// private redis-server on 127.0.0.1, and drive them through the API with the
// typed client. It has no code outside its tests and must never be imported.
package e2e
