package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/task"
)

// TypeExpand is the task that turns a stored campaign into jobs.
const TypeExpand = "campaign:expand"

// Queue is where expand tasks wait. It is served between high and normal:
// creating jobs is quick, and the sends it enqueues keep their priority.
const Queue = "mms:campaigns"

type expandPayload struct {
	CampaignID string `json:"campaign_id"`
}

// NewExpandTask returns the expand task of campaign id; its task ID is
// derived from the campaign's, so it is enqueued once.
func NewExpandTask(id string) (*asynq.Task, error) {
	b, err := json.Marshal(expandPayload{CampaignID: id})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeExpand, b, asynq.TaskID(ExpandTaskID(id)), asynq.Queue(Queue),
		asynq.MaxRetry(task.SafetyMaxRetry)), nil
}

// ExpandTaskID is the asynq task ID of campaign id's expand task.
func ExpandTaskID(id string) string { return "expand:" + id }

// Enqueuer puts tasks on the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Expander runs expand tasks.
type Expander struct {
	// Accepted, if set, is told the queue of each job it creates.
	Accepted func(queue string)

	store *Store
	queue Enqueuer
	log   zerolog.Logger
}

// NewExpander returns an expander that enqueues send tasks on q.
func NewExpander(s *Store, q Enqueuer, log zerolog.Logger) *Expander {
	return &Expander{store: s, queue: q, log: log}
}

// ProcessTask creates the jobs of a campaign that do not exist yet, and
// enqueues their send tasks. It starts where a run cut short stopped, and
// stops early when the campaign is canceled.
func (x *Expander) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p expandPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !mms.ValidJobID(p.CampaignID) {
		x.log.Error().Msg("undecodable campaign task dropped")
		return fmt.Errorf("bad campaign task payload: %w", asynq.SkipRetry)
	}
	log := x.log.With().Str("campaign_id", p.CampaignID).Logger()
	r, st, err := x.store.Get(ctx, p.CampaignID)
	switch {
	case errors.Is(err, ErrNotFound):
		log.Warn().Msg("campaign task has no campaign; dropped")
		return nil
	case err != nil:
		return err
	case st.State == StateCanceled:
		return x.dropBatches(ctx, r.ID)
	case st.State != StatePreparing:
		return nil
	}

	s := x.store
	for i := st.Made; i < r.Jobs; i++ {
		if i%20 == 0 && i > st.Made {
			if canceled, err := s.Canceled(ctx, r.ID); err != nil || canceled {
				if err != nil {
					return err
				}
				log.Info().Int("jobs_created", i).Msg("campaign canceled while its jobs were created")
				return x.dropBatches(ctx, r.ID)
			}
		}
		err := x.makeJob(ctx, r, i)
		if errors.Is(err, errBatchGone) {
			// Another run of this task finished meanwhile, or the
			// campaign was canceled or removed: nothing is left to do,
			// unless the campaign is still being prepared.
			_, cur, gerr := s.Get(ctx, r.ID)
			switch {
			case errors.Is(gerr, ErrNotFound):
				return nil
			case gerr == nil && cur.State != StatePreparing:
				return x.dropBatches(ctx, r.ID)
			}
		}
		if err != nil {
			return fmt.Errorf("campaign %s batch %d: %w", r.ID, i, err)
		}
		ok, err := madeScript.Run(ctx, s.rdb, []string{key(r.ID)}, i+1).Bool()
		if err != nil {
			return fmt.Errorf("campaign %s: %w", r.ID, err)
		}
		if !ok {
			log.Warn().Int("jobs_created", i+1).Msg("campaign removed while its jobs were created")
			return x.dropBatches(ctx, r.ID)
		}
	}
	// Ready, unless it was canceled meanwhile; the batches are done with.
	if err := readyScript.Run(ctx, s.rdb, []string{key(r.ID), batchesKey(r.ID)}).Err(); err != nil {
		return fmt.Errorf("campaign %s: %w", r.ID, err)
	}
	log.Info().Int("jobs", r.Jobs).Int("recipients", r.Accepted).Msg("campaign jobs created")
	return nil
}

// dropBatches deletes a campaign's batches once no job will be made of
// them any more (it was canceled or removed, or another run finished):
// otherwise a canceled campaign's would stay as long as the campaign does.
func (x *Expander) dropBatches(ctx context.Context, id string) error {
	if err := x.store.rdb.Del(ctx, batchesKey(id)).Err(); err != nil {
		return fmt.Errorf("campaign %s: %w", id, err)
	}
	return nil
}

// madeScript records that the jobs before ARGV[1] exist. It never lowers
// the count, which a run of the task overlapping another would otherwise
// do, and never brings back a campaign that was removed (its key would
// have no time to live). KEYS[1] campaign key. Returns 0 if it is gone.
var madeScript = redis.NewScript(`
local made = redis.call('HGET', KEYS[1], 'made')
if not made then return 0 end
if tonumber(ARGV[1]) > tonumber(made) then
  redis.call('HSET', KEYS[1], 'made', ARGV[1])
end
return 1
`)

// errBatchGone is makeJob's error when the campaign's batches are deleted.
var errBatchGone = errors.New("the campaign's batches are gone")

var readyScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'st') == 'preparing' then
  redis.call('HSET', KEYS[1], 'st', 'ready')
end
redis.call('DEL', KEYS[2])
return 1
`)

// makeJob creates batch i's job, unless it exists, and enqueues its task
// unless the job has moved on already.
func (x *Expander) makeJob(ctx context.Context, r *Record, i int) error {
	raw, err := x.store.rdb.LIndex(ctx, batchesKey(r.ID), int64(i)).Result()
	if errors.Is(err, redis.Nil) {
		return errBatchGone
	}
	if err != nil {
		return fmt.Errorf("read batch: %w", err)
	}
	var b batch
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		return fmt.Errorf("decode batch: %w", err)
	}
	msg := r.Content
	msg.To, msg.Parameters = b.To, b.Params
	now := x.store.now().UTC()
	job := &mms.Job{
		ID:          JobID(r.ID, i),
		Status:      mms.StatusQueued,
		Priority:    r.Priority,
		Reference:   r.Reference,
		Message:     msg,
		MaxAttempts: r.MaxAttempts,
		CreatedAt:   now,
		UpdatedAt:   now,
		CampaignID:  r.ID,
		RateCap:     r.RateLimit,
		CallbackURL: r.CallbackURL,
	}
	var opts []asynq.Option
	if msg.SendAt.After(now) {
		job.Status = mms.StatusScheduled
		opts = append(opts, asynq.ProcessAt(msg.SendAt))
	}
	err = x.store.jobs.Create(ctx, job)
	if err == nil && x.Accepted != nil {
		x.Accepted(job.Priority.Queue())
	}
	if errors.Is(err, jobstore.ErrExists) {
		// An earlier run created it; its task may be missing if that run
		// ended in between. A job that has moved on needs no task.
		j, gerr := x.store.jobs.Get(ctx, job.ID)
		if gerr != nil {
			return gerr
		}
		if j.Status != mms.StatusQueued && j.Status != mms.StatusScheduled {
			return nil
		}
	} else if err != nil {
		return err
	}
	t, err := task.NewSend(job, opts...)
	if err != nil {
		return err
	}
	if _, err := x.queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}
