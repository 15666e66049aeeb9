// Package sweep is the sweeper service's loops and endpoints: it turns every expired runner lease
// into exactly one offline transition (or, on a correlated loss, a
// quarantine), and fails tasks that ran past their timeout.
//
// It learns about expiries two ways: Redis keyspace expiry events, which are
// fast hints but fire-and-forget, and a scan of the lease deadline index on a
// short tick, which is the truth and bounds the detection lag. Every decision
// is re-checked inside an atomic store script, so any number of replicas may
// run at once. It must never change runner or task state outside the store's
// scripts, and never read the environment (config does that).
package sweep
