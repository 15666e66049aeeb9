// Package store is the control plane's only door to Redis: the runner records,
// leases, the deadline indexes, tasks and the outbox of lifecycle events.
//
// Every multi-step state change is one embedded Lua script (scripts/*.lua),
// so a heartbeat racing an expiry, two sweepers, or a retried request can
// never leave half-written state. Scripts take time from Redis (TIME), never
// from the caller, so the clocks of API and sweeper replicas never matter.
// Script return codes are named constants beside each wrapper and become
// the sentinel errors in errors.go, every one a *DomainError.
//
// A Conn (conn.go) is a process's pool; it also carries the pub/sub
// subscriptions (a typed channel of what was published), the keyspace-event
// configuration and the Redis command spans (trace.go). No package outside
// the store and the test kit imports go-redis: `make check` holds it.
//
// The store must never know about HTTP, auth or asynq: it speaks wire types
// and sentinel errors, and callers map those to what their users see.
package store
