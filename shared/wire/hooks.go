package wire

import "time"

// ArchivedDelivery is one archived webhook delivery (its retries ran out, or
// the receiver answered a permanent 4xx) as the hooks service's
// GET /deliveries/archived lists it. URL is scheme and host only: a webhook
// URL's path can be a secret.
type ArchivedDelivery struct {
	ID           string    `json:"id"`
	WebhookID    string    `json:"webhookId"`
	EventType    string    `json:"eventType"`
	URL          string    `json:"url"`
	Attempts     int       `json:"attempts"`
	LastError    string    `json:"lastError"`
	LastFailedAt time.Time `json:"lastFailedAt"`
}

// ArchivedList is one page of GET /deliveries/archived.
type ArchivedList struct {
	Items []ArchivedDelivery `json:"items"`
	Page  int                `json:"page"`
	Size  int                `json:"size"`
	Total int                `json:"total"`
}
