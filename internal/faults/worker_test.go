package faults_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// A worker killed with SIGKILL in the middle of sending leaves its jobs
// "sending" and its tasks active in Redis under a lease. asynq gives the
// tasks to another worker once the lease has lapsed (30 s after the dead
// worker's last heartbeat, plus 30 s of allowance for clock skew) at that
// worker's next recovery pass, which comes once a minute. The new attempt
// sees that the last one never ended, looks the batch up at Sinch by
// client_reference, and adopts it if it exists; only otherwise does it send.
func TestWorkerKilledMidSendIsRecovered(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := setup(t, sinchsim.Config{Latency: time.Second})
	s.startAPI(t)

	// Each call takes a second at Sinch, so give it more than that before
	// a timeout. The first four sends create their batch and then never
	// answer: the worker dies holding them, with Sinch holding the batch.
	workerEnv := map[string]string{
		"WORKER_CONCURRENCY": "8",
		"SINCH_TIMEOUT":      "5s",
		"SHUTDOWN_TIMEOUT":   "10s",
	}
	lost := sinchsim.Fault{AfterCreate: true, Hang: time.Minute}
	s.sinch.sim.Inject(lost, lost, lost, lost)
	w := s.startWorker(t, workerEnv)
	ids := s.send(t, 20)

	// Wait for the moment after the first round of sends: four batches
	// created with their answers held back, four sent, and the next four
	// on their way to Sinch.
	require.Eventually(t, func() bool {
		return len(s.sinch.sim.Batches()) >= 8 && s.sinch.inFlight.Load() >= 8
	}, 30*time.Second, 10*time.Millisecond, "sends in flight")
	w.signal(t, syscall.SIGKILL)
	killedAt := time.Now()
	require.True(t, w.waitExit(10*time.Second), "worker did not die on SIGKILL")
	require.Eventually(t, func() bool { return s.sinch.inFlight.Load() == 0 }, 10*time.Second, 10*time.Millisecond,
		"Sinch noticed the dead worker's requests")
	atKill, postsAtKill := len(s.sinch.sim.Batches()), s.sinch.sim.Posts()
	t.Logf("worker killed with %d batches at Sinch, %d posts made", atKill, postsAtKill)

	// Its jobs are stuck in "sending" until asynq gives them back.
	stuck := 0
	for _, id := range ids {
		if s.job(t, id).Status == mms.StatusSending {
			stuck++
		}
	}
	require.NotZero(t, stuck, "jobs in flight when the worker died")

	s.startWorker(t, workerEnv)
	jobs := s.requireSentOnce(t, ids, 150*time.Second)
	t.Logf("all %d jobs sent %s after the kill; %d were left sending, %d batches already at Sinch",
		len(ids), time.Since(killedAt).Round(time.Second), stuck, atKill)

	// The jobs whose batch Sinch already held were adopted, not sent again:
	// the only posts beyond one per job are the sends the kill cut off
	// before Sinch created anything.
	cutOff := postsAtKill - atKill
	require.Equal(t, len(ids)+cutOff, s.sinch.sim.Posts(), "posts: one per job and the %d cut off", cutOff)
	for _, j := range jobs {
		require.LessOrEqual(t, j.Attempts, 2, "job %s", j.ID)
	}
}

// SIGTERM stops a worker gracefully: it takes no new task, lets the sends
// under way finish, and exits 0 within SHUTDOWN_TIMEOUT. Nothing is left
// half-sent, and a new worker sends the rest.
func TestWorkerSIGTERMUnderLoad(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := setup(t, sinchsim.Config{Latency: 300 * time.Millisecond})
	s.startAPI(t)
	workerEnv := map[string]string{"WORKER_CONCURRENCY": "8"}
	w := s.startWorker(t, workerEnv)

	ids := s.send(t, 30)
	require.Eventually(t, func() bool { return s.sinch.inFlight.Load() >= 4 },
		30*time.Second, 5*time.Millisecond, "sends in flight")
	inFlight := s.sinch.inFlight.Load()
	w.signal(t, syscall.SIGTERM)
	stoppedAt := time.Now()

	const shutdownTimeout = 5 * time.Second // SHUTDOWN_TIMEOUT
	require.True(t, w.waitExit(shutdownTimeout+5*time.Second), "worker still running %s after SIGTERM",
		shutdownTimeout+5*time.Second)
	took := time.Since(stoppedAt)
	require.Equal(t, 0, w.exitCode(), "worker's exit status after SIGTERM")
	t.Logf("worker exited 0 %s after SIGTERM, with %d sends in flight", took.Round(time.Millisecond), inFlight)

	// Every send under way finished and was recorded: no job is left in
	// "sending", and those sent are exactly the batches Sinch holds.
	sent, queued := 0, 0
	for _, id := range ids {
		switch st := s.job(t, id).Status; st {
		case mms.StatusSent:
			sent++
		case mms.StatusQueued:
			queued++
		default:
			t.Fatalf("job %s is %s after a graceful stop; want sent or queued", id, st)
		}
	}
	require.Equal(t, len(s.sinch.sim.Batches()), sent)
	require.Equal(t, sent, s.sinch.sim.Posts(), "no send was cut off at Sinch")
	require.NotZero(t, queued, "the stop came before the queue was empty")
	t.Logf("at the stop: %d sent, %d still queued", sent, queued)

	s.startWorker(t, workerEnv)
	s.requireSentOnce(t, ids, 60*time.Second)
}
