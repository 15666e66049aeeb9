package browsertest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

const (
	apiKey = "browser-api-key-0123456789"
	opKey  = "browser-operator-key-0123456789"
	// liveWithin bounds how long a change may take to show: well below the
	// page's 15 s fallback refresh, so only the event stream can meet it.
	liveWithin = 5 * time.Second
)

// fakeHooks is the hooks service's archive API: one archived delivery, and
// the replays it was asked for (with the key they carried).
type fakeHooks struct {
	mu      sync.Mutex
	replays []string
}

func (f *fakeHooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+opKey {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/deliveries/archived":
		_ = json.NewEncoder(w).Encode(map[string]any{"total": 1, "items": []map[string]any{{
			"id": "a1b2c3", "webhookId": "msg_2Yh7", "eventType": "runner.offline", "url": "https://hooks.example/yggdrasil",
			"attempts": 21, "lastError": "POST answered 410 Gone", "lastFailedAt": time.Now().Add(-3 * time.Hour),
		}}})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/retry"):
		f.mu.Lock()
		f.replays = append(f.replays, r.URL.Path)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"state":"pending"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeHooks) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.replays...)
}

// startAPI serves the API on 127.0.0.1 over a private redis-server.
func startAPI(t *testing.T, hooksURL string) string {
	t.Helper()
	_, rdb := redistest.Start(t)
	cfg := config.DefaultAPI()
	cfg.APIKeys, cfg.AdminAPIKeys = []string{apiKey}, []string{opKey}
	cfg.LongPollMaxMs = 5000
	cfg.HooksURL = hooksURL
	s, err := app.New(cfg, store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	return "http://" + ln.Addr().String()
}

// browser starts a fresh headless Chromium. A missing chromium fails the
// test: .ci/run installs it (apt-get install chromium).
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install -y chromium; .ci/run does it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	tctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(tctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return tctx
}

// run runs actions, failing the test with what it was doing.
// Each step is bounded, and a failed one says where the browser was.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	within(t, ctx, stepTimeout, what, actions...)
}

const stepTimeout = 20 * time.Second

// where describes the page the browser shows, for a failure message.
func where(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(c, chromedp.Location())
	text, _ := chromedp.Run(c, chromedp.Text(chromedp.CSS("body")))
	return loc + "\n" + text
}

// value runs one action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// within runs actions with a deadline of d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s within %s: %v; the browser shows %s", what, d, err, where(ctx))
	}
}

