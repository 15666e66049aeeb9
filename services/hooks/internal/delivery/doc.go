// Package delivery turns outbox events into asynq delivery tasks and delivers
// them: one task per (event, URL) pair, signed per the Standard Webhooks
// specification, with the retry policy (which responses retry, which are
// permanent, how long to wait) expressed as asynq handler errors and a
// RetryDelayFunc.
//
// It must never read the environment or the outbox: the relay enqueues, this
// package only builds tasks and sends them.
package delivery
