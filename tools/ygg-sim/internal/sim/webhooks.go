package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stats"
)

// WebhookSink is a webhook receiver: the hooks service posts the fleet's
// runner.offline and runner.unreachable events to it, and the loss
// scenario reports when the stopped runners' webhooks arrived. It answers
// 204 to every POST, at once.
type WebhookSink struct {
	mu    sync.Mutex
	first map[string]time.Time // runner id -> first offline/unreachable webhook
	total int
	bad   int
}

// NewWebhookSink returns an empty sink.
func NewWebhookSink() *WebhookSink { return &WebhookSink{first: map[string]time.Time{}} }

// ServeHTTP records one delivery.
func (w *WebhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var ev wire.Event
	var data wire.RunnerEventData
	ok := err == nil && json.Unmarshal(body, &ev) == nil && json.Unmarshal(ev.Data, &data) == nil && data.Runner.ID != ""
	w.mu.Lock()
	w.total++
	if !ok {
		w.bad++
	} else if ev.Type == wire.EventRunnerOffline || ev.Type == wire.EventRunnerUnreachable {
		if _, seen := w.first[data.Runner.ID]; !seen {
			w.first[data.Runner.ID] = at
		}
	}
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

// WebhookReport is what the sink saw of the stopped runners.
type WebhookReport struct {
	// Received: deliveries in all; Undecodable: bodies that were not a
	// runner event.
	Received    int `json:"received"`
	Undecodable int `json:"undecodable"`
	// Stopped: stopped runners with an offline or unreachable webhook;
	// AllS: after the stop, when the last of them arrived (0 = not all);
	// Latency: per runner, stop -> its first webhook.
	Stopped int             `json:"stopped"`
	AllS    float64         `json:"allS"`
	Latency stats.Quantiles `json:"latency"`
	// Others: runners that were not stopped and got such a webhook anyway.
	Others int `json:"others"`
}

// report measures the stopped runners' webhooks against stopWall.
func (w *WebhookSink) report(stopped map[string]int, stopWall time.Time) *WebhookReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := &WebhookReport{Received: w.total, Undecodable: w.bad}
	h := stats.NewHistogram()
	var last time.Time
	for id, at := range w.first {
		if _, ok := stopped[id]; !ok {
			r.Others++
			continue
		}
		r.Stopped++
		h.Record(at.Sub(stopWall))
		if at.After(last) {
			last = at
		}
	}
	if r.Stopped == len(stopped) && r.Stopped > 0 {
		r.AllS = last.Sub(stopWall).Seconds()
	}
	r.Latency = h.Snapshot(false)
	return r
}
