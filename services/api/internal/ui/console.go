package ui

import (
	"bufio"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/runners"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

//go:embed assets
var assets embed.FS

// Bounds of what one page reads: the console is an overview, the API pages
// through everything.
const (
	fleetLimit      = store.MaxListLimit // runners on the fleet page
	taskRunners     = 100                // runners whose tasks the tasks page reads
	tasksPerRunner  = 20
	tasksPageLimit  = 100
	runnerTaskLimit = 50
	quarantineIDs   = 100
	// MaxStreams bounds the event streams one process serves at once.
	MaxStreams = 256
	// streamPing keeps an idle event stream alive and notices a gone browser.
	streamPing = 10 * time.Second
)

// Options configures the console.
type Options struct {
	// HooksURL is the hooks service's base URL ("" = the webhooks page says
	// it is not configured).
	HooksURL string
	// HooksClient calls it (nil: a client with the console's timeout).
	HooksClient *http.Client
	// StreamFor is how long one event stream lasts before the server ends it
	// and the browser reconnects (it must stay below the server's write
	// timeout); the page refreshes on every reconnect.
	StreamFor time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console is the web console: its pages, session table and event feed.
type Console struct {
	svc      *runners.Service
	auth     *auth.Authenticator
	feed     *Feed
	hooks    *hooksClient
	sessions *sessions
	pages    map[string]*template.Template
	log      *slog.Logger
	opts     Options

	closing chan struct{}
	once    sync.Once
}

// New returns the console over svc; src feeds its event streams.
func New(svc *runners.Service, a *auth.Authenticator, src Source, log *slog.Logger, o Options) (*Console, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StreamFor <= 0 {
		return nil, fmt.Errorf("ui: stream duration %s must be positive", o.StreamFor)
	}
	hc := o.HooksClient
	if hc == nil {
		hc = &http.Client{Timeout: hooksTimeout}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Console{
		svc: svc, auth: a, feed: NewFeed(src, MaxStreams, log), hooks: &hooksClient{base: o.HooksURL, http: hc},
		sessions: newSessions(o.Now), pages: pages, log: log, opts: o, closing: make(chan struct{}),
	}, nil
}

// Feed returns the console's event feed, whose Run the caller runs.
func (c *Console) Feed() *Feed { return c.feed }

// Close ends every event stream, so that a shutdown does not wait for them.
func (c *Console) Close() { c.once.Do(func() { close(c.closing) }) }

// taskRows is what the shared task table template gets.
type taskRows struct {
	Now          time.Time
	CSRF         string
	Tasks        []wire.RunnerTask
	OnRunnerPage bool // the table is on the runner's own page: no runner column
}

var funcs = template.FuncMap{
	"taskrows": func(v view, tasks []wire.RunnerTask, onRunnerPage bool) taskRows {
		return taskRows{Now: v.Now, CSRF: v.CSRF, Tasks: tasks, OnRunnerPage: onRunnerPage}
	},
	"taskRunners": func() int { return taskRunners },
	"ms":          func(t time.Time) int64 { return t.UnixMilli() },
	"since":       func(now, t time.Time) string { return ago(now.Sub(t)) },
	"pct":         func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + " %" },
	"json": func(b json.RawMessage) string {
		if len(b) == 0 {
			return ""
		}
		return string(b)
	},
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	names, err := fs.Glob(assets, "assets/templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "assets/templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// ago says how long ago t was (or how soon it comes), roughly.
func ago(d time.Duration) string {
	if d < 0 {
		return "in " + span(-d)
	}
	return span(d) + " ago"
}

func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " d"
}

// Mount registers the console's routes under /ui on app.
func (c *Console) Mount(app *fiber.App) {
	static, _ := fs.Sub(assets, "assets/static")
	g := app.Group("/ui", c.headers)
	g.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(static), MaxAge: 300}))
	g.Get("/", func(ctx *fiber.Ctx) error { return ctx.Redirect("/ui/fleet", fiber.StatusSeeOther) })
	g.Get("/login", c.loginPage)
	g.Post("/login", c.login)
	g.Post("/logout", c.post(c.logout))
	g.Get("/events", c.events)
	g.Get("/fleet", c.page("fleet", c.fleet))
	g.Get("/runners/:id", c.page("runner", c.runner))
	g.Post("/runners/:id/tasks", c.post(c.dispatch))
	g.Post("/runners/:id/tasks/:tid/cancel", c.post(c.cancel))
	g.Post("/runners/:id/request-update", c.post(c.requestUpdate))
	g.Get("/tasks", c.page("tasks", c.tasks))
	g.Post("/tasks", c.post(c.dispatch))
	g.Get("/quarantine", c.page("quarantine", c.quarantine))
	g.Get("/webhooks", c.page("webhooks", c.webhooks))
	g.Post("/webhooks/replay", c.post(c.replayAll))
	g.Post("/webhooks/:id/replay", c.post(c.replayOne))
}

