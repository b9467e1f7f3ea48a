package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	// rlRate and rlBurst are the workers' SINCH_RATE_LIMIT and
	// SINCH_RATE_BURST, in recipients per second and recipients.
	rlRate  = 200
	rlBurst = 20
	// rlProcs worker processes, each with WORKER_CONCURRENCY rlConcurrency.
	rlProcs       = 3
	rlConcurrency = 8
	// rlMaxSize: job i has 1 + i%rlMaxSize recipients.
	rlMaxSize = 5
	// rlTolerance: the measured rate must be within this share of rlRate,
	// above or below.
	rlTolerance = 0.05
	// rlStopTimeout bounds a worker's exit after SIGTERM; the worker's own
	// SHUTDOWN_TIMEOUT is 30s by default.
	rlStopTimeout = 45 * time.Second
)

// benchRateLimit measures how closely three worker processes sharing one
// send rate limit through Redis keep to it. It builds ./cmd/worker, has
// enough jobs of one to five recipients accepted through the API to keep
// the limit busy for the run's length, then starts three worker processes
// at once, each sending to its own simulator, and times every batch the
// simulators create. The rate is what went after the initial burst over
// the time from the first batch to the last.
func benchRateLimit(ctx context.Context, e *env) (result, error) {
	length := 10 * time.Second
	if e.opt.quick {
		length = 5 * time.Second
	}

	tmp, err := os.MkdirTemp("", "mmsbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	progress("rate limit: building ./cmd/worker")
	bin, buildTook, err := buildWorker(ctx, tmp)
	if err != nil {
		return result{}, err
	}

	// Enough recipients for the burst and then length at the rate.
	want := rlRate*length.Seconds() + rlBurst
	var sizes []int
	total := 0
	for float64(total) < want {
		n := 1 + len(sizes)%rlMaxSize
		sizes = append(sizes, n)
		total += n
	}
	progress("rate limit: %d jobs (%d recipients) through the API", len(sizes), total)
	api, err := e.startAPI(ctx, nil)
	if err != nil {
		return result{}, err
	}
	ids, err := e.createJobsWith(ctx, api.base, len(sizes), func(i int) []byte { return rlBody(i, sizes[i]) })
	if aerr := api.stop(); err == nil && aerr != nil && !errors.Is(aerr, context.Canceled) {
		err = aerr
	}
	if err != nil {
		return result{}, err
	}

	sims := make([]*sinchsim.Server, rlProcs)
	procs := make([]*proc, 0, rlProcs)
	var stopSims []func()
	defer func() { // the processes first, then their simulators
		for _, p := range procs {
			_ = p.stop(rlStopTimeout)
		}
		for _, stop := range stopSims {
			stop()
		}
	}()
	progress("rate limit: %d worker processes, SINCH_RATE_LIMIT=%d SINCH_RATE_BURST=%d WORKER_CONCURRENCY=%d",
		rlProcs, rlRate, rlBurst, rlConcurrency)
	t0 := time.Now()
	for i := range rlProcs {
		sim, simURL, stopSim, err := startSim(0)
		if err != nil {
			return result{}, err
		}
		stopSims = append(stopSims, stopSim)
		sims[i] = sim
		p, err := startProc(fmt.Sprintf("worker-%d", i+1), bin, e.childEnv(map[string]string{
			"REDIS_URL":             e.redisURL,
			"SINCH_API_BASE_URL":    simURL,
			"SINCH_SERVICE_PLAN_ID": simPlan,
			"SINCH_API_TOKEN":       simToken,
			"SINCH_RATE_LIMIT":      strconv.Itoa(rlRate),
			"SINCH_RATE_BURST":      strconv.Itoa(rlBurst),
			"WORKER_CONCURRENCY":    strconv.Itoa(rlConcurrency),
			"WORKER_POLL_INTERVAL":  "100ms",
		}))
		if err != nil {
			return result{}, err
		}
		procs = append(procs, p)
	}
	posts := func() int {
		n := 0
		for _, s := range sims {
			n += s.Posts()
		}
		return n
	}
	watch, unwatch := anyExit(procs)
	first, end, err := e.waitDone(ctx, len(ids), posts, watch, 3*length+time.Minute)
	unwatch()
	if err != nil {
		return result{}, err
	}
	var stopErrs []error
	var stopTook []string
	for _, p := range procs {
		if err := p.stop(rlStopTimeout); err != nil {
			stopErrs = append(stopErrs, err)
		}
		stopTook = append(stopTook, ms(p.stopTook))
	}
	if err := errors.Join(stopErrs...); err != nil {
		return result{}, err
	}

	var batches []sinchsim.Batch
	var perProc []string
	for i, s := range sims {
		b := s.Batches()
		r := 0
		for _, x := range b {
			r += len(x.To)
		}
		perProc = append(perProc, fmt.Sprintf("worker-%d %d batches, %d recipients (%.0f%%)",
			i+1, len(b), r, 100*float64(r)/float64(total)))
		batches = append(batches, b...)
	}
	m := measureRate(batches, rlBurst)
	_, checked, onceErr := checkSent(ctx, e, batches, ids)

	dev := m.rate/rlRate - 1
	limitCell := fmt.Sprintf("%d/s, burst %d", rlRate, rlBurst)
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("send rate, %d worker processes × concurrency %d sharing SINCH_RATE_LIMIT=%s; "+
				"(recipients − burst) / time from first to last batch", rlProcs, rlConcurrency, limitCell),
				measured: e.mark(fmt.Sprintf("%.1f recipients/s (%+.2f%%)", m.rate, 100*dev)),
				target: fmt.Sprintf("%d/s ± %.0f%% (%.0f–%.0f)", rlRate, 100*rlTolerance,
					rlRate*(1-rlTolerance), rlRate*(1+rlTolerance)),
				verdict: e.mark(verdict(math.Abs(dev) <= rlTolerance))},
			{figure: fmt.Sprintf("every job sent exactly once (%d jobs, %d recipients)", len(ids), total),
				measured: e.mark(onceCell(len(batches), len(ids), onceErr)),
				target:   "each once",
				verdict:  e.mark(verdict(onceErr == nil))},
		},
		raw: []string{
			fmt.Sprintf("./cmd/worker built in %.1f s; %d processes started with "+
				"SINCH_RATE_LIMIT=%d SINCH_RATE_BURST=%d WORKER_CONCURRENCY=%d WORKER_POLL_INTERVAL=100ms, "+
				"other settings at their defaults, each sending to its own simulator (no latency) "+
				"in the benchmark's process",
				buildTook.Seconds(), rlProcs, rlRate, rlBurst, rlConcurrency),
			fmt.Sprintf("%d jobs of 1 to %d recipients (%d in all) accepted through the API beforehand; "+
				"the first batch %s after the processes were started, the queues empty %.3f s after it",
				len(ids), rlMaxSize, total, ms(first.Sub(t0)), end.Sub(first).Seconds()),
			fmt.Sprintf("batches: %d recipients from the first to the last batch in %.3f s: "+
				"(%d − %d burst) / %.3f s = %.2f recipients/s, %+.2f%% off %d/s; target within ±%.0f%%",
				m.recipients, m.span.Seconds(), m.recipients, rlBurst, m.span.Seconds(), m.rate, 100*dev,
				rlRate, 100*rlTolerance),
			fmt.Sprintf("middle 80%% of that span alone: %.2f recipients/s (%+.2f%%)",
				m.middle, 100*(m.middle/rlRate-1)),
			fmt.Sprintf("busiest second: %d recipients (at most %d/s + burst %d = %d may go in one second)",
				m.busiest, rlRate, rlBurst, rlRate+rlBurst),
			fmt.Sprintf("first 100 ms of batches: %d recipients (burst %d + 100 ms at %d/s = %d)",
				m.first100ms, rlBurst, rlRate, rlBurst+rlRate/10),
			"by process: " + strings.Join(perProc, "; "),
			fmt.Sprintf("exactly once: %s", onceText(len(batches), len(ids), checked, onceErr)),
			"each process stopped with SIGTERM and exited 0, after " + strings.Join(stopTook, ", "),
			"batch times are the simulator's created_at (millisecond resolution), taken when the batch arrives, " +
				"a few ms after the worker took room from the limit",
		},
	}
	return res, nil
}

