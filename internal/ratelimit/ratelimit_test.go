package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/ratelimit"
	"github.com/mmsgate/mmsgate/internal/redistest"
)

func newLimiter(t *testing.T) *ratelimit.Limiter {
	return ratelimit.New(redistest.Start(t).Client(t))
}

func take(t *testing.T, l *ratelimit.Limiter, n int, ahead time.Duration, limits ...ratelimit.Limit) ratelimit.Result {
	t.Helper()
	r, err := l.Take(context.Background(), n, ahead, limits...)
	require.NoError(t, err)
	return r
}

func TestBurstThenWait(t *testing.T) {
	l := newLimiter(t)
	plan := ratelimit.Plan(10, 5) // one recipient per 100 ms, five at once

	for i := range 5 {
		require.True(t, take(t, l, 1, 0, plan).OK, "take %d within the burst", i)
	}
	r := take(t, l, 1, 0, plan)
	require.False(t, r.OK, "the sixth recipient exceeds the burst")
	require.Greater(t, r.Wait, time.Duration(0))
	require.LessOrEqual(t, r.Wait, 100*time.Millisecond, "one interval frees one recipient")

	// Three recipients need three intervals to drain, at most.
	r = take(t, l, 3, 0, plan)
	require.False(t, r.OK)
	require.Greater(t, r.Wait, 200*time.Millisecond)
	require.LessOrEqual(t, r.Wait, 300*time.Millisecond)
}

func TestBatchLargerThanBurst(t *testing.T) {
	l := newLimiter(t)
	plan := ratelimit.Plan(100, 10)

	// After a quiet spell a batch of any size may go at once...
	require.True(t, take(t, l, 500, 0, plan).OK)
	// ...and then everything waits until Sinch has drained it: 5 s.
	r := take(t, l, 1, 0, plan)
	require.False(t, r.OK)
	require.Greater(t, r.Wait, 4800*time.Millisecond)
	require.LessOrEqual(t, r.Wait, 5*time.Second)
}

// TestBatchLargerThanBurstAtAnyRate: a batch bigger than the burst goes
// once the backlog has drained, also at a rate whose interval is not a
// whole number of microseconds (a float rounding once refused such a batch
// on every try).
func TestBatchLargerThanBurstAtAnyRate(t *testing.T) {
	l := newLimiter(t)
	for _, rate := range []float64{300, 7, 33.3, 999} {
		plan := ratelimit.Limit{Key: "rate-" + strconv.FormatFloat(rate, 'g', -1, 64), Rate: rate, Burst: rate / 10}
		n := int(rate/5) + 1 // bigger than the burst
		require.True(t, take(t, l, n, 0, plan).OK, "rate %g: the first batch goes at once", rate)
		r := take(t, l, n, 0, plan)
		require.False(t, r.OK, "rate %g: the second waits for the first to drain", rate)
		drain := time.Duration(float64(n) / rate * float64(time.Second))
		require.InDelta(t, drain, r.Wait, float64(20*time.Millisecond), "rate %g", rate)
		time.Sleep(r.Wait)
		require.True(t, take(t, l, n, 0, plan).OK, "rate %g: and goes once it has", rate)
	}
}

func TestAllOrNothing(t *testing.T) {
	l := newLimiter(t)
	plan := ratelimit.Plan(10, 10)
	bulk := ratelimit.Queue("mms:bulk", 1, 2)

	require.True(t, take(t, l, 2, 0, plan, bulk).OK)
	r := take(t, l, 2, 0, plan, bulk)
	require.False(t, r.OK, "the queue limit is spent")
	require.Greater(t, r.Wait, time.Second, "the stricter limit sets the wait")
	require.Equal(t, "queue:mms:bulk", r.Blocker)

	// The refused take left the plan untouched: 8 of its 10 remain.
	require.True(t, take(t, l, 8, 0, plan).OK)
	require.False(t, take(t, l, 1, 0, plan).OK)
}

func TestLookaheadQueues(t *testing.T) {
	l := newLimiter(t)
	plan := ratelimit.Plan(10, 1)

	require.True(t, take(t, l, 1, 0, plan).OK)
	require.False(t, take(t, l, 1, 0, plan).OK, "no room now and no lookahead")

	r := take(t, l, 1, time.Second, plan)
	require.True(t, r.OK, "a take may queue within its lookahead")
	require.Greater(t, r.Wait, time.Duration(0))
	require.LessOrEqual(t, r.Wait, 100*time.Millisecond)

	// The queued take counts: a take without lookahead now waits longer.
	r = take(t, l, 1, 0, plan)
	require.False(t, r.OK)
	require.Greater(t, r.Wait, 100*time.Millisecond)
}

func TestOffLimitsAreSkipped(t *testing.T) {
	// No Redis is needed when nothing is limited.
	l := ratelimit.New(nil)
	r, err := l.Take(context.Background(), 1000, 0, ratelimit.Plan(0, 0), ratelimit.Sender("+15550100", 0, 0))
	require.NoError(t, err)
	require.True(t, r.OK)
}

func TestSeparateKeys(t *testing.T) {
	l := newLimiter(t)
	a := ratelimit.Sender("+12025550100", 1, 1)
	b := ratelimit.Sender("+12025550101", 1, 1)
	require.True(t, take(t, l, 1, 0, a).OK)
	require.False(t, take(t, l, 1, 0, a).OK)
	require.True(t, take(t, l, 1, 0, b).OK, "each sender has its own limit")
}

// TestSharedAcrossClients hammers one limit from many goroutines on several
// connections, as several worker processes do, and checks that no more
// than the burst plus the rate times the elapsed time got through.
func TestSharedAcrossClients(t *testing.T) {
	rs := redistest.Start(t)
	const rate, burst = 200.0, 20.0
	plan := ratelimit.Plan(rate, burst)

	var taken atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		l := ratelimit.New(rs.Client(t))
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					r, err := l.Take(ctx, 3, 0, plan)
					if err != nil {
						return
					}
					if r.OK {
						taken.Add(3)
						continue
					}
					time.Sleep(min(r.Wait, 20*time.Millisecond))
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	got := float64(taken.Load())
	require.LessOrEqual(t, got, burst+rate*elapsed+3, "took %v in %.2fs", got, elapsed)
	// And the limiter lets traffic through: at least a quarter of the rate.
	require.Greater(t, got, rate*elapsed/4, "took %v in %.2fs", got, elapsed)
}