// headers are the console's security headers: nothing runs but its own
// script, no page may frame it, no referrer leaves the console.
func (c *Console) headers(ctx *fiber.Ctx) error {
	ctx.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	ctx.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser posts forms
	// with "Origin: null", which sameOrigin refuses.
	ctx.Set("Referrer-Policy", "same-origin")
	ctx.Set("X-Frame-Options", "DENY")
	return ctx.Next()
}

// view is what every page template gets.
type view struct {
	Page    string
	Title   string
	CSRF    string
	Flash   string
	AuthOff bool
	Now     time.Time
	Data    any
}

// current returns the request's session and its cookie value.
func (c *Console) current(ctx *fiber.Ctx) (session, string, bool) {
	id := ctx.Cookies(CookieName)
	s, ok := c.sessions.get(id)
	return s, id, ok
}

func (c *Console) render(ctx *fiber.Ctx, status int, page, name string, v view) error {
	t, ok := c.pages[page]
	if !ok {
		return fmt.Errorf("ui: no page %s", page)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, v); err != nil {
		return fmt.Errorf("ui: render %s: %w", page, err)
	}
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Type("html", "utf-8")
	return ctx.Status(status).SendString(b.String())
}

// fail renders err as an error page (or a fragment), with the status the
// API's one mapping gives it.
func (c *Console) fail(ctx *fiber.Ctx, v view, fragment bool, err error) error {
	p, _, logIt := httpapi.Classify(err)
	if logIt {
		c.log.Error("console: request failed", "route", ctx.Route().Path, "err", err)
	}
	v.Page, v.Title, v.Data = "error", p.Title, p
	name := "layout"
	if fragment {
		name = "live"
	}
	return c.render(ctx, p.Status, "error", name, v)
}

// page serves a GET page: the whole page, or with ?fragment=1 only its live
// region (what the script fetches when the stream says something changed).
func (c *Console) page(name string, load func(ctx *fiber.Ctx, s session) (string, any, error)) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		fragment := ctx.Query("fragment") == "1"
		s, _, ok := c.current(ctx)
		if !ok {
			if fragment {
				return ctx.SendStatus(fiber.StatusUnauthorized)
			}
			return ctx.Redirect("/ui/login", fiber.StatusSeeOther)
		}
		v := view{Page: name, CSRF: s.csrf, Flash: s.flash, AuthOff: !c.auth.Enabled(), Now: c.opts.Now().UTC()}
		title, data, err := load(ctx, s)
		if err != nil {
			return c.fail(ctx, v, fragment, err)
		}
		v.Title, v.Data = title, data
		if fragment {
			return c.render(ctx, fiber.StatusOK, name, "live", v)
		}
		return c.render(ctx, fiber.StatusOK, name, "layout", v)
	}
}

// post serves a state-changing form: it needs a session and its CSRF token
// (and, when the browser sends one, an Origin of this host), then redirects
// (303) to the page act returns, with act's message or error as a flash.
func (c *Console) post(act func(ctx *fiber.Ctx, s session) (back, msg string, err error)) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		s, id, ok := c.current(ctx)
		if !ok {
			return ctx.Redirect("/ui/login", fiber.StatusSeeOther)
		}
		if !sameOrigin(ctx) || !csrfOK(s, ctx.FormValue("csrf")) {
			return c.fail(ctx, view{Page: "error", AuthOff: !c.auth.Enabled(), Now: c.opts.Now().UTC()}, false, auth.ErrForbidden)
		}
		back, msg, err := act(ctx, s)
		if err != nil {
			msg = c.errorText(ctx, err)
		}
		if msg != "" {
			c.sessions.setFlash(id, msg)
		}
		return ctx.Redirect(back, fiber.StatusSeeOther)
	}
}

