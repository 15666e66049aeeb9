// Package e2e holds the end-to-end tests of the control plane and its
// reference runner: they build the real bin/api, bin/sweeper, bin/hooks and
// bin/ratatoskr, run them against a private redis-server on 127.0.0.1, and
// drive them through the API with the typed client. It is a module of its
// own, beside the ones it builds, so that no service or runner module
// depends on the others for its tests. It has no code outside its tests and
// must never be imported.
package e2e
