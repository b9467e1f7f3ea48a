package worker

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// createExpiring stores a queued job whose expiry is at exp.
func (b *bundle) createExpiring(t *testing.T, exp time.Time) *mms.Job {
	t.Helper()
	j := b.create(t, 5)
	require.NoError(t, b.store.Delete(context.Background(), j.ID))
	j.Message.ExpireAt = exp.UTC().Truncate(time.Millisecond)
	require.NoError(t, b.store.Create(context.Background(), j))
	return j
}

func TestProcessPassesExpiryToSinch(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	exp := time.Now().Add(2 * time.Hour)
	j := b.createExpiring(t, exp)

	require.NoError(t, b.process(t, j.ID))
	batches := b.sim.Batches()
	require.Len(t, batches, 1)
	require.WithinDuration(t, exp, batches[0].ExpireAt, time.Millisecond)
	require.Equal(t, j.Message.ExpireAt, b.get(t, j.ID).Message.ExpireAt)
}

func TestProcessExpiredJobIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.createExpiring(t, time.Now().Add(-time.Second))

	require.NoError(t, b.process(t, j.ID))
	require.Zero(t, b.sim.Posts())
	require.Equal(t, mms.StatusExpired, b.get(t, j.ID).Status)

	require.NoError(t, b.process(t, j.ID), "a redelivered task finds the job ended")
	require.Zero(t, b.sim.Posts())
}

// TestProcessExpiryAfterUnclearAttempt: an attempt with an unknown outcome
// ran, then the job's time ran out. The next attempt must look first: a
// batch at Sinch makes the job sent, none makes it expired, and nothing is
// sent either way.
func TestProcessExpiryAfterUnclearAttempt(t *testing.T) {
	t.Parallel()

	for _, atSinch := range []bool{true, false} {
		b := setup(t, options{timeout: 200 * time.Millisecond})
		b.h.now = time.Now // this test needs the real clock to pass the expiry
		j := b.createExpiring(t, time.Now().Add(time.Second))
		b.sim.Inject(sinchsim.Fault{AfterCreate: atSinch, Hang: 2 * time.Second})
		requireRetry(t, b.process(t, j.ID), true)

		time.Sleep(time.Until(j.Message.ExpireAt) + 10*time.Millisecond)
		require.NoError(t, b.process(t, j.ID))

		job := b.get(t, j.ID)
		require.Equal(t, 1, b.sim.Posts(), "no second send")
		if atSinch {
			require.Equal(t, mms.StatusSent, job.Status)
		} else {
			require.Equal(t, mms.StatusExpired, job.Status)
		}
	}
}

func TestProcessExpiresWhileSendingIsPaused(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	c := NewCircuit(1, time.Hour, nil, b.rdb, zerolog.Nop())
	require.True(t, c.Failure(), "open")
	b.h.cfg.Circuit = c

	live := b.createExpiring(t, time.Now().Add(time.Hour))
	requireRetry(t, b.process(t, live.ID), false)
	require.Equal(t, mms.StatusQueued, b.get(t, live.ID).Status, "a job with time left waits")

	due := b.createExpiring(t, time.Now().Add(-time.Second))
	require.NoError(t, b.process(t, due.ID))
	require.Equal(t, mms.StatusExpired, b.get(t, due.ID).Status)
	require.Zero(t, b.sim.Posts())
}
