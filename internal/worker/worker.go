// Package worker holds the asynq handler that sends a job's batch to Sinch,
// and the asynq server that runs it.
package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/metrics"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/reports"
	"github.com/mmsgate/mmsgate/internal/sinch"
	"github.com/mmsgate/mmsgate/internal/task"
)

// Sender is the part of the Sinch client the handler uses.
type Sender interface {
	SendMedia(ctx context.Context, b sinch.MediaBatch) (*sinch.Batch, error)
	FindByClientReference(ctx context.Context, ref string, since time.Time) (*sinch.Batch, error)
}

var _ Sender = (*sinch.Client)(nil)

// Config tunes the handler.
type Config struct {
	Backoff Backoff
	// AuthRetryDelay is the wait after Sinch refused our credentials.
	AuthRetryDelay time.Duration
	// WriteTimeout bounds the store write that records an outcome. It runs
	// on a context of its own so that an outcome is recorded even when the
	// task's context ended (shutdown, timeout) during the Sinch call.
	WriteTimeout time.Duration
	// Circuit, if set, holds sending during a provider outage.
	Circuit *Circuit
	// Metrics, if set, counts Sinch calls and job outcomes.
	Metrics *metrics.Worker
	// Limits, if set, holds sends to the shared rate limits.
	Limits *Limits
	// Campaigns, if set, tells whether a job's campaign was canceled.
	Campaigns CampaignChecker
	// Suppressions, if set, is the suppression list, checked just before
	// each send.
	Suppressions Suppressions
	// CallbackURL, if set, is where Sinch sends the delivery reports each
	// batch asks for, of the kind DeliveryReport.
	CallbackURL    string
	DeliveryReport string
	// ReportFetchAfter, with CallbackURL, is how long after a send the
	// worker asks Sinch for the reports that have not all come; 0 never.
	ReportFetchAfter time.Duration
	// Queue enqueues follow-up tasks: the fetches of reports.
	Queue Enqueuer
	// Media, if set, checks a job's media the way Sinch will fetch it,
	// before Sinch is paid.
	Media MediaChecker
}

// MediaChecker checks a media URL; *media.Checker is one.
type MediaChecker interface {
	Check(ctx context.Context, rawURL string) media.Result
}

// Suppressions tells which numbers are on the suppression list;
// *suppress.Store is one.
type Suppressions interface {
	Filter(ctx context.Context, numbers []string) ([]bool, error)
}

// CampaignChecker tells whether a campaign was canceled;
// *campaign.Store is one.
type CampaignChecker interface {
	Canceled(ctx context.Context, id string) (bool, error)
}

// errPaused is the reason a task waits while the circuit is open.
var errPaused = errors.New("sending paused: sinch is failing")

// Handler sends TypeSend tasks.
type Handler struct {
	store  *jobstore.Store
	sinch  Sender
	cfg    Config
	log    zerolog.Logger
	now    func() time.Time
	orphan func(id string) // test hook: called when a job record is missing
}

// NewHandler returns a handler.
func NewHandler(store *jobstore.Store, s Sender, cfg Config, log zerolog.Logger) *Handler {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	return &Handler{store: store, sinch: s, cfg: cfg, log: log, now: time.Now, orphan: func(string) {}}
}

