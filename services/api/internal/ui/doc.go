// Package ui is the operator's web console, served by the api under /ui:
// server-rendered html/template pages (embedded with embed.FS, no build
// step), a small plain-JavaScript file that refreshes the live parts of a
// page when the server-sent event stream says something changed, and an
// operator-key login kept in a server-side session.
//
// Handlers are thin: they read the form or the path, call one method of the
// runners application layer (or the hooks service's admin API), and render.
// Errors become statuses through httpapi.Classify, the API's one mapping.
//
// It must never put a key in a URL, a log line, a span, a page or a cookie
// (the cookie carries a random session id; the key stays in this process's
// memory), nor change state on a GET or without the session's CSRF token.
package ui