// shot writes docs/console/<name>.png when UPDATE_SCREENSHOTS=1.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := filepath.Join("..", "..", "..", "..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// streamOpen waits until the page's event stream is connected.
func streamOpen() chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`))
}

// TestConsoleInBrowser logs in, sees a runner register live, dispatches a
// task from the runner's page and watches it run and finish (the test plays
// the runner), then replays an archived webhook.
func TestConsoleInBrowser(t *testing.T) {
	hooks := &fakeHooks{}
	hs := httptest.NewServer(hooks)
	defer hs.Close()
	base := startAPI(t, hs.URL)
	ctx := browser(t, 90*time.Second)
	bg := context.Background()
	reg := client.New(base, apiKey)

	run(t, ctx, "open the login page", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	shot(t, ctx, "login")
	run(t, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS("#key"), opKey),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#fleet")),
	)
	loc := value(t, ctx, "read the location", chromedp.Location())
	if strings.Contains(loc, opKey) {
		t.Fatal("the key is in the URL")
	}
	within(t, ctx, liveWithin, "event stream open", streamOpen())

	// A runner registers while the page is open: it appears without a reload.
	r, err := reg.Register(bg, wire.RegisterRunnerPayload{Name: "build-eu-1", Version: "1.4.2", Realm: "eu-west", Capacity: 4,
		Labels: map[string]string{"arch": "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	within(t, ctx, liveWithin, "the new runner on the fleet page",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-runner="`+r.ID+`"][data-status="online"]`)))
	events := value(t, ctx, "count events", chromedp.AttributeValue(chromedp.CSS("body"), "data-events")).Value
	if events == "0" || events == "" {
		t.Fatalf("the runner showed with no event received (data-events=%q)", events)
	}
	runner := client.New(base, r.Token)
	heartbeat := func() wire.HeartbeatResponse {
		t.Helper()
		hb, err := runner.Heartbeat(bg, wire.HeartbeatPayload{RunnerID: r.ID, LeaseEpoch: r.LeaseEpoch,
			Resources: &wire.SystemResources{CPUPercent: 37, MemoryPercent: 61, DiskPercent: 44}})
		if err != nil {
			t.Fatal(err)
		}
		return hb
	}
	heartbeat()
	others := seedFleet(t, base, reg)
	within(t, ctx, liveWithin, "the other runners",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-runner="`+others[len(others)-1]+`"]`)))
	shot(t, ctx, "fleet")

	// Dispatch from the runner's page.
	run(t, ctx, "open the runner",
		chromedp.Click(chromedp.CSS(`tr[data-runner="`+r.ID+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS("#runner-status")),
		chromedp.SetValue(chromedp.CSS(`form.dispatch textarea[name="payload"]`), `{"command":"make test"}`),
		chromedp.Click(chromedp.CSS("#dispatch")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-task][data-status="pending"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	within(t, ctx, liveWithin, "event stream open on the runner page", streamOpen())
	hb := heartbeat()
	if len(hb.Tasks) != 1 || string(hb.Tasks[0].Payload) != `{"command":"make test"}` {
		t.Fatalf("heartbeat tasks = %+v, want the task dispatched from the console", hb.Tasks)
	}
	tid := hb.Tasks[0].ID
	row := `tr[data-task="` + tid + `"]`
	if _, err := runner.UpdateTask(bg, r.ID, tid, wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: r.LeaseEpoch}); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, liveWithin, "the task running", chromedp.WaitVisible(chromedp.CSS(row+`[data-status="running"]`)))
	if _, err := runner.UpdateTask(bg, r.ID, tid, wire.TaskUpdatePayload{Status: wire.TaskSucceeded, LeaseEpoch: r.LeaseEpoch,
		Result: json.RawMessage(`{"exitCode":0,"stdout":"ok  \t./...\t1.2s\n"}`)}); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, liveWithin, "the task succeeded", chromedp.WaitVisible(chromedp.CSS(row+`[data-status="succeeded"]`)))
	result := value(t, ctx, "read the result", chromedp.Text(chromedp.CSS(row+` td.result`)))
	if !strings.Contains(result, `"exitCode":0`) {
		t.Fatalf("result cell = %q", result)
	}
	if _, err := client.New(base, opKey).RequestUpdate(bg, r.ID, wire.RequestUpdatePayload{Version: "1.5.0"}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "reload the runner", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#runner-status")))
	shot(t, ctx, "runner")

	run(t, ctx, "open the tasks page", chromedp.Navigate(base+"/ui/tasks"), chromedp.WaitVisible(chromedp.CSS(row)))
	shot(t, ctx, "tasks")
	run(t, ctx, "open the admission page", chromedp.Navigate(base+"/ui/quarantine"), chromedp.WaitVisible(chromedp.CSS("#admission-state")))
	shot(t, ctx, "admission")

	run(t, ctx, "open the webhooks page", chromedp.Navigate(base+"/ui/webhooks"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-delivery="a1b2c3"]`)))
	shot(t, ctx, "webhooks")
	run(t, ctx, "replay the archived delivery",
		chromedp.Click(chromedp.CSS(chromedp.CSS(`tr[data-delivery="a1b2c3"] button.replay`))),
		chromedp.WaitVisible(chromedp.CSS(chromedp.CSS(".flash"))),
	)
	flash := value(t, ctx, "read the flash", chromedp.Text(chromedp.CSS(".flash")))
	if got := hooks.got(); len(got) != 1 || got[0] != "/deliveries/archived/a1b2c3/retry" || !strings.Contains(flash, "replayed") {
		t.Fatalf("replays = %v, flash %q; want one replay of a1b2c3", got, flash)
	}
}

// seedFleet registers a few more runners, in two realms, one of them gone
// offline, so that the fleet page (and its screenshot) shows a fleet.
func seedFleet(t *testing.T, base string, reg *client.Client) []string {
	t.Helper()
	bg := context.Background()
	var ids []string
	for i, p := range []wire.RegisterRunnerPayload{
		{Name: "build-eu-2", Version: "1.4.2", Realm: "eu-west", Capacity: 4},
		{Name: "gpu-us-1", Version: "1.4.1", Realm: "us-east", Capacity: 1},
		{Name: "gpu-us-2", Version: "1.4.2", Realm: "us-east", Capacity: 1},
		{Name: "scratch", Version: "1.3.0"},
	} {
		r, err := reg.Register(bg, p)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if _, err := client.New(base, r.Token).Offline(bg, wire.OfflinePayload{RunnerID: r.ID, Reason: "drained"}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, r.ID)
	}
	return ids
}