// ProcessTask sends one job's batch, records the outcome in the job store,
// and tells asynq whether and when to run the task again.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := task.DecodeSend(t.Payload())
	if err != nil {
		h.log.Error().Err(err).Msg("undecodable send task dropped")
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if h.cfg.Circuit.Open() {
		// The job keeps its status and its attempts, unless its time is up.
		if expired, err := h.store.ExpireIfDue(ctx, p.JobID); err == nil && expired {
			h.countExpired(ctx)
			return h.logExpired(h.log.With().Str("job_id", p.JobID).Logger())
		}
		return &retryError{delay: h.cfg.Circuit.Wait(), counted: false, err: errPaused}
	}
	if p.Campaign != "" && h.cfg.Campaigns != nil {
		if done, err := h.campaignCanceled(ctx, p); done || err != nil {
			return err
		}
	}
	// Room in the rate limits is taken before the job is claimed, so that
	// a send waiting for room keeps its status and its attempts.
	if err := h.admit(ctx, p); err != nil {
		return err
	}

	a, err := h.store.Begin(ctx, p.JobID)
	var early *jobstore.EarlyError
	switch {
	case errors.As(err, &early):
		return &retryError{delay: max(time.Until(early.SendAt), time.Millisecond), counted: false, err: err}
	case errors.Is(err, mms.ErrNotFound):
		// The API removes a job it could not enqueue; if the enqueue had in
		// fact gone through, this is that task. The client was told 503.
		h.log.Warn().Str("job_id", p.JobID).Msg("send task has no job record; dropped")
		h.orphan(p.JobID)
		return nil
	case errors.Is(err, jobstore.ErrDone):
		h.log.Info().Str("job_id", p.JobID).Err(err).Msg("send task skipped")
		if errors.Is(err, jobstore.ErrBatchUnrecorded) {
			return h.adoptReported(ctx, p.JobID)
		}
		return nil
	case errors.Is(err, jobstore.ErrExpired):
		h.countExpired(ctx)
		return h.logExpired(h.log.With().Str("job_id", p.JobID).Logger())
	case err != nil:
		return fmt.Errorf("job %s: %w", p.JobID, err)
	}

	job := a.Job
	log := h.log.With().Str("job_id", job.ID).Int("attempt", job.Attempts).
		Str("queue", job.Priority.Queue()).Int("recipients", len(job.Message.To)).Logger()

	// An earlier attempt may have reached Sinch without our learning of it.
	// Sinch has no idempotency key, so look for the batch by the job ID we
	// sent as client_reference before sending anything again.
	if a.Previous == mms.StatusSending || a.Ambiguous {
		batch, err := h.lookup(ctx, log, job)
		if err != nil {
			// The doubt stays on record: the next attempt must look again
			// rather than send.
			return h.failed(log, job, err, true)
		}
		if batch != nil {
			return h.sent(log, job, batch.ID, "adopted", batch.CreatedAt)
		}
		if exp := job.Message.ExpireAt; !exp.IsZero() && !h.now().Before(exp) {
			return h.expired(log, job)
		}
		if job.Attempts > job.MaxAttempts {
			return h.exhausted(log, job, &mms.JobError{Code: "retries_exhausted",
				Message: "no attempt left after an attempt with an unknown outcome; Sinch holds no batch for this job",
				At:      h.now().UTC()})
		}
	}

	if done, err := h.beforeSend(ctx, log, job); done {
		return err
	}

	start := time.Now()
	mb := batchFor(job)
	if h.cfg.CallbackURL != "" {
		mb.DeliveryReport, mb.CallbackURL = h.cfg.DeliveryReport, h.cfg.CallbackURL
	}
	batch, err := h.sinch.SendMedia(ctx, mb)
	took := time.Since(start)
	log = log.With().Dur("duration_ms", took).Logger()
	outcome := "ok"
	if err != nil {
		outcome = sinch.Classify(err).String()
	}
	h.cfg.Metrics.SinchCall(outcome, took)
	if err != nil {
		return h.failed(log, job, err, false)
	}
	return h.sent(log.With().Int("sinch_status", batch.HTTPStatus).Logger(), job, batch.ID, "sent", time.Time{})
}

// suppressed splits the job's recipients into those to send to and those
// on the suppression list. An error reading the list is an error of the
// attempt: a message must not go out to numbers we could not check.
func (h *Handler) suppressed(ctx context.Context, job *mms.Job) (keep, out []string, err error) {
	if h.cfg.Suppressions == nil {
		return job.Message.To, nil, nil
	}
	hit, err := h.cfg.Suppressions.Filter(ctx, job.Message.To)
	if err != nil {
		return nil, nil, fmt.Errorf("read the suppression list: %w", err)
	}
	keep, out = mms.Without(job.Message.To, hit)
	return keep, out, nil
}

