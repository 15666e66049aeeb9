package sim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The sink keeps each runner's first offline/unreachable webhook and
// reports the stopped runners' arrivals apart from the others'.
func TestWebhookSinkReportsStoppedRunners(t *testing.T) {
	w := NewWebhookSink()
	stop := time.Now()
	post := func(body string) {
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body)))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status %d", rec.Code)
		}
	}
	post(`{"type":"runner.offline","data":{"runner":{"id":"a"}}}`)
	post(`{"type":"runner.unreachable","data":{"runner":{"id":"b"}}}`)
	post(`{"type":"runner.offline","data":{"runner":{"id":"b"}}}`) // a second one for b
	post(`{"type":"runner.offline","data":{"runner":{"id":"healthy"}}}`)
	post(`{"type":"runner.registered","data":{"runner":{"id":"c"}}}`)
	post(`not json`)
	r := w.report(map[string]int{"a": 0, "b": 1, "c": 2}, stop)
	if r.Received != 6 || r.Undecodable != 1 || r.Stopped != 2 || r.Others != 1 || r.AllS != 0 || r.Latency.Count != 2 {
		t.Fatalf("report %+v", r)
	}
	post(`{"type":"runner.offline","data":{"runner":{"id":"c"}}}`)
	if r := w.report(map[string]int{"a": 0, "b": 1, "c": 2}, stop); r.Stopped != 3 || r.AllS <= 0 {
		t.Fatalf("all three: %+v", r)
	}
}
