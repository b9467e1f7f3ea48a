package faults_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// Redis restarted gracefully under load, as an upgrade or a host reboot
// does: while it is away the API refuses sends quickly with 503 rather than
// hanging, and once it is back the API and the worker carry on without
// being restarted. Every job accepted before, during or after the restart
// is sent exactly once; the append-only file keeps those accepted before.
func TestRedisRestartWhileRunning(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := setupWith(t, redistest.StartPersistent(t), sinchsim.Config{Latency: 200 * time.Millisecond})
	s.startAPI(t)
	// Sends get three seconds, so that one held back below still succeeds.
	w := s.startWorker(t, map[string]string{"WORKER_CONCURRENCY": "8", "SINCH_TIMEOUT": "3s"})

	// Three clients send all along, ten messages a second each, so that
	// sends are under way at Sinch when Redis goes.
	type result struct {
		answer
		at time.Time
	}
	var (
		mu      sync.Mutex
		results []result
	)
	accepted := func(since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.status == http.StatusAccepted && !r.at.Before(since) {
				n++
			}
		}
		return n
	}
	const clients = 3
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				at := time.Now()
				a := s.trySend(i*clients + c)
				mu.Lock()
				results = append(results, result{a, at})
				mu.Unlock()
			}
		}()
	}
	var once sync.Once
	stopSending := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	t.Cleanup(stopSending)

	time.Sleep(2 * time.Second)
	require.Eventually(t, func() bool { return accepted(time.Time{}) >= 30 }, 30*time.Second, 50*time.Millisecond)

	// Hold the next sends at Sinch for a second, so that they succeed while
	// Redis is away and the worker cannot record it.
	s.sinch.hold.Store(int64(time.Second))
	require.Eventually(t, func() bool { return s.sinch.held.Load() >= 3 }, 10*time.Second, 5*time.Millisecond,
		"sends under way")
	downAt := time.Now()
	s.redis.Restart(t, 3*time.Second)
	upAt := time.Now()
	s.sinch.hold.Store(0)

	// go-redis dials again about once a second after failed dials, so the
	// API may take a moment to notice.
	require.Eventually(t, func() bool {
		code, _ := s.get(s.url + "/readyz")
		return code == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "api ready again after the restart")
	readyAt := time.Now()
	t.Logf("redis down for %s; api ready again %s after it was back", upAt.Sub(downAt).Round(time.Millisecond),
		readyAt.Sub(upAt).Round(time.Millisecond))
	require.Eventually(t, func() bool { return accepted(readyAt) >= 30 }, 30*time.Second, 50*time.Millisecond,
		"sends accepted again after the restart")
	stopSending()

	// Every answer was a 202 or a quick 503; only the restart caused 503s.
	var ids []string
	var refused, before, after int
	var slowest, slowest503 time.Duration
	for i, r := range results {
		require.NoError(t, r.err, "send %d", i)
		require.Contains(t, []int{http.StatusAccepted, http.StatusServiceUnavailable}, r.status, "send %d", i)
		slowest = max(slowest, r.took)
		switch {
		case r.status == http.StatusAccepted:
			ids = append(ids, r.jobID)
			if r.at.Before(downAt) {
				before++
			} else if r.at.After(readyAt) {
				after++
			}
		default:
			refused++
			slowest503 = max(slowest503, r.took)
			require.True(t, r.at.After(downAt.Add(-time.Second)) && r.at.Before(readyAt.Add(time.Second)),
				"send %d refused at %s, outside the restart (%s to %s)", i, r.at.Format(time.StampMilli),
				downAt.Format(time.StampMilli), readyAt.Format(time.StampMilli))
		}
		require.Less(t, r.took, 5*time.Second, "send %d (status %d) took too long", i, r.status)
	}
	t.Logf("%d sends: %d accepted (%d before the restart, %d after), %d refused with 503; "+
		"slowest 503 %s, slowest answer %s", len(results), len(ids), before, after, refused,
		slowest503.Round(time.Millisecond), slowest.Round(time.Millisecond))
	require.NotZero(t, refused, "sends while Redis was down were refused")

	// The sends that succeeded while Redis was away left their jobs in
	// "sending"; the next attempt finds the batch at Sinch and adopts it.
	// That attempt comes late: asynq v0.25.1 retries the task's failed move
	// out of "active" with a context it has already canceled, so the task
	// comes back only once its lease has lapsed, up to two minutes later.
	sending := 0
	for _, id := range ids {
		if s.job(t, id).Status == mms.StatusSending {
			sending++
		}
	}
	settleFrom := time.Now()
	jobs := s.requireSentOnce(t, ids, 180*time.Second)
	adopted := 0
	for _, j := range jobs {
		if j.Attempts > 1 {
			adopted++
		}
	}
	t.Logf("%d jobs left sending by the restart; all sent %s later; %d jobs needed a second attempt",
		sending, time.Since(settleFrom).Round(time.Second), adopted)
	require.Equal(t, len(ids), s.sinch.sim.Posts(), "no job was posted to Sinch twice")
	require.False(t, s.api.exited(), "the api kept running")
	require.False(t, w.exited(), "the worker kept running")
}