// errorText is the flash for a failed action: the problem's title and
// detail, or the hooks service's answer.
func (c *Console) errorText(ctx *fiber.Ctx, err error) string {
	var herr *HooksError
	switch {
	case errors.As(err, &herr):
		return herr.Error()
	case errors.Is(err, errHooksOff):
		return "HOOKS_URL is not configured"
	}
	p, _, logIt := httpapi.Classify(err)
	if logIt {
		c.log.Error("console: action failed", "route", ctx.Route().Path, "err", err)
	}
	return p.Title + ": " + p.Detail
}

// sameOrigin refuses a form posted from another origin when the browser
// says where it comes from (the CSRF token is the main guard).
func sameOrigin(ctx *fiber.Ctx) bool {
	if site := ctx.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := ctx.Get(fiber.HeaderOrigin)
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == string(ctx.Request().Host())
}

func (c *Console) loginPage(ctx *fiber.Ctx) error {
	if _, _, ok := c.current(ctx); ok {
		return ctx.Redirect("/ui/fleet", fiber.StatusSeeOther)
	}
	return c.render(ctx, fiber.StatusOK, "login", "layout", view{Page: "login", Title: "Log in", AuthOff: !c.auth.Enabled()})
}

// login checks the posted operator key and starts a session. The key is
// read from the form body only (never a query), and never logged.
func (c *Console) login(ctx *fiber.Ctx) error {
	v := view{Page: "login", Title: "Log in", AuthOff: !c.auth.Enabled()}
	if !sameOrigin(ctx) {
		v.Flash = "the login form must be posted from this console"
		return c.render(ctx, fiber.StatusForbidden, "login", "layout", v)
	}
	key := strings.TrimSpace(ctx.FormValue("key"))
	if c.auth.Enabled() {
		p, err := c.auth.Authenticate(ctx.UserContext(), "Bearer "+key, "")
		switch {
		case key == "":
			v.Flash = "enter an operator key"
		case errors.Is(err, auth.ErrUnauthenticated):
			v.Flash = "this key is not valid"
		case err != nil:
			return c.fail(ctx, v, false, err)
		case !p.IsOperator():
			v.Flash = "this key may not operate the fleet: log in with an operator key (ADMIN_API_KEYS)"
		case p.Scoped():
			// the console shows every realm: a realm's own keys use the API
			v.Flash = "a realm key may not use the console: log in with a global operator key (ADMIN_API_KEYS)"
		}
		if v.Flash != "" {
			return c.render(ctx, fiber.StatusUnauthorized, "login", "layout", v)
		}
	} else {
		key = ""
	}
	ctx.Cookie(&fiber.Cookie{
		Name: CookieName, Value: c.sessions.create(key), Path: "/ui", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: ctx.Protocol() == "https", MaxAge: int(SessionMax / time.Second),
	})
	return ctx.Redirect("/ui/fleet", fiber.StatusSeeOther)
}

func (c *Console) logout(ctx *fiber.Ctx, _ session) (string, string, error) {
	c.sessions.delete(ctx.Cookies(CookieName))
	ctx.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/ui", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: ctx.Protocol() == "https", MaxAge: -1, Expires: time.Unix(0, 0)})
	return "/ui/login", "", nil
}

