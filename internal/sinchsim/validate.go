package sinchsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the send request, from the Sinch reference (§2 of
// shared/reference/sinch-xms-mms.md).
const (
	maxRecipients  = 1000
	maxURLLen      = 2048
	maxMessageLen  = 2000
	maxSubjectLen  = 80
	maxCallbackLen = 2048
	maxExpiry      = 3 * 24 * time.Hour
	maxRequestSize = 8 << 20 // bytes; room for 1000 recipients' parameters
)

// deliveryReports are the accepted values of delivery_report.
var deliveryReports = map[string]bool{
	"none":                true,
	"summary":             true,
	"full":                true,
	"per_recipient":       true,
	"per_recipient_final": true,
}

// sendRequest is the body of POST /batches as the simulator reads it.
// Fields that a text batch would have are simply ignored, as are unknown
// ones: Sinch is lenient about extra fields.
type sendRequest struct {
	Type             string                       `json:"type"`
	To               []string                     `json:"to"`
	From             string                       `json:"from"`
	Body             json.RawMessage              `json:"body"`
	Parameters       map[string]map[string]string `json:"parameters"`
	DeliveryReport   *string                      `json:"delivery_report"`
	SendAt           *string                      `json:"send_at"`
	ExpireAt         *string                      `json:"expire_at"`
	CallbackURL      string                       `json:"callback_url"`
	ClientReference  string                       `json:"client_reference"`
	FeedbackEnabled  bool                         `json:"feedback_enabled"`
	StrictValidation bool                         `json:"strict_validation"`
}

// parseSend checks a send request, given its Content-Type header and its
// body (or the error reading it), and returns the batch to store (without
// its id) or the error Sinch would answer. now is the creation time.
func (s *Server) parseSend(contentType string, raw []byte, readErr error, now time.Time) (*Batch, *apiError) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return nil, &apiError{Status: http.StatusUnsupportedMediaType}
	}
	if readErr != nil {
		return nil, badRequest(codeInvalidJSON, "request body could not be read: "+readErr.Error())
	}

	var req sendRequest
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, badRequest(codeInvalidJSON, "request body must be a JSON object")
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, badRequest(codeInvalidJSON, describeJSONError(err))
	}

	body, apiErr := checkType(req.Type, req.Body)
	if apiErr != nil {
		return nil, apiErr
	}

	b := &Batch{
		To:               req.To,
		From:             req.From,
		Body:             body,
		Parameters:       req.Parameters,
		Type:             TypeMedia,
		CreatedAt:        now,
		ModifiedAt:       now,
		DeliveryReport:   "none",
		CallbackURL:      req.CallbackURL,
		ClientReference:  req.ClientReference,
		FeedbackEnabled:  req.FeedbackEnabled,
		StrictValidation: req.StrictValidation,
	}

	if apiErr := checkRecipients(req.To); apiErr != nil {
		return nil, apiErr
	}

	if b.From == "" {
		if s.defaultOriginator == "" {
			return nil, violation("from is required: no default originator is configured")
		}
		b.From = s.defaultOriginator
	}

	if apiErr := checkBody(body); apiErr != nil {
		return nil, apiErr
	}

	if req.DeliveryReport != nil {
		if !deliveryReports[*req.DeliveryReport] {
			return nil, violation("delivery_report %q is not one of "+
				"none, summary, full, per_recipient, per_recipient_final", *req.DeliveryReport)
		}
		b.DeliveryReport = *req.DeliveryReport
	}

	if b.CallbackURL != "" {
		if len(b.CallbackURL) > maxCallbackLen {
			return nil, violation("callback_url is longer than %d characters", maxCallbackLen)
		}
		if !isWebURL(b.CallbackURL) {
			return nil, violation("callback_url must be an absolute http or https URL")
		}
	}

	if n := utf8.RuneCountInString(b.ClientReference); n > s.maxClientRef {
		return nil, violation("client_reference is %d characters long, the maximum is %d", n, s.maxClientRef)
	}

	if apiErr := checkSchedule(b, req.SendAt, req.ExpireAt, now); apiErr != nil {
		return nil, apiErr
	}
	return b, nil
}

// checkType accepts only MMS batches and returns their decoded body.
//
// Without a type Sinch reads the request as a text SMS, whose body is a
// string: an object body then does not match the schema at all.
func checkType(typ string, rawBody json.RawMessage) (MediaBody, *apiError) {
	isObject := bytes.HasPrefix(bytes.TrimSpace(rawBody), []byte("{"))

	switch typ {
	case TypeMedia:
	case "", "mt_text":
		if isObject {
			return MediaBody{}, badRequest(codeInvalidJSON,
				`body is an object but the batch type is text (missing "type": "mt_media"?)`)
		}
		return MediaBody{}, violation("the simulator only sends batches of type mt_media")
	default:
		return MediaBody{}, violation("type %q is not supported: the simulator only sends mt_media", typ)
	}

	var body MediaBody
	if len(rawBody) == 0 || bytes.Equal(rawBody, []byte("null")) {
		return body, violation("body is required")
	}
	if !isObject {
		return body, badRequest(codeInvalidJSON, "body of an mt_media batch must be an object {url, message, subject}")
	}
	if err := json.Unmarshal(rawBody, &body); err != nil {
		return body, badRequest(codeInvalidJSON, "body: "+describeJSONError(err))
	}
	return body, nil
}

