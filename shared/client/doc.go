// Package client is the typed Go client of the Yggdrasil REST API: what a
// runner, an orchestrator or an operator tool imports to speak to the
// controller. It speaks only wire types and net/http; it must never import
// a service.
//
// Depend on it like any Go module (it is part of the shared module):
//
//	go get github.com/yggdrasil-cp/yggdrasil/shared/client@latest
//
// and import "github.com/yggdrasil-cp/yggdrasil/shared/client" and
// "github.com/yggdrasil-cp/yggdrasil/shared/wire" (the request and response
// types).
//
// One Client holds one base URL and one credential: an API key (register),
// an operator key (list, dispatch, request updates) or the runner token a
// registration returns ([Client.WithCredential]). It is safe for concurrent
// use.
//
//   - Runners: [Client.Register], [Client.Heartbeat], [Client.Offline];
//     operators list them page by page with [Client.ListRunners] or all at
//     once with the iterator [Client.Runners].
//   - Tasks: [Client.Dispatch] (with an Idempotency-Key a retry returns the
//     same task), [Client.GetTask], [Client.WaitTask] (long-polls that one
//     task until it finishes), [Client.Tasks] and [Client.AllTasks]
//     (iterators over every page).
//   - Errors: every non-2xx answer is an [*Error] carrying the RFC 9457
//     problem (compare Problem.Type with the constants of shared/problem),
//     the status ([StatusOf]) and the Retry-After ([RetryAfterOf]), parsed
//     from seconds or an HTTP date.
//   - Retries: [WithRetry] retries idempotent calls (GET, DELETE, and a
//     dispatch with an Idempotency-Key) on transport errors, 429, 502, 503
//     and 504 with capped exponential backoff, honouring Retry-After;
//     [Retry] does the same for any function.
//   - Time: requests are bounded by [DefaultTimeout], longer than the
//     longest long poll; pass a context to bound a call more tightly.
package client