// events is the server-sent event stream: one event per change hint, a
// comment every streamPing, and an end after StreamFor (the browser
// reconnects and the page refreshes).
func (c *Console) events(ctx *fiber.Ctx) error {
	if _, _, ok := c.current(ctx); !ok {
		return ctx.SendStatus(fiber.StatusUnauthorized)
	}
	st, err := c.feed.Open()
	if err != nil {
		ctx.Set(fiber.HeaderRetryAfter, "5")
		return ctx.SendStatus(fiber.StatusServiceUnavailable)
	}
	ctx.Set(fiber.HeaderContentType, "text/event-stream")
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Set("X-Accel-Buffering", "no")
	closing, streamFor := c.closing, c.opts.StreamFor
	ctx.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer st.Close()
		end := time.NewTimer(streamFor)
		defer end.Stop()
		ping := time.NewTicker(streamPing)
		defer ping.Stop()
		if _, err := w.WriteString("retry: 1000\n: open\n\n"); err != nil || w.Flush() != nil {
			return
		}
		for {
			var err error
			select {
			case e := <-st.C:
				_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Topic, e.RunnerID)
			case <-ping.C:
				_, err = w.WriteString(": ping\n\n")
			case <-end.C:
				return
			case <-closing:
				return
			}
			if err != nil || w.Flush() != nil {
				return
			}
		}
	})
	return nil
}

// fleetView groups runners by realm, then status.
type fleetView struct {
	Status    string
	Realm     string
	Counts    map[string]int
	Realms    []realmView
	Total     int
	Truncated bool
	Admission wire.AdmissionState
}

type realmView struct {
	Realm   string
	Runners []wire.RunnerInfo
}

func (c *Console) fleet(ctx *fiber.Ctx, _ session) (string, any, error) {
	status, realm := ctx.Query("status"), ctx.Query("realm")
	l, err := c.svc.ListRunners(ctx.UserContext(), runners.RunnerQuery{Status: status, Realm: realm, Limit: strconv.Itoa(fleetLimit)})
	if err != nil {
		return "", nil, err
	}
	v := fleetView{Status: status, Realm: realm, Counts: map[string]int{}, Total: len(l.Runners), Truncated: l.NextCursor != "",
		Admission: c.svc.Admission(ctx.UserContext())}
	byRealm := map[string][]wire.RunnerInfo{}
	for _, r := range l.Runners {
		v.Counts[string(r.Status)]++
		byRealm[r.Realm] = append(byRealm[r.Realm], r)
	}
	for name, rs := range byRealm {
		slices.SortStableFunc(rs, func(a, b wire.RunnerInfo) int { return statusRank(a.Status) - statusRank(b.Status) })
		v.Realms = append(v.Realms, realmView{Realm: name, Runners: rs})
	}
	slices.SortFunc(v.Realms, func(a, b realmView) int { return strings.Compare(a.Realm, b.Realm) })
	return "Fleet", v, nil
}

func statusRank(s wire.RunnerStatus) int {
	switch s {
	case wire.RunnerOnline:
		return 0
	case wire.RunnerUnreachable:
		return 1
	}
	return 2
}

type runnerView struct {
	Runner wire.RunnerInfo
	Tasks  []wire.RunnerTask
	Idem   string
}

func (c *Console) runner(ctx *fiber.Ctx, _ session) (string, any, error) {
	id := ctx.Params("id")
	r, err := c.svc.GetRunner(ctx.UserContext(), id)
	if err != nil {
		return "", nil, err
	}
	tl, err := c.svc.ListTasks(ctx.UserContext(), runners.TaskQuery{RunnerID: id, Limit: strconv.Itoa(runnerTaskLimit)})
	if err != nil {
		return "", nil, err
	}
	return "Runner " + r.Name, runnerView{Runner: r, Tasks: tl.Tasks, Idem: randomHex(16)}, nil
}

type tasksView struct {
	Tasks  []wire.RunnerTask
	Online []wire.RunnerInfo
	Idem   string
}

func (c *Console) tasks(ctx *fiber.Ctx, _ session) (string, any, error) {
	ts, err := c.svc.RecentTasks(ctx.UserContext(), taskRunners, tasksPerRunner, tasksPageLimit)
	if err != nil {
		return "", nil, err
	}
	l, err := c.svc.ListRunners(ctx.UserContext(), runners.RunnerQuery{Status: string(wire.RunnerOnline), Limit: strconv.Itoa(fleetLimit)})
	if err != nil {
		return "", nil, err
	}
	return "Tasks", tasksView{Tasks: ts, Online: l.Runners, Idem: randomHex(16)}, nil
}

