package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/ratelimit"
	"github.com/mmsgate/mmsgate/internal/task"
)

// Limits are the send rate limits, shared by every worker process through
// Redis and counted in recipients.
type Limits struct {
	Limiter *ratelimit.Limiter
	// Plan is Sinch's limit for the service plan, all queues together.
	Plan ratelimit.Limit
	// Queues holds a limit per asynq queue name, where one is set.
	Queues map[string]ratelimit.Limit
	// SenderRate and SenderBurst limit each sender number; 0 is no limit.
	SenderRate, SenderBurst float64
	// MaxWait is the longest a send waits for room in place; a longer wait
	// puts its task back in the queue for later, without spending an
	// attempt. High-priority sends may also queue up to MaxWait ahead of
	// room, so that they take the next room before any other send.
	MaxWait time.Duration
}

// errRateLimited is the reason a task was put back for later.
var errRateLimited = errors.New("waiting for room in the send rate limit")

func (l *Limits) forTask(p task.SendPayload, queue string) []ratelimit.Limit {
	out := []ratelimit.Limit{l.Plan}
	if q, ok := l.Queues[queue]; ok {
		out = append(out, q)
	}
	if p.Sender != "" && l.SenderRate > 0 {
		out = append(out, ratelimit.Sender(p.Sender, l.SenderRate, l.SenderBurst))
	}
	if p.Campaign != "" && p.CampaignRate > 0 {
		out = append(out, ratelimit.Campaign(p.Campaign, p.CampaignRate))
	}
	return out
}

// maxRateWait caps the wait a limit may ask for: a task comes back at
// least this often to look again.
const maxRateWait = time.Hour

// admit waits until the rate limits have room for the task's recipients and
// takes it. It returns nil when the send may go, or an error that puts the
// task back for when there will be room.
//
// A task waits in place only for the plan's limit, which holds every send
// alike, and for at most MaxWait in all. When a narrower limit is full (its
// queue's, its sender's, its campaign's), the task goes back to the queue at
// once: a worker slot asleep on it would be one less for the sends that
// could go.
func (h *Handler) admit(ctx context.Context, p task.SendPayload) error {
	l := h.cfg.Limits
	if l == nil {
		return nil
	}
	queue, _ := asynq.GetQueueName(ctx)
	limits := l.forTask(p, queue)
	var ahead time.Duration
	if queue == mms.PriorityHigh.Queue() {
		ahead = l.MaxWait
	}
	n := max(p.Recipients, 1)
	var waited time.Duration
	for {
		res, err := l.Limiter.Take(ctx, n, ahead, limits...)
		if err != nil {
			// Redis trouble: try again soon, at no cost to the message.
			return &retryError{delay: time.Second, counted: false, err: err}
		}
		wait := min(max(res.Wait, 0), maxRateWait)
		if res.OK {
			if wait > 0 {
				h.cfg.Metrics.RateLimitWait(queue, "in_place", wait)
			}
			return sleep(ctx, wait)
		}
		// Sends refused together are spread over a tenth of their wait, so
		// they do not all come back at once.
		wait += rand.N(wait/10 + time.Millisecond)
		if res.Blocker != l.Plan.Key || waited+wait > l.MaxWait {
			h.cfg.Metrics.RateLimitWait(queue, "requeued", 0)
			h.log.Debug().Str("job_id", p.JobID).Str("queue", queue).Str("limit", res.Blocker).
				Dur("delay_ms", wait).Msg("rate limit full; task put back")
			return &retryError{delay: wait, counted: false, err: errRateLimited}
		}
		h.cfg.Metrics.RateLimitWait(queue, "in_place", wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &retryError{delay: time.Second, counted: false, err: ctx.Err()}
	}
}