// checkMedia checks the job's media before Sinch is paid for a message it
// cannot deliver. It reports whether the attempt ends here: a media server
// that is merely down holds the job (at no cost to its attempts, until its
// expiry); any other failure fails it, with the check's reason.
func (h *Handler) checkMedia(ctx context.Context, log zerolog.Logger, job *mms.Job) (bool, error) {
	r := h.cfg.Media.Check(ctx, job.Message.MediaURL)
	if r.OK {
		if len(r.Warnings) > 0 {
			log.Warn().Strs("warnings", r.Warnings).Int64("content_length", r.ContentLength).
				Msg("media passed its check with warnings")
		}
		return false, nil
	}
	jerr := &mms.JobError{Code: r.Reason, Message: r.Message, At: h.now().UTC()}
	log = log.With().Str("reason", r.Reason).Int("media_status", r.Status).Logger()
	if r.Transient {
		// The job's attempts stay as they were, so the wait grows with the
		// job's age instead: a quarter of it, within the backoff's bounds.
		wait := min(max(h.now().Sub(job.CreatedAt)/4, h.cfg.Backoff.Base), h.cfg.Backoff.Max)
		return true, h.wait(log, job, errors.New(r.Message), jerr, wait, false,
			"media server not answering as it should; job waits")
	}
	if _, err := h.record(job, jobstore.Outcome{Status: mms.StatusFailed, Err: jerr}); err != nil {
		log.Error().Err(err).Msg("could not store a media failure")
		return true, err
	}
	log.Warn().Msg("media check failed; job failed without a Sinch call")
	return true, fmt.Errorf("job %s: %s: %w", job.ID, r.Reason, asynq.SkipRetry)
}

// checkFailed holds a job whose check before sending could not be made:
// our Redis failed, not Sinch, so the job waits at no cost to the message.
func (h *Handler) checkFailed(log zerolog.Logger, job *mms.Job, err error, code, what string) error {
	jerr := &mms.JobError{Code: code, Message: err.Error(), At: h.now().UTC()}
	return h.wait(log, job, err, jerr, h.cfg.Backoff.Delay(1), false, what+"; job waits")
}

// campaignGone ends a job of a canceled campaign that Sinch holds no batch
// of: nothing is sent.
func (h *Handler) campaignGone(log zerolog.Logger, job *mms.Job) error {
	jerr := campaign.CanceledError(h.now())
	if _, err := h.record(job, jobstore.Outcome{Status: mms.StatusCanceled, Err: &jerr}); err != nil {
		log.Error().Err(err).Msg("could not store a canceled job")
		return err
	}
	log.Info().Str("campaign_id", job.CampaignID).Msg("campaign canceled; job not sent")
	return nil
}

// allSuppressed ends a job whose every recipient opted out after it was
// accepted: nothing is sent.
func (h *Handler) allSuppressed(log zerolog.Logger, job *mms.Job) error {
	jerr := &mms.JobError{Code: "suppressed", At: h.now().UTC(),
		Message: "every recipient is on the suppression list; nothing was sent"}
	if _, err := h.record(job, jobstore.Outcome{Status: mms.StatusCanceled, Err: jerr,
		Suppressed: job.Message.To}); err != nil {
		log.Error().Err(err).Msg("could not store a suppressed job")
		return err
	}
	log.Info().Msg("every recipient on the suppression list; job canceled unsent")
	return nil
}

// campaignCanceled cancels the job of a canceled campaign, which the
// campaign's cancel may have missed (the job was being created), before it
// takes room in the rate limits. It reports whether the task is done.
func (h *Handler) campaignCanceled(ctx context.Context, p task.SendPayload) (bool, error) {
	canceled, err := h.cfg.Campaigns.Canceled(ctx, p.Campaign)
	if err != nil {
		return false, fmt.Errorf("job %s: %w", p.JobID, err)
	}
	if !canceled {
		return false, nil
	}
	res, err := h.store.CancelMany(ctx, []string{p.JobID}, campaign.CanceledError(h.now()))
	if err != nil {
		return false, fmt.Errorf("job %s: %w", p.JobID, err)
	}
	if !res[0].Canceled && res[0].Status != "" && res[0].Status != mms.StatusCanceled {
		// Sinch may hold it already (an attempt of unknown outcome): the
		// usual path settles that; a job that was sent stays sent.
		return false, nil
	}
	if res[0].Canceled {
		q, _ := asynq.GetQueueName(ctx)
		h.cfg.Metrics.Jobs().JobChanged(q, string(mms.StatusCanceled), "campaign_canceled")
	}
	h.log.Info().Str("job_id", p.JobID).Str("campaign_id", p.Campaign).Msg("campaign canceled; job not sent")
	return true, nil
}

