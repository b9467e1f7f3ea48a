// Package task defines the asynq tasks mmsgate enqueues and how they are
// encoded. The payload carries the job ID and what the rate limits need
// before the job is read: the message itself lives in the job record, so the
// queue holds no phone numbers or message text and a job can be re-driven
// after asynq has forgotten its task.
package task

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// TypeSend is the task that sends one job's batch to Sinch.
const TypeSend = "mms:send"

// SafetyMaxRetry is asynq's own retry cap for a send task. The real budget
// is the job's MaxAttempts, enforced by the worker, which also keeps waits
// for rate limits from spending it; asynq's cap only stops a task that
// keeps crashing the handler before the worker can count it.
const SafetyMaxRetry = 1000

// SendPayload is the payload of TypeSend.
type SendPayload struct {
	JobID string `json:"job_id"`
	// Recipients is the size of the job's batch: rate limits count
	// recipients.
	Recipients int `json:"n,omitempty"`
	// Sender names the sender number's rate limit: a hash, not the number.
	Sender string `json:"snd,omitempty"`
	// Campaign and CampaignRate name the campaign the job belongs to and
	// its rate cap in recipients per second, if it has one.
	Campaign     string  `json:"cid,omitempty"`
	CampaignRate float64 `json:"crate,omitempty"`
}

// SendFor returns the payload for job j.
func SendFor(j *mms.Job) SendPayload {
	p := SendPayload{JobID: j.ID, Recipients: len(j.Message.To), Campaign: j.CampaignID, CampaignRate: j.RateCap}
	if j.Message.From != "" {
		sum := sha256.Sum256([]byte(j.Message.From))
		p.Sender = hex.EncodeToString(sum[:8])
	}
	return p
}

// NewSend returns the task for job j. The task ID is the job ID, so asynq
// itself refuses a second task for the same job.
func NewSend(j *mms.Job, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(SendFor(j))
	if err != nil {
		return nil, fmt.Errorf("encode send payload: %w", err)
	}
	opts = append([]asynq.Option{asynq.TaskID(j.ID), asynq.Queue(j.Priority.Queue()),
		asynq.MaxRetry(SafetyMaxRetry)}, opts...)
	return asynq.NewTask(TypeSend, b, opts...), nil
}

// DecodeSend reads a TypeSend payload.
func DecodeSend(b []byte) (SendPayload, error) {
	var p SendPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode send payload: %w", err)
	}
	if !mms.ValidJobID(p.JobID) {
		return p, fmt.Errorf("decode send payload: bad job id %q", p.JobID)
	}
	return p, nil
}
