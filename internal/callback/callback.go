// Package callback posts a job's status changes to the callback_url its
// client gave. The job store keeps each change as an event in the job's
// outbox (see jobstore); this package queues an asynq task for each event,
// and delivers it: a JSON POST signed with HMAC-SHA256, retried with
// backoff until the client answers 2xx or the attempts run out.
//
// Callbacks run on an asynq server of their own, with its own concurrency,
// so a slow or failing client endpoint never holds a worker slot that a
// send needs.
package callback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// TypeDeliver is the task that posts one event to its client.
const TypeDeliver = "callback:deliver"

// Queue is where callback tasks wait; only the callback server serves it.
const Queue = "mms:callbacks"

// The headers of a callback request.
const (
	HeaderEventID   = "Mmsgate-Event-Id"
	HeaderTimestamp = "Mmsgate-Timestamp"
	HeaderSignature = "Mmsgate-Signature"
)

// Sign returns the Mmsgate-Signature value for body sent at timestamp ts
// (Unix seconds): "v1=" and the hex HMAC-SHA256, keyed with the secret, of
// the timestamp, a full stop and the body.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a callback as a client should: the signature matches the
// body and the timestamp header, and the timestamp is within tolerance of
// now, so that a recorded request cannot be played again later.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("timestamp is not a number of seconds")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp is %s away from now", d.Round(time.Second))
	}
	want := Sign(secret, ts, body)
	for _, s := range strings.Split(signature, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}

// Body is what a callback posts.
type Body struct {
	// EventID is the same on every delivery of the event; Sequence counts
	// the job's events from 1, in the order of its changes.
	EventID  string    `json:"event_id"`
	Type     string    `json:"type"` // always "job.status_changed"
	Sequence int64     `json:"sequence"`
	At       time.Time `json:"occurred_at"`
	Job      JobBrief  `json:"job"`
}

// JobBrief is the job as a callback shows it.
type JobBrief struct {
	ID             string     `json:"job_id"`
	Status         mms.Status `json:"status"`
	PreviousStatus mms.Status `json:"previous_status,omitempty"`
	// Reason is the code of a failure, cancelation or retry, as in the
	// job's last_error.
	Reason       string `json:"reason,omitempty"`
	Reference    string `json:"reference,omitempty"`
	CampaignID   string `json:"campaign_id,omitempty"`
	SinchBatchID string `json:"sinch_batch_id,omitempty"`
	StatusURL    string `json:"status_url"`
}

// EventType is the type of every callback so far.
const EventType = "job.status_changed"

func bodyOf(box jobstore.OutboxState, e jobstore.CallbackEvent) ([]byte, error) {
	return json.Marshal(Body{
		EventID:  e.ID(),
		Type:     EventType,
		Sequence: e.Seq,
		At:       e.At,
		Job: JobBrief{
			ID: e.JobID, Status: e.Status, PreviousStatus: e.Previous, Reason: e.Code,
			Reference: box.Reference, CampaignID: box.CampaignID, SinchBatchID: box.BatchID,
			StatusURL: "/api/mms/jobs/" + e.JobID,
		},
	})
}

type payload struct {
	JobID string `json:"job_id"`
	Seq   int64  `json:"seq"`
	// Attempts is the delivery's budget, CLIENT_CALLBACK_MAX_ATTEMPTS when
	// it was queued. The handler keeps to it; asynq's own cap is a few
	// retries above, so that an attempt cut short by a crash is made again
	// and, if it was the last, the event is given up on by the handler,
	// which counts it, rather than archived by asynq unseen.
	Attempts int `json:"max"`
}

// safetyRetries is how many retries asynq allows beyond the budget.
const safetyRetries = 3

// Enqueuer puts tasks on the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Outbox queues the events waiting in jobs' outboxes. Its Notify is the
// job store's Notifier.
type Outbox struct {
	store    *jobstore.Store
	queue    Enqueuer
	attempts int // per event
	log      zerolog.Logger
}

// NewOutbox returns an outbox that queues deliveries of at most attempts
// tries each.
func NewOutbox(store *jobstore.Store, q Enqueuer, attempts int, log zerolog.Logger) *Outbox {
	return &Outbox{store: store, queue: q, attempts: max(attempts, 1), log: log}
}

// TaskID is the asynq task ID of event seq of job id: one task an event,
// however often it is queued.
func TaskID(id string, seq int64) string { return "cb:" + id + ":" + strconv.FormatInt(seq, 10) }

// Notify queues a task for every event waiting in job id's outbox. An
// event whose task exists already is left as it is.
func (o *Outbox) Notify(ctx context.Context, id string) error {
	box, err := o.store.Outbox(ctx, id)
	if errors.Is(err, mms.ErrNotFound) {
		return nil
	}
	if err != nil {
		o.log.Warn().Err(err).Str("job_id", id).Msg("client callback not queued; it waits in the job's outbox")
		return err
	}
	for _, e := range box.Events {
		b, err := json.Marshal(payload{JobID: id, Seq: e.Seq, Attempts: o.attempts})
		if err != nil {
			return err
		}
		t := asynq.NewTask(TypeDeliver, b, asynq.TaskID(TaskID(id, e.Seq)), asynq.Queue(Queue),
			asynq.MaxRetry(o.attempts-1+safetyRetries))
		if _, err := o.queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			o.log.Warn().Err(err).Str("job_id", id).Int64("seq", e.Seq).
				Msg("client callback not queued; it waits in the job's outbox")
			return err
		}
	}
	return nil
}

// TypeFlush is the task that queues, a while after an operator's cancel,
// whatever events the cancel left in the jobs' outboxes: the API that made
// the change may have died before it queued them, and nothing else would.
const TypeFlush = "callback:flush"

// flushDelay is how long after the cancel the flush runs.
const flushDelay = 30 * time.Second

type flushPayload struct {
	JobID    string `json:"job_id,omitempty"`
	Campaign string `json:"campaign_id,omitempty"`
}

// NewFlushTask returns the flush of one job's outbox, or of every job of a
// campaign.
func NewFlushTask(jobID, campaignID string) (*asynq.Task, error) {
	b, err := json.Marshal(flushPayload{JobID: jobID, Campaign: campaignID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeFlush, b, asynq.Queue(Queue), asynq.ProcessIn(flushDelay), asynq.MaxRetry(5)), nil
}

// Flusher runs flush tasks.
type Flusher struct {
	outbox *Outbox
	// jobsOf lists a campaign's jobs.
	jobsOf func(ctx context.Context, campaignID string) ([]string, error)
}

// NewFlusher returns a flusher that queues through o and lists campaigns'
// jobs with jobsOf.
func NewFlusher(o *Outbox, jobsOf func(ctx context.Context, campaignID string) ([]string, error)) *Flusher {
	return &Flusher{outbox: o, jobsOf: jobsOf}
}

// ProcessTask queues the events waiting in the named outboxes.
func (f *Flusher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p flushPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad flush task payload: %w", asynq.SkipRetry)
	}
	var ids []string
	switch {
	case mms.ValidJobID(p.JobID):
		ids = []string{p.JobID}
	case mms.ValidJobID(p.Campaign):
		var err error
		if ids, err = f.jobsOf(ctx, p.Campaign); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bad flush task payload: %w", asynq.SkipRetry)
	}
	for _, id := range ids {
		if err := f.outbox.Notify(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