// beforeSend makes the last checks before a job's batch goes to Sinch: its
// recipients against the suppression list, its campaign, its media. It
// reports whether the attempt ends here, and with what.
func (h *Handler) beforeSend(ctx context.Context, log zerolog.Logger, job *mms.Job) (bool, error) {
	// A recipient may have opted out since the job was accepted.
	keep, suppressed, err := h.suppressed(ctx, job)
	if err != nil {
		return true, h.checkFailed(log, job, err, "suppression_check_failed", "could not read the suppression list")
	}
	if len(keep) == 0 {
		return true, h.allSuppressed(log, job)
	}
	if len(suppressed) > 0 {
		job.Message = job.Message.Only(keep)
		job.Suppressed = append(job.Suppressed, suppressed...)
		log.Info().Int("suppressed", len(suppressed)).Msg("recipients on the suppression list left out")
	}

	// The campaign may have been canceled since the first look: while this
	// task waited for room, or while an earlier attempt of unknown outcome
	// was settled (Sinch holds no batch, so the job may still end).
	if job.CampaignID != "" && h.cfg.Campaigns != nil {
		canceled, err := h.cfg.Campaigns.Canceled(ctx, job.CampaignID)
		if err != nil {
			return true, h.checkFailed(log, job, err, "campaign_check_failed", "could not read the job's campaign")
		}
		if canceled {
			return true, h.campaignGone(log, job)
		}
	}

	if h.cfg.Media != nil {
		return h.checkMedia(ctx, log, job)
	}
	return false, nil
}

func (h *Handler) lookup(ctx context.Context, log zerolog.Logger, job *mms.Job) (*sinch.Batch, error) {
	start := time.Now()
	batch, err := h.sinch.FindByClientReference(ctx, job.ID, job.CreatedAt.Add(-time.Hour))
	ev := log.Info().Dur("duration_ms", time.Since(start))
	if err != nil {
		ev = log.Warn().Dur("duration_ms", time.Since(start)).Str("error", err.Error())
	}
	ev.Bool("found", batch != nil).Msg("sinch batch lookup after an unclear attempt")
	return batch, err
}

// adoptReported records the batch of a job that delivery reports settled
// while its attempt's outcome was still open to us (a timeout, a crash):
// the reports prove the batch exists, and the job should name it. A failed
// lookup is retried with the task.
func (h *Handler) adoptReported(ctx context.Context, id string) error {
	job, err := h.store.Get(ctx, id)
	if err != nil || job.SinchBatchID != "" {
		return nil // gone, or recorded meanwhile
	}
	log := h.log.With().Str("job_id", id).Str("status", string(job.Status)).Logger()
	batch, err := h.lookup(ctx, log, job)
	if err != nil {
		return err
	}
	if batch == nil {
		log.Warn().Msg("delivery reports came for this job, but Sinch lists no batch for it")
		return nil
	}
	return h.sent(log, job, batch.ID, "adopted", batch.CreatedAt)
}

func batchFor(j *mms.Job) sinch.MediaBatch {
	return sinch.MediaBatch{
		To:   j.Message.To,
		From: j.Message.From,
		Body: sinch.MediaBody{
			URL:     j.Message.MediaURL,
			Message: j.Message.Text,
			Subject: j.Message.Subject,
		},
		Parameters:      j.Message.Parameters,
		ClientReference: j.ID,
		ExpireAt:        expireAt(j.Message.ExpireAt),
	}
}

func expireAt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// record writes an outcome on a context of its own; see Config.WriteTimeout.
// An ErrEventNotQueued means the outcome is stored but its client callback
// is not queued yet: the task must run again, which queues it.
func (h *Handler) record(job *mms.Job, o jobstore.Outcome) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	applied, err := h.store.Finish(ctx, job.ID, o)
	if errors.Is(err, jobstore.ErrEventNotQueued) {
		h.log.Warn().Str("job_id", job.ID).Str("status", string(o.Status)).Err(err).
			Msg("outcome stored; its client callback is queued when the task runs again")
	}
	if applied {
		code := ""
		if o.Err != nil {
			code = o.Err.Code
		}
		h.cfg.Metrics.Jobs().JobChanged(job.Priority.Queue(), string(o.Status), code)
	}
	return applied, err
}

// sent records the job sent in batchID. at is when Sinch created a batch
// found by a lookup (its created_at); zero means now.
func (h *Handler) sent(log zerolog.Logger, job *mms.Job, batchID, how string, at time.Time) error {
	applied, err := h.record(job, jobstore.Outcome{Status: mms.StatusSent, BatchID: batchID,
		Suppressed: job.Suppressed, Recipients: len(job.Message.To), SentAt: at})
	notQueued := errors.Is(err, jobstore.ErrEventNotQueued)
	if err != nil && !notQueued {
		// Sinch holds the batch but we could not say so. Returning the error
		// makes asynq run the task again; that attempt finds the job still
		// "sending", looks the batch up and adopts it instead of resending.
		log.Error().Err(err).Str("batch_id", batchID).Msg("mms sent but its status could not be stored")
		return err
	}
	h.cfg.Circuit.Success()
	log.Info().Str("batch_id", batchID).Bool("applied", applied).Str("outcome", how).
		Msg("mms sent")
	h.indexBatch(log, job.ID, batchID)
	h.scheduleFetch(log, job.ID)
	// The status is stored; returning the error runs the task again, which
	// finds the job sent and queues its client callback then.
	return err
}

