package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// loadResult is what a closed-loop load run measured in its measured phase.
type loadResult struct {
	workers  int
	window   time.Duration
	ok       int
	errors   int
	firstErr error
	// latencies of the successful calls, sorted.
	latencies []time.Duration
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.window.Seconds() }

// percentile returns the p-th percentile (0 < p <= 100) of the latencies,
// by nearest rank.
func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.999999) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// summary is the rate and latency, for a table cell.
func (r loadResult) summary() string {
	s := fmt.Sprintf("%.0f/s (p50 %s, p99 %s)", r.rate(), ms(r.percentile(50)), ms(r.percentile(99)))
	if r.errors > 0 {
		s += fmt.Sprintf(", %d errors", r.errors)
	}
	return s
}

// describe is the raw figures of the run, in one line.
func (r loadResult) describe(what string) string {
	s := fmt.Sprintf("%s: %d in %.2f s by %d concurrent callers = %.0f/s; latency p50 %s, p99 %s, max %s; %d errors",
		what, r.ok, r.window.Seconds(), r.workers, r.rate(),
		ms(r.percentile(50)), ms(r.percentile(99)), ms(r.percentile(100)), r.errors)
	if r.firstErr != nil {
		s += fmt.Sprintf(" (first: %v)", r.firstErr)
	}
	return s
}

// closedLoop runs op from workers goroutines, each calling it again as soon
// as it returns, for warmup and then measure. Only calls that start and end
// within the measured phase count, so the rate is not inflated by the
// warmup nor deflated by calls cut off at the end.
func closedLoop(ctx context.Context, workers int, warmup, measure time.Duration,
	op func(context.Context) error) loadResult {
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+measure)
	type partial struct {
		ok, errors int
		firstErr   error
		lat        []time.Duration
	}
	parts := make([]partial, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[w]
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(to) {
					return
				}
				err := op(ctx)
				t1 := time.Now()
				if t0.Before(from) || t1.After(to) {
					continue
				}
				if err != nil {
					p.errors++
					if p.firstErr == nil {
						p.firstErr = err
					}
					continue
				}
				p.ok++
				p.lat = append(p.lat, t1.Sub(t0))
			}
		}()
	}
	wg.Wait()

	r := loadResult{workers: workers, window: measure}
	for _, p := range parts {
		r.ok += p.ok
		r.errors += p.errors
		if r.firstErr == nil {
			r.firstErr = p.firstErr
		}
		r.latencies = append(r.latencies, p.lat...)
	}
	slices.Sort(r.latencies)
	return r
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// verdict is PASS if ok, else MISS.
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
