package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/task"
)

// accepted is the body of a 202 answer.
type accepted struct {
	JobID     string     `json:"job_id"`
	Status    mms.Status `json:"status"`
	StatusURL string     `json:"status_url"`
	Reference string     `json:"reference,omitempty"`
	// Suppressed lists recipients left out: they are on the suppression
	// list.
	Suppressed []string `json:"suppressed,omitempty"`
}

// delivery is one recipient's latest delivery report.
type delivery struct {
	Recipient string    `json:"recipient"`
	Status    string    `json:"status"`
	Code      int       `json:"code"`
	At        time.Time `json:"at"`
}

// jobView is a job as clients see it.
type jobView struct {
	JobID         string        `json:"job_id"`
	Status        mms.Status    `json:"status"`
	Priority      mms.Priority  `json:"priority"`
	Recipients    []string      `json:"recipients"`
	Reference     string        `json:"reference,omitempty"`
	Attempts      int           `json:"attempts"`
	MaxAttempts   int           `json:"max_attempts"`
	NextAttemptAt *time.Time    `json:"next_attempt_at"`
	LastError     *mms.JobError `json:"last_error"`
	SinchBatchID  *string       `json:"sinch_batch_id"`
	SentAt        *time.Time    `json:"sent_at"`
	ExpireAt      time.Time     `json:"expire_at"`
	SendAt        *time.Time    `json:"send_at,omitempty"`
	Suppressed    []string      `json:"suppressed,omitempty"`
	Delivery      []delivery    `json:"delivery,omitempty"`
	CampaignID    string        `json:"campaign_id,omitempty"`
	History       []mms.Event   `json:"history"`
	// CallbackURL and Callbacks are there only for a job with callbacks.
	CallbackURL string              `json:"callback_url,omitempty"`
	Callbacks   *mms.CallbackCounts `json:"callbacks,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
}

func viewOf(j *mms.Job) jobView {
	v := jobView{
		JobID:       j.ID,
		Status:      j.Status,
		Priority:    j.Priority,
		Recipients:  j.Message.To,
		Reference:   j.Reference,
		Attempts:    j.Attempts,
		MaxAttempts: j.MaxAttempts,
		LastError:   j.LastError,
		ExpireAt:    j.Message.ExpireAt,
		History:     j.History,
		Suppressed:  j.Suppressed,
		CampaignID:  j.CampaignID,
		CreatedAt:   j.CreatedAt,
		UpdatedAt:   j.UpdatedAt,
	}
	if !j.Message.SendAt.IsZero() {
		v.SendAt = &j.Message.SendAt
	}
	if j.CallbackURL != "" {
		v.CallbackURL, v.Callbacks = j.CallbackURL, &j.Callbacks
	}
	if j.SinchBatchID != "" {
		v.SinchBatchID = &j.SinchBatchID
	}
	if !j.SentAt.IsZero() {
		v.SentAt = &j.SentAt
	}
	if !j.NextAttemptAt.IsZero() && j.Status == mms.StatusRetrying {
		t := j.NextAttemptAt
		v.NextAttemptAt = &t
	}
	return v
}

func statusURL(id string) string { return "/api/mms/jobs/" + id }

// send accepts one MMS: it validates, records the job, enqueues its task and
// answers 202. If the task cannot be enqueued the record is removed again,
// so a 503 leaves nothing behind.
func (s *server) send(c echo.Context) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	var req mms.SendRequest
	body := http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes)
	if err := mms.DecodeStrict(body, &req); err != nil {
		return badJSON(err)
	}
	idemKey, err := idempotencyKey(c.Request())
	if err != nil {
		return err
	}
	msg, prio, err := req.Validate(s.cfg.Rules)
	if err != nil {
		return err
	}

	now := time.Now().UTC()
	job := &mms.Job{
		ID:          mms.NewJobID(),
		Status:      mms.StatusQueued,
		Priority:    prio,
		Reference:   req.Reference,
		Message:     msg,
		MaxAttempts: s.cfg.MaxAttempts,
		CreatedAt:   now,
		UpdatedAt:   now,
		CallbackURL: req.CallbackURL,
	}
	c.Set(ctxJobID, job.ID)
	var later []asynq.Option
	if !msg.SendAt.IsZero() {
		job.Status = mms.StatusScheduled
		later = append(later, asynq.ProcessAt(msg.SendAt))
	}
	t, err := task.NewSend(job, later...)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()

	var held *jobstore.Reservation
	if idemKey != "" {
		earlier, r, err := s.reserve(ctx, c, idemKey, job, req.ExpireAt != "")
		if err != nil {
			return err
		}
		if earlier != nil {
			c.Response().Header().Set("Idempotent-Replayed", "true")
			return acceptedAnswer(c, earlier, firstStatus(earlier))
		}
		held = r
	}
	if err := s.leaveOutSuppressedNumbers(ctx, job); err != nil {
		if held != nil {
			s.releaseKey(c, keyScope(c), idemKey, *held)
		}
		return err
	}

	if err := s.deps.Store.Create(ctx, job); err != nil {
		// The write may still be applied by a Redis that was only slow:
		// remove it again so that a 503 leaves nothing behind.
		s.undo(c, job.ID, idemKey, held, err)
		return errUnavailable()
	}
	if _, err := s.deps.Queue.EnqueueContext(ctx, t); err != nil {
		s.undo(c, job.ID, idemKey, held, err)
		return errUnavailable()
	}
	s.deps.Metrics.Jobs().JobAccepted(job.Priority.Queue())
	return acceptedAnswer(c, job, job.Status)
}

// leaveOutSuppressedNumbers takes the job's recipients that are on the
// suppression list out of its message and notes them on the job. A job
// left with no recipient is refused.
func (s *server) leaveOutSuppressedNumbers(ctx context.Context, job *mms.Job) error {
	if s.deps.Suppress == nil {
		return nil
	}
	hit, err := s.deps.Suppress.Filter(ctx, job.Message.To)
	if err != nil {
		return errUnavailable()
	}
	keep, out := mms.Without(job.Message.To, hit)
	if len(out) == 0 {
		return nil
	}
	if len(keep) == 0 {
		field := "to"
		if len(job.Message.To) > 1 {
			field = "to[*]"
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: "suppressed",
			Message: "every recipient is on the suppression list (opted out); nothing to send",
			Fields:  []mms.FieldError{{Field: field, Message: "is on the suppression list"}}}
	}
	job.Message = job.Message.Only(keep)
	job.Suppressed = out
	return nil
}

// firstStatus is the status a job had when it was accepted.
func firstStatus(j *mms.Job) mms.Status {
	if !j.Message.SendAt.IsZero() {
		return mms.StatusScheduled
	}
	return mms.StatusQueued
}

// acceptedAnswer is the 202 for job. A replay gives the same body as the
// first answer did, status included, so it says "queued" as that one did.
func acceptedAnswer(c echo.Context, job *mms.Job, status mms.Status) error {
	loc := statusURL(job.ID)
	c.Response().Header().Set(echo.HeaderLocation, loc)
	return c.JSON(http.StatusAccepted, accepted{
		JobID:      job.ID,
		Status:     status,
		StatusURL:  loc,
		Reference:  job.Reference,
		Suppressed: job.Suppressed,
	})
}

// undo removes the record of a job that could not be accepted. If the
// enqueue did reach Redis after all, the worker finds no record and drops
// the task, so the client's 503 stays true.
func (s *server) undo(c echo.Context, id, idemKey string, held *jobstore.Reservation, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), s.cfg.RedisTimeout)
	defer cancel()
	log := reqLog(c, s.deps.Log)
	if held != nil {
		s.releaseKey(c, keyScope(c), idemKey, *held)
	}
	if err := s.deps.Store.Delete(ctx, id); err != nil {
		log.Error().Err(err).AnErr("cause", cause).
			Msg("job not accepted and its record maybe not removed; it has no task and will not be sent")
		return
	}
	log.Warn().Err(cause).Msg("job not accepted; record removed")
}

func (s *server) getJob(c echo.Context) error {
	id, err := jobParam(c)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	j, reps, err := s.deps.Store.GetWithReports(ctx, id)
	switch {
	case errors.Is(err, mms.ErrNotFound):
		return newError(http.StatusNotFound, "not_found",
			"no job with that ID (jobs are kept for the retention period)")
	case err != nil:
		reqLog(c, s.deps.Log).Warn().Err(err).Msg("job not read")
		return errUnavailable()
	}
	v := viewOf(j)
	slices.SortFunc(reps, func(a, b jobstore.Report) int { return strings.Compare(a.Recipient, b.Recipient) })
	for _, r := range reps {
		v.Delivery = append(v.Delivery, delivery{Recipient: r.Recipient, Status: r.Status, Code: r.Code, At: r.At})
	}
	return c.JSON(http.StatusOK, v)
}

func requireJSON(r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be UTF-8; charset "+cs+" is not supported")
	}
	return nil
}

// badJSON maps a decoding error: a body that is not the JSON we expect is a
// 400; an oversized one a 413.
func badJSON(err error) error {
	return asInvalid(err, "invalid_json", "the body is not a valid request")
}

// readBody reads a request body whole; see unreadable for its errors.
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, unreadable(err)
	}
	return b, nil
}

// unreadable maps an error reading a request body: one over the size limit
// stays what it is (413); any other (a body cut short, broken chunking) is
// the client's: 400.
func unreadable(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return &Error{Status: http.StatusBadRequest, Code: "unreadable_body",
		Message: "the body could not be read in full: " + err.Error()}
}
