package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
	"github.com/mmsgate/mmsgate/internal/task"
	"github.com/mmsgate/mmsgate/internal/worker"
)

const (
	// workerTarget: with no Sinch latency the worker must send at least
	// this share of what a no-op handler processes.
	workerTarget = 0.5
	// simLatency and latencyTarget: with this Sinch latency the worker must
	// reach this share of concurrency / latency.
	simLatency    = 50 * time.Millisecond
	latencyTarget = 0.9
	// drainLimit bounds one drain, so that a stuck run fails instead of
	// hanging.
	drainLimit = 3 * time.Minute
)

// benchWorkers compares the real worker's send rate with a no-op asynq
// handler's on the same Redis and concurrency, then measures it against a
// Sinch that takes simLatency per call. Each run starts with its tasks
// already queued and times from the start of the server until every task
// is done.
func benchWorkers(ctx context.Context, e *env) (result, error) {
	o := e.opt
	c := o.concurrency

	noop, err := runNoop(ctx, e, o.jobs, c)
	if err != nil {
		return result{}, fmt.Errorf("no-op handler: %w", err)
	}
	if err := e.reset(ctx); err != nil {
		return result{}, err
	}
	fast, err := runWorker(ctx, e, o.jobs, c, 0)
	if err != nil {
		return result{}, fmt.Errorf("worker, no latency: %w", err)
	}
	if err := e.reset(ctx); err != nil {
		return result{}, err
	}
	// Enough jobs to keep every slot busy for the measured time.
	nSlow := int(float64(c) * o.measure.Seconds() / simLatency.Seconds())
	slow, err := runWorker(ctx, e, nSlow, c, simLatency)
	if err != nil {
		return result{}, fmt.Errorf("worker, %s latency: %w", simLatency, err)
	}

	ratio := fast.rate() / noop.rate()
	ideal := float64(c) / simLatency.Seconds()
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("no-op asynq handler, concurrency %d", c),
				measured: e.mark(fmt.Sprintf("%.0f tasks/s", noop.rate()))},
			{figure: fmt.Sprintf("worker → simulator (no latency), concurrency %d", c),
				measured: e.mark(fmt.Sprintf("%.0f jobs/s", fast.rate()))},
			{figure: "worker rate / no-op rate",
				measured: e.mark(fmt.Sprintf("%.2f", ratio)),
				target:   fmt.Sprintf("≥ %.1f", workerTarget),
				verdict:  e.mark(verdict(ratio >= workerTarget))},
			{figure: fmt.Sprintf("worker → simulator (%s latency), concurrency %d", simLatency, c),
				measured: e.mark(fmt.Sprintf("%.0f jobs/s (%.2f of %.0f/s)", slow.rate(), slow.rate()/ideal, ideal)),
				target: fmt.Sprintf("≥ %.0f/s (%.1f × %d / %.2f s)", latencyTarget*ideal, latencyTarget, c,
					simLatency.Seconds()),
				verdict: e.mark(verdict(slow.rate() >= latencyTarget*ideal))},
		},
		raw: []string{
			noop.describe("no-op handler"),
			fast.describe("worker, no latency"),
			fmt.Sprintf("ratio %.0f / %.0f = %.3f; target ≥ %.1f", fast.rate(), noop.rate(), ratio, workerTarget),
			slow.describe(fmt.Sprintf("worker, %s latency", simLatency)),
			fmt.Sprintf("%.0f / (%d / %.2f s = %.0f/s) = %.3f; target ≥ %.1f",
				slow.rate(), c, simLatency.Seconds(), ideal, slow.rate()/ideal, latencyTarget),
		},
	}
	return res, nil
}

// drain is one run that processed n queued tasks.
type drain struct {
	n int
	// startup is the time from starting the server to the first task
	// reaching the handler (or the simulator); elapsed the time from then
	// until every task was done.
	startup, elapsed time.Duration
	// cost is what it spent per task (costPer).
	cost string
	// checked is how many jobs were read back as sent afterwards, of n.
	checked int
	batches int
}

func (d drain) rate() float64 { return float64(d.n) / d.elapsed.Seconds() }

func (d drain) describe(what string) string {
	s := fmt.Sprintf("%s: %d tasks queued beforehand, all done %.3f s after the first one was handled = %.0f/s"+
		" (the server took %s from start to the first)",
		what, d.n, d.elapsed.Seconds(), d.rate(), ms(d.startup))
	if d.batches > 0 {
		s += fmt.Sprintf("; the simulator holds %d batches, one per job; %d jobs read back, all sent",
			d.batches, d.checked)
	}
	return s + "\n  cost: " + d.cost
}

