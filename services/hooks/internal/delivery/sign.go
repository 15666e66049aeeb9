package delivery

import (
	"fmt"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
)

// Standard Webhooks headers.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// Signer signs deliveries with one or more secrets (several during a secret
// rotation: the receiver accepts the request when any signature matches).
type Signer struct {
	hooks []*standardwebhooks.Webhook
}

// NewSigner returns a signer for "whsec_" + base64 secrets. No secrets gives
// a signer that signs nothing (unsigned deliveries, development only).
func NewSigner(secrets []string) (*Signer, error) {
	s := &Signer{}
	for i, sec := range secrets {
		if _, err := config.DecodeHookSecret(sec); err != nil {
			return nil, fmt.Errorf("delivery: secret #%d %w", i+1, err)
		}
		wh, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			return nil, fmt.Errorf("delivery: secret #%d: %w", i+1, err)
		}
		s.hooks = append(s.hooks, wh)
	}
	return s, nil
}

// Enabled reports whether the signer has a secret.
func (s *Signer) Enabled() bool { return len(s.hooks) > 0 }

// Sign returns the webhook-signature header value for a message: "v1,<sig>"
// per secret, space-separated as the specification allows. Empty when the
// signer has no secret.
func (s *Signer) Sign(id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(s.hooks))
	for _, wh := range s.hooks {
		sig, err := wh.Sign(id, ts, body)
		if err != nil {
			return "", fmt.Errorf("delivery: sign %s: %w", id, err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
