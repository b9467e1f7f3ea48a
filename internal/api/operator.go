package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/callback"
	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/task"
)

// jobParam reads the job ID from the path; a malformed one is simply not
// found.
func jobParam(c echo.Context) (string, error) {
	id := strings.ToLower(c.Param("id"))
	if !mms.ValidJobID(id) {
		return "", newError(http.StatusNotFound, "not_found", "no job with that ID")
	}
	c.Set(ctxJobID, id)
	return id, nil
}

// cancelJob cancels a job that has not reached Sinch: DELETE
// /api/mms/jobs/{id}. A job being sent, or one that may have reached Sinch,
// cannot be canceled here.
func (s *server) cancelJob(c echo.Context) error {
	id, err := jobParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()

	s.flushLater(c, id, "")
	if err := s.deps.Store.Cancel(ctx, id); err != nil {
		return s.operatorError(c, err, "not_cancelable", "the job cannot be canceled: ")
	}
	j, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return s.operatorError(c, err, "", "")
	}
	s.deps.Metrics.Jobs().JobChanged(j.Priority.Queue(), string(mms.StatusCanceled), "operator")
	// The worker skips a canceled job anyway; removing its task keeps the
	// queues honest. A task under way cannot be removed, and need not be.
	if err := s.deps.Tasks.DeleteTask(j.Priority.Queue(), id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) &&
		!errors.Is(err, asynq.ErrQueueNotFound) {
		reqLog(c, s.deps.Log).Debug().Err(err).Msg("task of canceled job not removed")
	}
	return c.JSON(http.StatusOK, viewOf(j))
}

// flushLater queues, before a cancel, the task that a while later queues
// any client callback the cancel leaves unqueued, should this process die
// between the two (see internal/callback). Without callbacks there is
// nothing to do; a failure here only loses that safety net, so it is
// logged, not returned.
func (s *server) flushLater(c echo.Context, jobID, campaignID string) {
	if !s.cfg.Rules.Callbacks {
		return
	}
	t, err := callback.NewFlushTask(jobID, campaignID)
	if err == nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
		_, err = s.deps.Queue.EnqueueContext(ctx, t)
		cancel()
	}
	if err != nil {
		reqLog(c, s.deps.Log).Warn().Err(err).Msg("callback flush not queued; a crash now could strand a callback")
	}
}

// retryJob re-drives a failed job with a fresh attempt budget: POST
// /api/mms/jobs/{id}/retry. The job keeps its ID. A job Sinch holds a batch
// of is never sent again.
func (s *server) retryJob(c echo.Context) error {
	id, err := jobParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()

	before, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return s.operatorError(c, err, "", "")
	}
	// A job can be failed while its task still runs (reports came before
	// the worker's record of the batch): that task must end first.
	if s.taskRunning(before.Priority.Queue(), id) {
		return errTaskRunning()
	}
	if err := s.deps.Store.Redrive(ctx, id); err != nil {
		return s.operatorError(c, err, "not_retryable",
			"only a failed job that Sinch holds no batch of can be retried: ")
	}
	j, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return s.operatorError(c, err, "", "")
	}

	// The archived task, if asynq still keeps it, runs again; otherwise a
	// new one is enqueued under the same ID.
	err = s.deps.Tasks.RunTask(j.Priority.Queue(), id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		var t *asynq.Task
		if t, err = task.NewSend(j); err == nil {
			_, err = s.deps.Queue.EnqueueContext(ctx, t)
		}
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			err = nil // a task exists: nothing to add
		}
	}
	if err != nil {
		// Put the job back as it was, so that the call can simply be repeated.
		reqLog(c, s.deps.Log).Warn().Err(err).Msg("retried job not enqueued")
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RedisTimeout)
		defer cancel()
		back := jobstore.Outcome{Status: mms.StatusFailed, Err: j.LastError}
		if _, uerr := s.deps.Store.Finish(ctx, id, back); uerr != nil {
			reqLog(c, s.deps.Log).Error().Err(uerr).Msg("retried job left queued without a task")
		}
		if s.taskRunning(j.Priority.Queue(), id) {
			return errTaskRunning()
		}
		return errUnavailable()
	}
	return c.JSON(http.StatusAccepted, viewOf(j))
}

// taskRunning reports whether a worker holds job id's task right now.
func (s *server) taskRunning(queue, id string) bool {
	info, err := s.deps.Tasks.GetTaskInfo(queue, id)
	return err == nil && info.State == asynq.TaskStateActive
}

func errTaskRunning() error {
	return newError(http.StatusConflict, "not_retryable",
		"the job's task is still running at a worker: retry once it has ended")
}

func (s *server) operatorError(c echo.Context, err error, code, prefix string) error {
	switch {
	case errors.Is(err, mms.ErrNotFound):
		return newError(http.StatusNotFound, "not_found", "no job with that ID")
	case errors.Is(err, jobstore.ErrConflict) && code != "":
		detail := strings.TrimPrefix(err.Error(), jobstore.ErrConflict.Error()+": ")
		return newError(http.StatusConflict, code, prefix+detail)
	}
	reqLog(c, s.deps.Log).Warn().Err(err).Msg("job store unavailable")
	return errUnavailable()
}