// checkRecipients checks the count and the format of "to". The error text
// names the index of a bad entry, never the number itself.
func checkRecipients(to []string) *apiError {
	if len(to) == 0 || len(to) > maxRecipients {
		return violation("to must have 1 to %d entries, got %d", maxRecipients, len(to))
	}

	for i, msisdn := range to {
		if !validMSISDN(msisdn) {
			return badRequest(codeInvalidFormat,
				fmt.Sprintf("to[%d] is not a valid phone number (7 to 15 digits, optional + or 00 prefix)", i))
		}
	}
	return nil
}

// validMSISDN reports whether s is a phone number in international format:
// an optional leading "+" or "00", then 7 to 15 digits. Spaces, dashes and
// brackets anywhere are ignored, as Sinch ignores them.
func validMSISDN(s string) bool {
	_, ok := normalizeMSISDN(s)
	return ok
}

// normalizeMSISDN returns the digits of the phone number s, without the
// "+" or "00" prefix and the spaces, dashes and brackets, which is how
// Sinch writes recipients in delivery reports. ok is false unless s passes
// validMSISDN.
func normalizeMSISDN(s string) (digits string, ok bool) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')':
			return -1
		}
		return r
	}, s)

	if rest, ok := strings.CutPrefix(s, "+"); ok {
		s = rest
	} else if rest, ok := strings.CutPrefix(s, "00"); ok {
		s = rest
	}

	if len(s) < 7 || len(s) > 15 || !allDigits(s) {
		return "", false
	}
	return s, true
}

// allDigits reports whether s is made of ASCII digits only.
func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkBody checks the media body's URL and text lengths.
func checkBody(body MediaBody) *apiError {
	switch {
	case body.URL == "":
		return violation("body.url is required: an MMS needs media")
	case len(body.URL) > maxURLLen:
		return violation("body.url is longer than %d characters", maxURLLen)
	case !isWebURL(body.URL):
		return violation("body.url must be an absolute http or https URL")
	case utf8.RuneCountInString(body.Message) > maxMessageLen:
		return violation("body.message is longer than %d characters", maxMessageLen)
	case utf8.RuneCountInString(body.Subject) > maxSubjectLen:
		return violation("body.subject is longer than %d characters", maxSubjectLen)
	}
	return nil
}

// isWebURL reports whether s is an absolute http or https URL with a host.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}

// checkSchedule parses send_at and expire_at into b, applying Sinch's
// defaults (now, and send_at + 3 days) and rules: expire_at after send_at
// and at most 3 days later.
func checkSchedule(b *Batch, sendAt, expireAt *string, now time.Time) *apiError {
	b.SendAt = now
	if sendAt != nil {
		t, err := parseTime(*sendAt)
		if err != nil {
			return badRequest(codeInvalidFormat, "send_at is not an ISO-8601 timestamp")
		}
		b.SendAt = t
	}

	b.ExpireAt = b.SendAt.Add(maxExpiry)
	if expireAt != nil {
		t, err := parseTime(*expireAt)
		if err != nil {
			return badRequest(codeInvalidFormat, "expire_at is not an ISO-8601 timestamp")
		}
		b.ExpireAt = t
	}

	switch {
	case !b.SendAt.Before(b.ExpireAt):
		return violation("send_at must be before expire_at")
	case b.ExpireAt.Sub(b.SendAt) > maxExpiry:
		return violation("expire_at must be at most 3 days after send_at")
	}
	return nil
}

// timeLayouts are the ISO-8601 forms accepted in requests. A time without
// an offset is taken as UTC, as Sinch does.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02",
}

// parseTime parses an ISO-8601 timestamp and returns it in UTC, cut to the
// millisecond precision that Sinch keeps.
func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Millisecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: not ISO-8601", s)
}

// violation is a 400 syntax_constraint_violation with a formatted text.
func violation(format string, args ...any) *apiError {
	return badRequest(codeConstraintViolation, fmt.Sprintf(format, args...))
}

// describeJSONError turns a decoding error into a short text for the
// client, without Go type names where a plainer word exists.
func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("field %s has the wrong JSON type (%s)", typeErr.Field, typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("request body must be a JSON object, not %s", typeErr.Value)
	}
	return "invalid JSON: " + err.Error()
}