// dispatch is the dispatch form, on a runner's page (runner in the path)
// or on the tasks page (runner in the form). The form's idempotency key,
// drawn when the page was rendered, makes a double submit one task.
func (c *Console) dispatch(ctx *fiber.Ctx, _ session) (string, string, error) {
	id, back := ctx.Params("id"), "/ui/tasks"
	if id != "" {
		back = "/ui/runners/" + url.PathEscape(id)
	} else {
		id = ctx.FormValue("runner")
	}
	p := wire.DispatchTaskPayload{Type: strings.TrimSpace(ctx.FormValue("type"))}
	if raw := strings.TrimSpace(ctx.FormValue("payload")); raw != "" {
		if !json.Valid([]byte(raw)) {
			return back, "Validation failed: payload is not JSON", nil
		}
		p.Payload = json.RawMessage(raw)
	}
	if v := strings.TrimSpace(ctx.FormValue("timeoutMs")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return back, "Validation failed: timeout must be a number of milliseconds", nil
		}
		p.TimeoutMs = n
	}
	t, _, err := c.svc.Dispatch(ctx.UserContext(), id, p, ctx.FormValue("idem"))
	if err != nil {
		return back, "", err
	}
	return back, "dispatched task " + t.ID, nil
}

func (c *Console) cancel(ctx *fiber.Ctx, _ session) (string, string, error) {
	id, tid := ctx.Params("id"), ctx.Params("tid")
	back := "/ui/runners/" + url.PathEscape(id)
	_, err := c.svc.UpdateTask(ctx.UserContext(), runners.TaskUpdate{
		RunnerID: id, TaskID: tid, Actor: store.ActorOperator, Payload: wire.TaskUpdatePayload{Status: wire.TaskCancelled},
	})
	if err != nil {
		return back, "", err
	}
	return back, "cancelled task " + tid, nil
}

func (c *Console) requestUpdate(ctx *fiber.Ctx, _ session) (string, string, error) {
	id := ctx.Params("id")
	back := "/ui/runners/" + url.PathEscape(id)
	_, err := c.svc.RequestUpdate(ctx.UserContext(), id, wire.RequestUpdatePayload{
		Version: strings.TrimSpace(ctx.FormValue("version")), Command: strings.TrimSpace(ctx.FormValue("command")),
	})
	if err != nil {
		return back, "", err
	}
	return back, "update requested", nil
}

type quarantineView struct {
	Admission  wire.AdmissionState
	Quarantine runners.QuarantineView
}

func (c *Console) quarantine(ctx *fiber.Ctx, _ session) (string, any, error) {
	q, err := c.svc.Quarantine(ctx.UserContext(), quarantineIDs)
	if err != nil {
		return "", nil, err
	}
	return "Admission and quarantine", quarantineView{Admission: c.svc.Admission(ctx.UserContext()), Quarantine: q}, nil
}

type webhooksView struct {
	Configured bool
	List       wire.ArchivedList
	Error      string
}

func (c *Console) webhooks(ctx *fiber.Ctx, s session) (string, any, error) {
	v := webhooksView{Configured: c.hooks.base != ""}
	if v.Configured {
		l, err := c.hooks.archived(ctx.UserContext(), s.key)
		if err != nil {
			c.log.Warn("console: hooks service call failed", "err", err)
			v.Error = hooksErrorText(err)
		}
		v.List = l
	}
	return "Archived webhooks", v, nil
}

// hooksErrorText says what went wrong with the hooks service, without the
// cause's text when it is not the service's own answer.
func hooksErrorText(err error) string {
	var herr *HooksError
	if errors.As(err, &herr) {
		return herr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the hooks service did not answer in time"
	}
	return "the hooks service cannot be reached"
}

func (c *Console) replayOne(ctx *fiber.Ctx, s session) (string, string, error) {
	id := ctx.Params("id")
	if err := c.hooks.replay(ctx.UserContext(), s.key, id); err != nil {
		return "/ui/webhooks", hooksErrorText(err), nil
	}
	return "/ui/webhooks", "delivery " + id + " replayed", nil
}

func (c *Console) replayAll(ctx *fiber.Ctx, s session) (string, string, error) {
	if err := c.hooks.replayAll(ctx.UserContext(), s.key); err != nil {
		return "/ui/webhooks", hooksErrorText(err), nil
	}
	return "/ui/webhooks", "every archived delivery replayed", nil
}