// indexBatch records which job the batch belongs to, for delivery reports
// that name only the batch, and stores those that came before it. It is
// best effort: a report still waiting is matched by the next one, or by
// the fetch of reports. Without reports asked for there is nothing to do.
func (h *Handler) indexBatch(log zerolog.Logger, jobID, batchID string) {
	if h.cfg.CallbackURL == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	takeWaiting(ctx, h.store, h.cfg.Metrics, log, jobID, batchID, h.now())
}

// takeWaiting indexes batchID as job jobID's and stores the reports that
// waited for it. They are forgotten only once each is stored, so a report
// that a Redis error or a crash cut short waits for the next call: the
// report fetch makes one.
func takeWaiting(ctx context.Context, store *jobstore.Store, m *metrics.Worker, log zerolog.Logger,
	jobID, batchID string, now time.Time) {
	pending, err := store.IndexBatch(ctx, batchID, jobID)
	if err != nil {
		log.Warn().Err(err).Msg("batch not indexed for its delivery reports")
		return
	}
	if len(pending) == 0 {
		return
	}
	for _, raw := range pending {
		out, err := reports.Take(ctx, store, []byte(raw), now)
		switch {
		case errors.Is(err, reports.ErrMalformed):
			log.Warn().Err(err).Msg("a delivery report that came before its batch is not a report; dropped")
		case err != nil:
			log.Warn().Err(err).Msg("a delivery report that came before its batch was not stored; " +
				"it waits for the report fetch")
			return
		}
		m.Jobs().DeliveryReports(out.ByStatus)
	}
	if err := store.DropPending(ctx, batchID); err != nil {
		log.Warn().Err(err).Msg("delivery reports stored, but still kept as waiting for their batch")
	}
	log.Info().Int("reports", len(pending)).Msg("delivery reports that came before the batch stored")
}

// maxExtraChecks is how many attempts beyond its budget a job may spend on
// finding out whether an attempt with an unknown outcome reached Sinch.
const maxExtraChecks = 3

// failed handles an error from Sinch or on the way to it. doubt says that an
// earlier attempt may have created the batch and no lookup has settled it.
func (h *Handler) failed(log zerolog.Logger, job *mms.Job, err error, doubt bool) error {
	now := h.now().UTC()
	jerr := &mms.JobError{Code: sinch.ReasonCode(err), Message: describe(err), At: now}
	class := sinch.Classify(err)
	log = log.With().Str("class", class.String()).Str("sinch_code", jerr.Code).
		Int("sinch_status", statusOf(err)).Logger()

	switch class {
	case sinch.Permanent, sinch.Throttled:
		h.cfg.Circuit.Success() // Sinch answered: it is up
	case sinch.Transient, sinch.Unauthorized:
		if h.cfg.Circuit.Failure() && class == sinch.Transient {
			// Sinch is down for everyone: not this message's fault.
			return h.wait(log, job, err, jerr, h.cfg.Circuit.Wait(), doubt || sinch.Ambiguous(err),
				"sinch failing; sending paused, attempt not counted")
		}
	}

	switch class {
	case sinch.Permanent:
		if _, werr := h.record(job, jobstore.Outcome{Status: mms.StatusFailed, Err: jerr}); werr != nil {
			log.Error().Err(werr).Msg("could not store a permanent failure")
			return werr
		}
		if doubt {
			jerr.Message = "could not check whether an earlier attempt reached Sinch: " + jerr.Message
		}
		// Sinch's text may quote the message, so it goes on the job record
		// for the client, not into the log.
		log.Warn().Bool("after_doubt", doubt).Msg("sinch rejected mms")
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)

	case sinch.Throttled:
		delay := h.cfg.Backoff.Delay(1)
		return h.wait(log, job, err, jerr, max(delay, retryAfter(err)), doubt, "sinch throttled us")

	case sinch.Unauthorized:
		log.Error().Msg("sinch refused our credentials: check SINCH_API_TOKEN and SINCH_SERVICE_PLAN_ID; jobs wait")
		return h.wait(log, job, err, jerr, h.cfg.AuthRetryDelay, doubt, "")
	}

	// An attempt with an unknown outcome earns the job one more attempt, to
	// look the batch up, but only a few times over its budget.
	ambiguous := doubt || sinch.Ambiguous(err)
	switch {
	case job.Attempts >= job.MaxAttempts && !ambiguous:
		jerr.Message = fmt.Sprintf("gave up after %d attempts; last: %s", job.Attempts, jerr.Message)
		return h.exhausted(log, job, jerr)
	case job.Attempts >= job.MaxAttempts+maxExtraChecks:
		jerr.Message = fmt.Sprintf("gave up after %d attempts; Sinch may or may not hold the batch; last: %s",
			job.Attempts, jerr.Message)
		jerr.Code = "outcome_unknown"
		return h.exhausted(log, job, jerr)
	}
	delay := max(h.cfg.Backoff.Delay(job.Attempts), retryAfter(err))
	next := now.Add(delay)
	if _, werr := h.record(job, jobstore.Outcome{
		Status: mms.StatusRetrying, Err: jerr, NextAttemptAt: next, Ambiguous: ambiguous,
	}); werr != nil {
		log.Error().Err(werr).Msg("could not store a retry")
		return werr
	}
	log.Warn().Str("error", logging.MaskNumbers(err.Error())).Bool("ambiguous", ambiguous).
		Time("next_attempt_at", next).Msg("sinch attempt failed; will retry")
	return &retryError{delay: delay, counted: true, err: err}
}

