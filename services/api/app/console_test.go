package app_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/ui"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// form posts a form to the console with the session cookie (if any),
// without following redirects.
func (e *env) form(path, cookie string, vals url.Values, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(vals.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: ui.CookieName, Value: cookie})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Transport: e.http.Transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// page gets a console page with the session cookie.
func (e *env) page(path, cookie string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: ui.CookieName, Value: cookie})
	}
	c := &http.Client{Transport: e.http.Transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestConsoleLoginSessionAndCSRF(t *testing.T) {
	e := start(t, authCfg)

	if st, _ := e.page("/ui/fleet", ""); st != http.StatusSeeOther {
		t.Fatalf("fleet without a session: %d, want 303 to the login", st)
	}
	if st, _ := e.page("/ui/fleet?fragment=1", ""); st != http.StatusUnauthorized {
		t.Fatalf("fragment without a session: %d, want 401", st)
	}
	if st, _ := e.page("/ui/events", ""); st != http.StatusUnauthorized {
		t.Fatalf("events without a session: %d, want 401", st)
	}
	for _, tc := range []struct{ name, key string }{{"empty", ""}, {"wrong", "not-a-key-0123456789"}, {"runner API key", apiKey}} {
		res := e.form("/ui/login", "", url.Values{"key": {tc.key}})
		if res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 {
			t.Errorf("login with %s key: %d, cookies %v; want 401 and none", tc.name, res.StatusCode, res.Cookies())
		}
	}
	if res := e.form("/ui/login", "", url.Values{"key": {opKey}}, "Origin", "http://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Errorf("login posted from another origin: %d, want 403", res.StatusCode)
	}

	res := e.form("/ui/login", "", url.Values{"key": {opKey}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/fleet" {
		t.Fatalf("login: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == ui.CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui" || cookie.Secure {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/ui, not Secure over plain HTTP", cookie)
	}
	if strings.Contains(cookie.Value, opKey) || strings.Contains(res.Header.Get("Location"), opKey) {
		t.Fatal("the key is in the cookie or the redirect")
	}

	r := e.register(apiKey, wire.RegisterRunnerPayload{Name: "web-1", Realm: "eu-west"})
	st, body := e.page("/ui/fleet", cookie.Value)
	if st != http.StatusOK || !strings.Contains(body, "web-1") || !strings.Contains(body, "eu-west") {
		t.Fatalf("fleet page: %d, runner or realm missing:\n%s", st, body)
	}
	if strings.Contains(body, opKey) {
		t.Fatal("the key is on the page")
	}
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	dispatch := url.Values{"type": {"echo"}, "payload": {`{"x":1}`}, "idem": {"console-test-1"}}
	if res := e.form("/ui/runners/"+r.ID+"/tasks", cookie.Value, dispatch); res.StatusCode != http.StatusForbidden {
		t.Fatalf("dispatch without the CSRF token: %d, want 403", res.StatusCode)
	}
	dispatch.Set("csrf", strings.Repeat("0", len(m[1])))
	if res := e.form("/ui/runners/"+r.ID+"/tasks", cookie.Value, dispatch); res.StatusCode != http.StatusForbidden {
		t.Fatalf("dispatch with a wrong CSRF token: %d, want 403", res.StatusCode)
	}
	dispatch.Set("csrf", m[1])
	if res := e.form("/ui/runners/"+r.ID+"/tasks", cookie.Value, dispatch, "Sec-Fetch-Site", "cross-site"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("dispatch from another site: %d, want 403", res.StatusCode)
	}
	for range 2 { // the form's idempotency key: a double submit is one task
		if res := e.form("/ui/runners/"+r.ID+"/tasks", cookie.Value, dispatch); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("dispatch: %d, want 303", res.StatusCode)
		}
	}
	list, err := e.client(opKey).ListTasks(context.Background(), r.ID, client.TaskQuery{})
	if err != nil || len(list.Tasks) != 1 || list.Tasks[0].Type != "echo" {
		t.Fatalf("tasks after two submits = %+v, %v; want one echo task", list, err)
	}
	// The flash says what happened, once.
	if _, body := e.page("/ui/runners/"+r.ID, cookie.Value); !strings.Contains(body, "dispatched task "+list.Tasks[0].ID) {
		t.Fatalf("runner page has no flash for the dispatch:\n%s", body)
	}
	bad := url.Values{"csrf": {m[1]}, "type": {"echo"}, "payload": {`{"x":`}}
	e.form("/ui/runners/"+r.ID+"/tasks", cookie.Value, bad)
	if _, body := e.page("/ui/runners/"+r.ID, cookie.Value); !strings.Contains(body, "payload is not JSON") {
		t.Fatalf("bad payload not reported:\n%s", body)
	}
	if st, body := e.page("/ui/runners/no-such-runner", cookie.Value); st != http.StatusNotFound || !strings.Contains(body, "Runner not found") {
		t.Fatalf("unknown runner page: %d\n%s", st, body)
	}
	if st, body := e.page("/ui/webhooks", cookie.Value); st != http.StatusOK || !strings.Contains(body, "HOOKS_URL") {
		t.Fatalf("webhooks page without HOOKS_URL: %d\n%s", st, body)
	}
	if st, body := e.page("/ui/quarantine", cookie.Value); st != http.StatusOK || !strings.Contains(body, "closed") {
		t.Fatalf("admission page: %d\n%s", st, body)
	}

	if res := e.form("/ui/logout", cookie.Value, url.Values{"csrf": {m[1]}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if st, _ := e.page("/ui/fleet", cookie.Value); st != http.StatusSeeOther {
		t.Fatalf("fleet after logout: %d, want 303 to the login", st)
	}
}

// The event stream announces a registration (from the outbox), a dispatch
// (the dispatch channel) and a task change (the task events channel).
func TestConsoleEventStream(t *testing.T) {
	e := start(t, authCfg)
	res := e.form("/ui/login", "", url.Values{"key": {opKey}})
	var sid string
	for _, c := range res.Cookies() {
		if c.Name == ui.CookieName {
			sid = c.Value
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/ui/events", nil)
	req.AddCookie(&http.Cookie{Name: ui.CookieName, Value: sid})
	stream, err := (&http.Client{Transport: e.http.Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	events := make(chan string, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stream.Body)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				events <- ev + " " + strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	await := func(want string, act func()) {
		t.Helper()
		act()
		for {
			select {
			case got, ok := <-events:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if got == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %q on the stream", want)
			}
		}
	}
	// The feed says resync once each of its three sources is in place
	// (the stream may open before or after some of them): wait until a
	// registration shows, registering again until one does.
	var r wire.RegisterRunnerResponse
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		r = e.register(apiKey, wire.RegisterRunnerPayload{Name: "live-1"})
		timer := time.NewTimer(300 * time.Millisecond)
	wait:
		for {
			select {
			case ev := <-events:
				if ev == "fleet "+r.ID {
					got = true
					break wait
				}
			case <-timer.C:
				break wait
			case <-deadline:
				t.Fatal("no registration on the stream")
			}
		}
		timer.Stop()
	}
	op := e.client(opKey)
	var task wire.RunnerTask
	await("tasks "+r.ID, func() {
		var err error
		if task, _, err = op.Dispatch(ctx, r.ID, wire.DispatchTaskPayload{Type: "echo"}, ""); err != nil {
			t.Fatal(err)
		}
	})
	await("tasks "+r.ID, func() {
		if _, err := e.client(r.Token).UpdateTask(ctx, r.ID, task.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning}); err != nil {
			t.Fatal(err)
		}
	})
	await("fleet "+r.ID, func() {
		if _, err := e.client(r.Token).Offline(ctx, wire.OfflinePayload{RunnerID: r.ID}); err != nil {
			t.Fatal(err)
		}
	})
}
