// Package devreceiver is a webhook receiver for local development: it checks
// the Standard Webhooks signature of each delivery and logs the event type,
// runner and reason. The dev launcher (`make run`) mounts it when
// RUNNER_OFFLINE_HOOK is empty. It is not meant for production receivers,
// but it is also a short, working example of one.
package devreceiver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

const maxBody = 1 << 20

// New returns the receiver's handler. secret is RUNNER_OFFLINE_HOOK_SECRET
// (one or more "whsec_" secrets separated by spaces or commas); empty means
// signatures are not checked. A delivery whose signature does not verify
// gets 401, which the hooks worker treats as permanent (archived).
func New(secret string, log *slog.Logger) http.Handler {
	var hooks []*standardwebhooks.Webhook
	for _, s := range strings.FieldsFunc(secret, func(r rune) bool { return r == ',' || r == ' ' }) {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			log.Error("dev receiver: unusable secret; signatures will be refused", "err", err)
			wh, _ = standardwebhooks.NewWebhookRaw(nil)
		}
		hooks = append(hooks, wh)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		verified := "unsigned (no secret configured)"
		if len(hooks) > 0 {
			verified = ""
			for _, wh := range hooks {
				if wh.Verify(body, r.Header) == nil {
					verified = "ok"
					break
				}
			}
			if verified == "" {
				log.Warn("dev receiver: signature does not verify", "webhook_id", r.Header.Get("webhook-id"))
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		var ev wire.Event
		var data wire.RunnerEventData
		if err := json.Unmarshal(body, &ev); err == nil {
			_ = json.Unmarshal(ev.Data, &data)
		}
		log.Info("dev receiver: webhook",
			"webhook_id", r.Header.Get("webhook-id"), "type", ev.Type, "runner", data.Runner.ID,
			"name", data.Runner.Name, "reason", data.Reason, "failed_tasks", len(data.FailedTaskIDs),
			"signature", verified)
		w.WriteHeader(http.StatusNoContent)
	})
}
