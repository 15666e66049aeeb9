// Package browsertest drives the web console in a real headless Chromium
// (github.com/chromedp/chromedp) against a real API over a private
// redis-server. It holds tests only; it lives apart so that the browser
// driver is compiled for these tests and no other.
//
// The tests fail, never skip, when chromium is missing: .ci/run installs it.
// UPDATE_SCREENSHOTS=1 writes the screenshots of docs/console.
package browsertest