// runNoop queues n send tasks, as the API would, and times an asynq server
// built like the worker's (worker.NewServer: same queues, weights and
// intervals) whose handler does nothing, until all are done.
func runNoop(ctx context.Context, e *env, n, concurrency int) (drain, error) {
	progress("no-op asynq handler: queueing %d tasks", n)
	if err := enqueueTasks(ctx, e, n); err != nil {
		return drain{}, err
	}

	conn, err := redisconn.Parse(e.redisURL, e.common.RedisTimeout)
	if err != nil {
		return drain{}, err
	}
	// worker.NewServer also returns a mux routing to the real handler; a
	// nil handler is enough since that mux is not used: the server runs
	// the no-op mux instead.
	var unused *worker.Handler
	srv, _ := worker.NewServer(conn, worker.ServerConfig{
		Concurrency:     concurrency,
		ShutdownTimeout: 30 * time.Second,
		PollInterval:    time.Second,
		Backoff:         worker.Backoff{Base: 10 * time.Second, Max: 30 * time.Minute},
	}, unused, e.log.With().Str("service", "noop-worker").Logger())
	var done atomic.Int64
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeSend, func(context.Context, *asynq.Task) error {
		done.Add(1)
		return nil
	})

	progress("no-op asynq handler: draining, concurrency %d", concurrency)
	u0, t0 := e.usage(ctx), time.Now()
	if err := srv.Start(mux); err != nil {
		return drain{}, fmt.Errorf("start: %w", err)
	}
	first, end, err := e.waitDone(ctx, n, func() int { return int(done.Load()) }, nil, drainLimit)
	u1 := e.usage(ctx)
	srv.Shutdown()
	if err != nil {
		return drain{}, err
	}
	return drain{n: n, startup: first.Sub(t0), elapsed: end.Sub(first),
		cost: costPer(u0, u1, n, end.Sub(t0))}, nil
}

// enqueueTasks queues n send tasks for new job IDs with e.opt.clients
// concurrent calls of asynq's Enqueue.
func enqueueTasks(ctx context.Context, e *env, n int) error {
	_, rdb, err := redisconn.Open(ctx, e.redisURL, e.common.RedisTimeout)
	if err != nil {
		return err
	}
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, e.opt.clients)
	for w := range min(e.opt.clients, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for int(next.Add(1)) <= n && ctx.Err() == nil {
				t, err := sendTask()
				if err == nil {
					_, err = client.EnqueueContext(ctx, t)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queueing %d tasks: %w", n, err)
	}
	return ctx.Err()
}

// runWorker has n jobs accepted through the API with no worker running,
// then times the real worker, sending to a simulator with the given
// latency, until all are done; it then checks that each job is sent and
// has exactly one batch at the simulator.
func runWorker(ctx context.Context, e *env, n, concurrency int, latency time.Duration) (drain, error) {
	progress("worker, %s: %d jobs through the API", latencyName(latency), n)
	api, err := e.startAPI(ctx, nil)
	if err != nil {
		return drain{}, err
	}
	ids, err := e.createJobs(ctx, api.base, n)
	if aerr := api.stop(); err == nil && aerr != nil && !errors.Is(aerr, context.Canceled) {
		err = aerr
	}
	if err != nil {
		return drain{}, err
	}

	progress("worker, %s: draining, concurrency %d (no send rate limit set: its warning is expected)",
		latencyName(latency), concurrency)
	u0, t0 := e.usage(ctx), time.Now()
	w, err := e.startWorker(ctx, latency, concurrency)
	if err != nil {
		return drain{}, err
	}
	first, end, err := e.waitDone(ctx, n, w.sim.Posts, w, drainLimit)
	u1 := e.usage(ctx)
	if serr := w.stop(); err == nil && serr != nil {
		err = fmt.Errorf("worker: %w", serr)
	}
	if err != nil {
		return drain{}, err
	}
	d := drain{n: n, startup: first.Sub(t0), elapsed: end.Sub(first), cost: costPer(u0, u1, n, end.Sub(t0))}
	d.batches, d.checked, err = checkSent(ctx, e, w.sim.Batches(), ids)
	return d, err
}

// checkSent checks, after a worker run, that the simulators' batches hold
// exactly one batch for each job, and reads a sample of the jobs back from
// the job store to see that they are sent.
func checkSent(ctx context.Context, e *env, sent []sinchsim.Batch, ids []string) (batches, checked int, err error) {
	perJob := map[string]int{}
	for _, b := range sent {
		perJob[b.ClientReference]++
	}
	for _, id := range ids {
		if perJob[id] != 1 {
			return 0, 0, fmt.Errorf("job %s has %d batches at the simulator, want 1", id, perJob[id])
		}
	}
	if len(perJob) != len(ids) {
		return 0, 0, fmt.Errorf("the simulator holds batches for %d jobs, want %d", len(perJob), len(ids))
	}

	store := jobstore.New(e.rdb, e.common.JobRetention)
	step := max(1, len(ids)/200)
	for i := 0; i < len(ids); i += step {
		j, err := store.Get(ctx, ids[i])
		if err != nil {
			return 0, 0, fmt.Errorf("read job %s: %w", ids[i], err)
		}
		if j.Status != mms.StatusSent {
			return 0, 0, fmt.Errorf("job %s is %s after the run, want sent", ids[i], j.Status)
		}
		checked++
	}
	return len(ids), checked, nil
}

func latencyName(d time.Duration) string {
	if d == 0 {
		return "no latency"
	}
	return d.String() + " latency"
}