// wait schedules the job again without spending an attempt.
func (h *Handler) wait(log zerolog.Logger, job *mms.Job, err error, jerr *mms.JobError, delay time.Duration,
	doubt bool, msg string) error {
	next := h.now().UTC().Add(delay)
	if _, werr := h.record(job, jobstore.Outcome{
		Status: mms.StatusRetrying, Err: jerr, NextAttemptAt: next, Uncount: true, Ambiguous: doubt,
	}); werr != nil {
		log.Error().Err(werr).Msg("could not store a wait")
		return werr
	}
	if msg != "" {
		log.Warn().Time("next_attempt_at", next).Msg(msg)
	}
	return &retryError{delay: delay, counted: false, err: err}
}

// expired ends a job that Sinch holds no batch of and whose time is up.
func (h *Handler) expired(log zerolog.Logger, job *mms.Job) error {
	if _, err := h.record(job, jobstore.Outcome{Status: mms.StatusExpired}); err != nil {
		log.Error().Err(err).Msg("could not store an expiry")
		return err
	}
	return h.logExpired(log)
}

// countExpired counts a job the store expired as it was claimed, in the
// task's queue.
func (h *Handler) countExpired(ctx context.Context) {
	q, _ := asynq.GetQueueName(ctx)
	h.cfg.Metrics.Jobs().JobChanged(q, string(mms.StatusExpired), "")
}

// logExpired notes a job that ended expired, unsent; there is nothing more
// for asynq to do.
func (h *Handler) logExpired(log zerolog.Logger) error {
	log.Warn().Msg("mms expired before it could be sent")
	return nil
}

func (h *Handler) exhausted(log zerolog.Logger, job *mms.Job, jerr *mms.JobError) error {
	if _, werr := h.record(job, jobstore.Outcome{Status: mms.StatusFailed, Err: jerr}); werr != nil {
		log.Error().Err(werr).Msg("could not store a final failure")
		return werr
	}
	log.Error().Str("reason", jerr.Code).Msg("mms failed: no attempts left")
	return fmt.Errorf("job %s: %s: %w", job.ID, jerr.Code, asynq.SkipRetry)
}

// describe is the message stored with a job: Sinch's own text where there is
// one. The client sent the request, so the text may be shown to it in full.
func describe(err error) string {
	var se *sinch.Error
	if errors.As(err, &se) && se.Text != "" {
		return se.Text
	}
	return err.Error()
}

func statusOf(err error) int {
	var se *sinch.Error
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// maxRetryAfter caps the wait Sinch may ask for, so that a wild header
// cannot park a job for days.
const maxRetryAfter = time.Hour

// retryAfter is the wait Sinch asked for, if any.
func retryAfter(err error) time.Duration {
	var se *sinch.Error
	if errors.As(err, &se) {
		return min(se.RetryAfter, maxRetryAfter)
	}
	return 0
}
