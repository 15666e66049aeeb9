// Package testkit holds the helpers every test package of the workspace
// shares: polling with a deadline instead of sleeping (Eventually,
// EventuallyNil, WaitFor), a log sink that is safe to write while a test
// reads it (SyncBuffer), and a harness that runs a Run(ctx) error style
// function for the length of a test (Start, Serve).
//
// Test helpers only: it imports testing, and non-test code must never import
// it. Redis servers for tests come from its sibling, shared/redistest.
package testkit
