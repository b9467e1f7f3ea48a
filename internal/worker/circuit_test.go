package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// TestCircuitHoldsSendingDuringOutage: once Sinch has failed threshold times
// in a row, tasks wait without calling Sinch or spending attempts, the open
// circuit is announced in Redis, and the first good probe resumes sending.
func TestCircuitHoldsSendingDuringOutage(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})

	var up atomic.Bool
	probe := func(context.Context) error {
		if up.Load() {
			return nil
		}
		return errors.New("still down")
	}
	c := NewCircuit(2, 50*time.Millisecond, probe, b.rdb, zerolog.New(t.Output()))
	var opened, closed atomic.Int32
	c.OnChange = func(open bool) {
		if open {
			opened.Add(1)
		} else {
			closed.Add(1)
		}
	}
	b.h.cfg.Circuit = c
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)

	j := b.create(t, 2)
	b.sim.Inject(sinchsim.Fault{Status: 503}, sinchsim.Fault{Status: 503})

	requireRetry(t, b.process(t, j.ID), true) // first failure: counted
	require.False(t, c.Open())
	requireRetry(t, b.process(t, j.ID), false) // second: the circuit opens, not counted
	require.True(t, c.Open())
	require.Equal(t, 1, b.get(t, j.ID).Attempts)

	// While open, nothing reaches Sinch and the job is untouched.
	before := b.get(t, j.ID)
	for range 3 {
		delay := requireRetry(t, b.process(t, j.ID), false)
		require.Equal(t, 50*time.Millisecond, delay)
	}
	require.Equal(t, 2, b.sim.Posts())
	require.Equal(t, before, b.get(t, j.ID))
	require.Eventually(t, func() bool {
		return b.rdb.Exists(context.Background(), CircuitKey).Val() == 1
	}, 2*time.Second, 10*time.Millisecond, "the open circuit is announced")

	up.Store(true)
	require.Eventually(t, func() bool { return !c.Open() }, 2*time.Second, 10*time.Millisecond)
	require.Zero(t, b.rdb.Exists(context.Background(), CircuitKey).Val())
	require.Equal(t, int32(1), opened.Load(), "metrics hear the opening")
	require.Equal(t, int32(1), closed.Load(), "and the closing")

	require.NoError(t, b.process(t, j.ID))
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, job.Status, "the outage failed nothing")
	require.Equal(t, 2, job.Attempts)
}

func TestCircuitAnswersResetTheCount(t *testing.T) {
	t.Parallel()
	c := NewCircuit(3, time.Second, nil, nil, zerolog.Nop())
	require.False(t, c.Failure())
	require.False(t, c.Failure())
	c.Success()
	require.False(t, c.Failure())
	require.False(t, c.Failure())
	require.True(t, c.Failure())
	c.Success() // while open, only a probe closes it
	require.True(t, c.Open())

	var none *Circuit
	require.False(t, none.Open())
	require.False(t, none.Failure())
}

// TestCircuitHalfOpen: Sinch answers reads but still refuses batches. After
// the probe closes the circuit, one more failure reopens it at once and does
// not count against the message, so the job is never failed by the outage.
func TestCircuitHalfOpen(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	c := NewCircuit(2, 20*time.Millisecond, func(context.Context) error { return nil }, b.rdb,
		zerolog.New(t.Output()))
	b.h.cfg.Circuit = c
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)

	j := b.create(t, 2)
	faults := make([]sinchsim.Fault, 12)
	for i := range faults {
		faults[i] = sinchsim.Fault{Status: 503}
	}
	b.sim.Inject(faults...)

	requireRetry(t, b.process(t, j.ID), true) // counted: the circuit is still closed
	for range 10 {
		require.Eventually(t, func() bool { return !c.Open() }, 2*time.Second, 5*time.Millisecond)
		err := b.process(t, j.ID)
		requireRetry(t, err, false) // each failure after a probe reopens at once
	}
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusRetrying, job.Status, "the partial outage fails nothing")
	require.Equal(t, 1, job.Attempts)
}
