// Package task defines the asynq tasks mmsgate enqueues and how they are
// encoded. The payload carries only the job ID: the message itself lives in
// the job record, so the queue holds no phone numbers or message text and a
// job can be re-driven after asynq has forgotten its task.
package task

import (
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
}

// NewSend returns the task for job id. The task ID is the job ID, so asynq
// itself refuses a second task for the same job.
func NewSend(id string, p mms.Priority, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(SendPayload{JobID: id})
	if err != nil {
		return nil, fmt.Errorf("encode send payload: %w", err)
	}
	opts = append([]asynq.Option{asynq.TaskID(id), asynq.Queue(p.Queue()), asynq.MaxRetry(SafetyMaxRetry)}, opts...)
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
