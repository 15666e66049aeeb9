// Package sim simulates a fleet of runners in one process, through the real
// HTTP API with the shared Go client: registration that honours Retry-After,
// jittered heartbeats at the interval the controller returns, task pickup and
// completion, re-registration after 404/409; plus the scenarios around them
// (steady, storm, loss, dispatch, churn) and the report.
//
// One scheduler (a min-heap and a dispatcher goroutine) releases every
// runner's next job to a fixed pool of workers, one per HTTP connection, so a
// fleet of 250,000 costs 250,000 small structs, not 250,000 goroutines. Every
// job records how late it started against its schedule, split into the
// dispatcher's lateness (the generator's own CPU) and the wait for a free
// worker (connections busy: a slow server or too low -concurrency), so an
// overloaded generator is never mistaken for a slow server.
//
// It only ever talks to Config.URL, and every run ends by itself: the ramp is
// bounded by RampTimeout and the measured phase by Duration.
package sim
