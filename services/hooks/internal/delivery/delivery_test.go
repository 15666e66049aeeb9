package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The test vector published with the Standard Webhooks reference libraries
// (libraries/go/webhook_test.go, TestWebhookSign; the same in the C#, Java
// and Python suites).
func TestSignerMatchesSpecificationVector(t *testing.T) {
	s, err := NewSigner([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

func TestSignerRotationAndErrors(t *testing.T) {
	other := "whsec_" + strings.Repeat("QUJD", 8)
	s, err := NewSigner([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", other})
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := s.Sign("id", time.Unix(1, 0), []byte("{}"))
	if parts := strings.Fields(sig); len(parts) != 2 || !strings.HasPrefix(parts[1], "v1,") {
		t.Fatalf("rotation header %q", sig)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_QUJD"} {
		if _, err := NewSigner([]string{bad}); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
	if none, _ := NewSigner(nil); none.Enabled() {
		t.Error("no secret but enabled")
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       string // ok, retry, permanent
		wantAfter  time.Duration
	}{
		{200, "", "ok", 0}, {204, "", "ok", 0}, {299, "", "ok", 0},
		{301, "", "permanent", 0}, {302, "", "permanent", 0},
		{400, "", "permanent", 0}, {401, "", "permanent", 0}, {404, "", "permanent", 0}, {410, "", "permanent", 0},
		{408, "", "retry", 0}, {429, "7", "retry", 7 * time.Second}, {500, "", "retry", 0}, {502, "", "retry", 0},
		{503, now.Add(90 * time.Second).Format(http.TimeFormat), "retry", 90 * time.Second},
		{503, "soon", "retry", 0}, {503, "-3", "retry", 0},
	} {
		t.Run(fmt.Sprint(tc.status, tc.retryAfter), func(t *testing.T) {
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			err := Classify(tc.status, h, now)
			var re *RetryableError
			switch tc.want {
			case "ok":
				if err != nil {
					t.Fatalf("got %v", err)
				}
			case "retry":
				if !errors.As(err, &re) || errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("got %v, want retryable", err)
				}
				if re.RetryAfter != tc.wantAfter {
					t.Fatalf("retry-after %v, want %v", re.RetryAfter, tc.wantAfter)
				}
			case "permanent":
				if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, ErrPermanent) {
					t.Fatalf("got %v, want permanent (SkipRetry)", err)
				}
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	base, ceiling := 5*time.Second, 2*time.Hour
	var total time.Duration
	for n := 0; n < 20; n++ {
		lo, hi := Backoff(base, ceiling, n, 0), Backoff(base, ceiling, n, 0.999999)
		exp := min(base<<n, ceiling)
		if lo < time.Duration(float64(exp)*0.8)-time.Millisecond || hi > ceiling || hi > time.Duration(float64(exp)*1.2) {
			t.Errorf("n=%d: delay range [%v, %v] for %v", n, lo, hi, exp)
		}
		total += Backoff(base, ceiling, n, 0.5)
	}
	// 20 retries span about a day with the defaults.
	if total < 18*time.Hour || total > 26*time.Hour {
		t.Errorf("20 retries span %v", total)
	}
	if d := Backoff(base, ceiling, 500, 0.5); d != ceiling {
		t.Errorf("huge n: %v", d)
	}
	f := RetryDelay(base, ceiling)
	if d := f(0, &RetryableError{Status: 429, RetryAfter: 30 * time.Second}, nil); d != 31*time.Second {
		t.Errorf("Retry-After 30s gave %v", d)
	}
	if d := f(0, &RetryableError{Status: 503, RetryAfter: 48 * time.Hour}, nil); d != ceiling {
		t.Errorf("Retry-After is capped: %v", d)
	}
}

func TestTaskRoundTrip(t *testing.T) {
	ev := wire.Event{ID: "1700000000000-0", Type: wire.EventRunnerOffline, Timestamp: time.UnixMilli(1700000000000).UTC(), Data: []byte(`{"runner":{"id":"r"}}`)}
	task, err := NewTask(ev, "https://example.test/hook")
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodePayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p.WebhookID() != "msg_1700000000000-0" || p.EventTimeMs != 1700000000000 || p.URL != "https://example.test/hook" {
		t.Fatalf("payload %+v", p)
	}
	if want := `{"type":"runner.offline","timestamp":"2023-11-14T22:13:20Z","data":{"runner":{"id":"r"}}}`; p.Body != want {
		t.Fatalf("body %s\nwant %s", p.Body, want)
	}
	if TaskID(ev.ID, "https://a") == TaskID(ev.ID, "https://b") || TaskID(ev.ID, "https://a") != TaskID(ev.ID, "https://a") {
		t.Fatal("task ids must differ per URL and be stable")
	}
	if _, err := DecodePayload([]byte(`{}`)); err == nil {
		t.Fatal("empty payload accepted")
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"eventId":"1-0","url":"http://x","body":"{}"}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePayload(b)
		if err == nil && (p.EventID == "" || p.URL == "") {
			t.Fatalf("accepted %q", b)
		}
	})
}
