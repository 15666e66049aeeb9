package devreceiver_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/tools/devrun/devreceiver"
)

func TestReceiverVerifiesSignatures(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := devreceiver.New(secret, logging.Discard())
	body := []byte(`{"type":"runner.offline","timestamp":"2026-01-01T00:00:00Z","data":{"runner":{"id":"r1"},"reason":"lease_expired","failedTaskIds":[]}}`)
	wh, _ := standardwebhooks.NewWebhook(secret)
	now := time.Now()
	sig, _ := wh.Sign("msg_1-0", now, body)
	for name, tc := range map[string]struct {
		sig  string
		want int
	}{
		"signed": {sig, http.StatusNoContent},
		"forged": {"v1,AAAA", http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
			req.Header.Set("webhook-id", "msg_1-0")
			req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			req.Header.Set("webhook-signature", tc.sig)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
	rec := httptest.NewRecorder()
	devreceiver.New("", logging.Discard()).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body)))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("unsigned receiver: %d", rec.Code)
	}
}
