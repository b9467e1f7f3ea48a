package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/metrics"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/reports"
	"github.com/mmsgate/mmsgate/internal/sinch"
)

// TypeFetchReports is the task that fetches a sent job's delivery reports
// from Sinch when its callbacks have not settled it in time.
const TypeFetchReports = "mms:reports"

// ReportsQueue is where fetch tasks wait.
const ReportsQueue = "mms:reports"

type fetchPayload struct {
	JobID string `json:"job_id"`
}

// ReportSource is the part of the Sinch client the fetch uses.
type ReportSource interface {
	DeliveryReport(ctx context.Context, batchID string) ([]byte, error)
}

var _ ReportSource = (*sinch.Client)(nil)

// Enqueuer puts tasks on the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Fetcher runs fetch tasks: if a sent job has no final delivery report for
// every recipient after the window, it asks Sinch for the batch's report,
// and again each window after, until the job is settled or its expiry is a
// window behind.
type Fetcher struct {
	// Metrics, if set, counts the reports fetched.
	Metrics *metrics.Worker

	store  *jobstore.Store
	sinch  ReportSource
	window time.Duration
	log    zerolog.Logger
	now    func() time.Time
}

// NewFetcher returns a fetcher that waits window between looks.
func NewFetcher(store *jobstore.Store, s ReportSource, window time.Duration, log zerolog.Logger) *Fetcher {
	return &Fetcher{store: store, sinch: s, window: window, log: log, now: time.Now}
}

// scheduleFetch enqueues the first look for a job just sent. Best effort:
// the callbacks remain the main way reports come in.
func (h *Handler) scheduleFetch(log zerolog.Logger, jobID string) {
	if h.cfg.CallbackURL == "" || h.cfg.ReportFetchAfter <= 0 || h.cfg.Queue == nil {
		return
	}
	b, _ := json.Marshal(fetchPayload{JobID: jobID})
	t := asynq.NewTask(TypeFetchReports, b, asynq.TaskID("reports:"+jobID), asynq.Queue(ReportsQueue),
		asynq.ProcessIn(h.cfg.ReportFetchAfter), asynq.MaxRetry(1000))
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	if _, err := h.cfg.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		log.Warn().Err(err).Msg("delivery-report fetch not scheduled")
	}
}

// ProcessTask looks at one job's reports.
func (f *Fetcher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p fetchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !mms.ValidJobID(p.JobID) {
		return fmt.Errorf("bad report fetch payload: %w", asynq.SkipRetry)
	}
	log := f.log.With().Str("job_id", p.JobID).Logger()
	job, err := f.store.Get(ctx, p.JobID)
	switch {
	case errors.Is(err, mms.ErrNotFound):
		return nil
	case err != nil:
		return &retryError{delay: f.window / 10, counted: false, err: err}
	case job.Status.Final() || job.SinchBatchID == "":
		return nil // settled by its callbacks, or never sent
	}

	// Reports that came before the batch and were not all stored then.
	takeWaiting(ctx, f.store, f.Metrics, log, job.ID, job.SinchBatchID, f.now())
	raw, err := f.sinch.DeliveryReport(ctx, job.SinchBatchID)
	var se *sinch.Error
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		log.Warn().Str("batch_id", job.SinchBatchID).Msg("Sinch has no delivery report for the batch")
		return nil
	case err != nil:
		log.Warn().Err(err).Msg("delivery report not fetched; will look again")
		return f.again(log, job)
	}
	out, err := reports.Take(ctx, f.store, raw, f.now())
	if err != nil {
		log.Warn().Err(err).Msg("fetched delivery report not stored; will look again")
		return f.again(log, job)
	}
	f.Metrics.Jobs().DeliveryReports(out.ByStatus)
	log.Info().Int("stored", out.Stored).Msg("delivery report fetched from Sinch")
	if job, err = f.store.Get(ctx, p.JobID); err == nil && job.Status.Final() {
		return nil
	}
	return f.again(log, job)
}

// again looks once more a window later, unless the job's expiry is a
// window behind: Sinch will not report on it any more.
func (f *Fetcher) again(log zerolog.Logger, job *mms.Job) error {
	if job != nil && !job.Message.ExpireAt.IsZero() && f.now().After(job.Message.ExpireAt.Add(f.window)) {
		log.Warn().Msg("no final delivery report for every recipient by the job's expiry; giving up")
		return nil
	}
	return &retryError{delay: f.window, counted: false, err: errors.New("delivery reports not final yet")}
}
