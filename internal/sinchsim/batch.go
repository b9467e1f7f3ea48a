package sinchsim

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// TimeLayout is how Sinch renders timestamps: UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// TypeMedia is the batch type of an MMS, the only one the simulator sends.
const TypeMedia = "mt_media"

// Batch is a stored MMS batch, the object Sinch answers for a created batch.
// Its JSON form uses Sinch's field names and renders the times with
// TimeLayout; decoding that form back with encoding/json also works.
type Batch struct {
	ID               string                       `json:"id"`
	To               []string                     `json:"to"`
	From             string                       `json:"from"`
	Canceled         bool                         `json:"canceled"`
	Body             MediaBody                    `json:"body"`
	Parameters       map[string]map[string]string `json:"parameters,omitempty"`
	Type             string                       `json:"type"`
	CreatedAt        time.Time                    `json:"created_at"`
	ModifiedAt       time.Time                    `json:"modified_at"`
	DeliveryReport   string                       `json:"delivery_report"`
	SendAt           time.Time                    `json:"send_at"`
	ExpireAt         time.Time                    `json:"expire_at"`
	CallbackURL      string                       `json:"callback_url,omitempty"`
	ClientReference  string                       `json:"client_reference,omitempty"`
	FeedbackEnabled  bool                         `json:"feedback_enabled"`
	StrictValidation bool                         `json:"strict_validation"`
}

// MediaBody is the body of an MMS batch: one media URL with optional text.
type MediaBody struct {
	URL     string `json:"url"`
	Message string `json:"message,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// MarshalJSON renders b as Sinch does, with millisecond UTC timestamps.
func (b Batch) MarshalJSON() ([]byte, error) {
	// plain has Batch's fields but not this method. The outer string fields
	// hide the embedded time fields of the same JSON name, because
	// encoding/json prefers the less nested field.
	type plain Batch
	return json.Marshal(struct {
		plain
		CreatedAt  string `json:"created_at"`
		ModifiedAt string `json:"modified_at"`
		SendAt     string `json:"send_at"`
		ExpireAt   string `json:"expire_at"`
	}{
		plain:      plain(b),
		CreatedAt:  formatTime(b.CreatedAt),
		ModifiedAt: formatTime(b.ModifiedAt),
		SendAt:     formatTime(b.SendAt),
		ExpireAt:   formatTime(b.ExpireAt),
	})
}

// clone returns a copy of b that shares no slice or map with it.
func (b *Batch) clone() Batch {
	c := *b
	c.To = slices.Clone(b.To)
	if b.Parameters != nil {
		c.Parameters = make(map[string]map[string]string, len(b.Parameters))
		for k, v := range b.Parameters {
			c.Parameters[k] = maps.Clone(v)
		}
	}
	return c
}

func formatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}
