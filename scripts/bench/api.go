package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/task"
)

// apiTarget: the API must accept at least this share of what asynq's
// Enqueue alone manages on the same Redis with the same concurrency.
const apiTarget = 0.6

// benchAPI compares accepted sends per second through the real API with
// bare asynq Client.Enqueue calls of the same task, on the same Redis, with
// the same number of concurrent callers, emptying Redis between the runs.
func benchAPI(ctx context.Context, e *env) (result, error) {
	o := e.opt

	// Bare: the task the API enqueues for a job, on a client made as the
	// API makes its own.
	_, rdb, err := redisconn.Open(ctx, e.redisURL, e.common.RedisTimeout)
	if err != nil {
		return result{}, err
	}
	client := asynq.NewClientFromRedisClient(rdb)
	progress("bare asynq Enqueue, %d goroutines, %s warmup + %s", o.clients, o.warmup, o.measure)
	var enqueued atomic.Int64
	u0, t0 := e.usage(ctx), time.Now()
	bare := closedLoop(ctx, o.clients, o.warmup, o.measure, func(ctx context.Context) error {
		t, err := sendTask()
		if err != nil {
			return err
		}
		if _, err = client.EnqueueContext(ctx, t); err == nil {
			enqueued.Add(1)
		}
		return err
	})
	bareCost := costPer(u0, e.usage(ctx), int(enqueued.Load()), time.Since(t0))
	_ = rdb.Close()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if bare.ok == 0 {
		return result{}, fmt.Errorf("no Enqueue succeeded: %v", bare.firstErr)
	}
	if err := e.checkQueued(int(enqueued.Load())); err != nil {
		return result{}, fmt.Errorf("bare Enqueue: %w", err)
	}
	if err := e.reset(ctx); err != nil {
		return result{}, err
	}

	api, err := e.startAPI(ctx, nil)
	if err != nil {
		return result{}, err
	}
	progress("API POST /api/mms/send, %d clients, %s warmup + %s", o.clients, o.warmup, o.measure)
	var accepted atomic.Int64
	u0, t0 = e.usage(ctx), time.Now()
	sends := closedLoop(ctx, o.clients, o.warmup, o.measure, func(ctx context.Context) error {
		_, err := e.postSend(ctx, api.base, false)
		if err == nil {
			accepted.Add(1)
		}
		return err
	})
	sendCost := costPer(u0, e.usage(ctx), int(accepted.Load()), time.Since(t0))

	// The ceiling any HTTP endpoint has here: the same clients calling
	// GET /healthz, which touches nothing but HTTP and the middleware.
	progress("API GET /healthz, %d clients, %s warmup + %s", o.clients, o.warmup, o.measure)
	floor := closedLoop(ctx, o.clients, o.warmup, o.measure, func(ctx context.Context) error {
		return e.get(ctx, api.base+"/healthz")
	})
	if err := api.stop(); err != nil && !errors.Is(err, context.Canceled) {
		return result{}, fmt.Errorf("api: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if sends.ok == 0 {
		return result{}, fmt.Errorf("the API accepted no send: %v", sends.firstErr)
	}
	if err := e.checkQueued(int(accepted.Load())); err != nil {
		return result{}, fmt.Errorf("API: %w", err)
	}

	ratio := sends.rate() / bare.rate()
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("bare asynq `Client.Enqueue`, %d goroutines", o.clients),
				measured: e.mark(bare.summary())},
			{figure: fmt.Sprintf("API `POST /api/mms/send` → 202, %d clients, rate limit off", o.clients),
				measured: e.mark(sends.summary())},
			{figure: fmt.Sprintf("API `GET /healthz` (HTTP alone), %d clients", o.clients),
				measured: e.mark(floor.summary())},
			{figure: "API rate / bare rate",
				measured: e.mark(fmt.Sprintf("%.2f", ratio)),
				target:   fmt.Sprintf("≥ %.1f", apiTarget),
				verdict:  e.mark(verdict(ratio >= apiTarget))},
		},
		raw: []string{
			bare.describe("bare Enqueue"),
			"bare Enqueue cost: " + bareCost,
			sends.describe("API sends accepted (202)"),
			"API send cost: " + sendCost,
			fmt.Sprintf("ratio %.0f / %.0f = %.3f; target ≥ %.1f", sends.rate(), bare.rate(), ratio, apiTarget),
			floor.describe("GET /healthz, HTTP and middleware alone"),
			fmt.Sprintf("HTTP alone reaches %.2f of the bare rate; sends reach %.2f of HTTP alone",
				floor.rate()/bare.rate(), sends.rate()/floor.rate()),
			fmt.Sprintf("every call that succeeded, warmup included, left its task in Redis (%d Enqueue, %d sends)",
				enqueued.Load(), accepted.Load()),
			"the load generator runs in the same process as the API and takes CPU from it; " +
				"the bare run has no HTTP client, server or validation to pay for",
		},
	}
	return res, nil
}

// sendTask is the task the API enqueues for a new job with sendBody's
// message: one recipient, the API's default sender, normal priority.
func sendTask() (*asynq.Task, error) {
	return task.NewSend(&mms.Job{
		ID:       mms.NewJobID(),
		Status:   mms.StatusQueued,
		Priority: mms.PriorityNormal,
		Message:  mms.Message{To: []string{"+12025550123"}, From: defaultFrom},
	})
}

// checkQueued checks that asynq holds the n tasks a load run says it
// queued.
func (e *env) checkQueued(n int) error {
	got, err := e.pending()
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%d calls succeeded but asynq holds %d tasks", n, got)
	}
	return nil
}