// rlBody is the send of job i: n distinct numbers.
func rlBody(i, n int) []byte {
	to := make([]string, n)
	for k := range to {
		to[k] = fmt.Sprintf(`"+1202555%04d"`, (i*rlMaxSize+k)%10000)
	}
	return []byte(`{"to":[` + strings.Join(to, ",") + `],"media_url":"https://cdn.example.com/a.jpg",` +
		`"message":"mmsgate rate-limit benchmark"}`)
}

// rateMeasure is what the batches' times say of the send rate.
type rateMeasure struct {
	recipients int
	span       time.Duration
	// rate is (recipients − burst) / span; middle the rate of the middle
	// 80% of the span.
	rate, middle float64
	// busiest is the most recipients within any one second; first100ms
	// those in the first 100 ms.
	busiest, first100ms int
}

func measureRate(batches []sinchsim.Batch, burst int) rateMeasure {
	type at struct {
		t time.Time
		n int
	}
	list := make([]at, 0, len(batches))
	var m rateMeasure
	for _, b := range batches {
		list = append(list, at{b.CreatedAt, len(b.To)})
		m.recipients += len(b.To)
	}
	if len(list) < 2 {
		return m
	}
	slices.SortFunc(list, func(a, b at) int { return a.t.Compare(b.t) })
	start := list[0].t
	m.span = list[len(list)-1].t.Sub(start)
	if m.span <= 0 {
		return m
	}
	m.rate = float64(m.recipients-burst) / m.span.Seconds()

	from, to := start.Add(m.span/10), start.Add(m.span*9/10)
	mid := 0
	j, window := 0, 0
	for _, x := range list {
		if !x.t.Before(from) && x.t.Before(to) {
			mid += x.n
		}
		if x.t.Before(start.Add(100 * time.Millisecond)) {
			m.first100ms += x.n
		}
		window += x.n
		for !list[j].t.After(x.t.Add(-time.Second)) {
			window -= list[j].n
			j++
		}
		m.busiest = max(m.busiest, window)
	}
	m.middle = float64(mid) / to.Sub(from).Seconds()
	return m
}

func onceCell(batches, jobs int, err error) string {
	if err != nil {
		return fmt.Sprintf("no: %d batches for %d jobs", batches, jobs)
	}
	return fmt.Sprintf("yes: %d batches for %d jobs", batches, jobs)
}

func onceText(batches, jobs, checked int, err error) string {
	if err != nil {
		return fmt.Sprintf("%d batches for %d jobs: %v", batches, jobs, err)
	}
	return fmt.Sprintf("%d batches, one for each of the %d jobs (by client_reference); %d jobs read back, all sent",
		batches, jobs, checked)
}
