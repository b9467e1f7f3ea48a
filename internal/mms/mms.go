// Package mms holds mmsgate's domain: the message a client asks us to send,
// the job that tracks it, the statuses a job moves through, and the rules a
// request must meet before anything is stored or sent.
//
// It imports nothing else of ours, so every other package can depend on it.
package mms

import (
	"crypto/rand"
	"errors"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// ErrInvalid marks an error caused by the caller's input.
var ErrInvalid = errors.New("invalid input")

// ErrNotFound is returned when a job does not exist or has expired.
var ErrNotFound = errors.New("not found")

// Priority selects the queue a job waits in.
type Priority string

// The priorities, one asynq queue each, served in this order of weight.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityBulk   Priority = "bulk"
)

// Priorities lists every priority, highest first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityBulk}

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool {
	return p == PriorityHigh || p == PriorityNormal || p == PriorityBulk
}

// Queue is the name of the asynq queue for p.
func (p Priority) Queue() string { return "mms:" + string(p) }

// Message is what goes to Sinch as one mt_media batch.
type Message struct {
	To         []string                     `json:"to"` // E.164
	From       string                       `json:"from,omitempty"`
	MediaURL   string                       `json:"media_url"`
	Text       string                       `json:"message,omitempty"`
	Subject    string                       `json:"subject,omitempty"`
	Parameters map[string]map[string]string `json:"parameters,omitempty"`
	// ExpireAt is when Sinch, and we, stop trying: a job still unsent then
	// ends expired.
	ExpireAt time.Time `json:"expire_at"`
	// SendAt is when the job may be sent; zero means at once. mmsgate holds
	// a scheduled job itself, so Sinch never sees this field.
	SendAt time.Time `json:"send_at,omitzero"`
}

// Without splits numbers by the mask out: those not marked, and those
// marked.
func Without(numbers []string, out []bool) (keep, dropped []string) {
	for i, n := range numbers {
		if out[i] {
			dropped = append(dropped, n)
		} else {
			keep = append(keep, n)
		}
	}
	return keep, dropped
}

// Only returns m for the given recipients only, a subset of its own, with
// the per-recipient values of the others left out.
func (m Message) Only(to []string) Message {
	m.To = to
	if m.Parameters == nil {
		return m
	}
	in := make(map[string]bool, len(to))
	for _, n := range to {
		in[n] = true
	}
	params := make(map[string]map[string]string, len(m.Parameters))
	for name, vals := range m.Parameters {
		kept := make(map[string]string, len(vals))
		for who, v := range vals {
			if who == "default" || in[who] {
				kept[who] = v
			}
		}
		params[name] = kept
	}
	m.Parameters = params
	return m
}

// Job is our record of one message: what was asked and where it stands.
type Job struct {
	ID            string
	Status        Status
	Priority      Priority
	Reference     string
	Message       Message
	Attempts      int // Sinch calls that counted against the budget
	MaxAttempts   int
	NextAttemptAt time.Time // zero when no retry is planned
	LastError     *JobError
	SinchBatchID  string
	SentAt        time.Time // when Sinch accepted the batch; zero before
	Reported      int       // recipients with a delivery report
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// History lists the job's status changes, oldest first, the most
	// recent ones only.
	History []Event
	// CampaignID is the campaign the job belongs to, if any, and RateCap
	// that campaign's rate cap in recipients per second (0: none).
	CampaignID string
	RateCap    float64
	// Suppressed lists recipients left out because they are on the
	// suppression list: when the job was accepted, or just before sending.
	Suppressed []string
	// CallbackURL, if set, is where the job's status changes are posted;
	// Callbacks says how that stands.
	CallbackURL string
	Callbacks   CallbackCounts
}

// CallbackCounts are a job's client callbacks: events waiting to be
// delivered (or being retried), and events given up on after every retry.
type CallbackCounts struct {
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
}

// Event is one status change of a job, with the reason code of a failure.
type Event struct {
	At     time.Time `json:"at"`
	Status Status    `json:"status"`
	Code   string    `json:"code,omitempty"`
}

// JobError is the last thing that went wrong with a job.
type JobError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// NewJobID returns a new, time-ordered job ID.
func NewJobID() string {
	return strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
}

// ValidJobID reports whether s has the shape of a job ID, so malformed IDs
// are refused before they reach Redis.
func ValidJobID(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(strings.ToUpper(s))
	return err == nil
}
