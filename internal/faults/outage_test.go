package faults_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// A minute-long Sinch outage, half of it answering 503 to everything and
// half of it hanging every request past the client's timeout, must not fail
// a single job: after CIRCUIT_THRESHOLD provider failures in a row the
// worker stops sending, keeps its tasks waiting without spending attempts,
// and probes until Sinch answers again. /readyz shows the pause meanwhile.
func TestSinchOutageThenRecovery(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := setup(t, sinchsim.Config{})
	s.startAPI(t)
	s.startWorker(t, map[string]string{"WORKER_CONCURRENCY": "8"})

	const half = 30 * time.Second
	s.sinch.setMode(sinchDown)
	start := time.Now()
	ids := s.send(t, 20)

	// Watch the outage from outside: /readyz, and the jobs, none of which
	// may fail.
	paused := map[sinchMode]bool{}
	maxAttempts := 0
	watch := func(mode sinchMode, until time.Time) {
		t.Helper()
		lastJobs := time.Time{}
		for i := 0; i < 1000 && time.Now().Before(until); i++ {
			if strings.Contains(s.readySinch(t), "paused") {
				paused[mode] = true
			}
			if time.Since(lastJobs) >= 2*time.Second {
				lastJobs = time.Now()
				for _, id := range ids {
					j := s.job(t, id)
					require.False(t, settled(j.Status), "job %s settled during the outage: %+v, %+v",
						id, j, j.LastError)
					maxAttempts = max(maxAttempts, j.Attempts)
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	watch(sinchDown, start.Add(half))
	s.sinch.setMode(sinchHang)
	watch(sinchHang, start.Add(2*half))
	s.sinch.setMode(sinchUp)
	recovered := time.Now()

	t.Logf("outage: %d requests refused, %d hung; no batch created meanwhile: %d",
		s.sinch.refused.Load(), s.sinch.hung.Load(), len(s.sinch.sim.Batches()))
	require.True(t, paused[sinchDown], "/readyz showed sinch paused while Sinch answered 503")
	require.True(t, paused[sinchHang], "/readyz showed sinch paused while Sinch hung")
	require.NotZero(t, s.sinch.hung.Load(), "the worker kept probing while Sinch hung")

	jobs := s.requireSentOnce(t, ids, 60*time.Second)
	t.Logf("all %d jobs sent %s after Sinch recovered", len(ids), time.Since(recovered).Round(time.Millisecond))
	for _, j := range jobs {
		maxAttempts = max(maxAttempts, j.Attempts)
		require.Less(t, j.Attempts, j.MaxAttempts, "job %s spent its budget on the outage", j.ID)
	}
	t.Logf("most attempts spent by one job: %d of %d", maxAttempts, jobs[ids[0]].MaxAttempts)

	// Once sending resumed, the pause is no longer announced.
	require.Eventually(t, func() bool { return s.readySinch(t) == "ok" }, 10*time.Second, 100*time.Millisecond,
		"/readyz sinch check back to ok")
}

// readySinch returns the "sinch" check of the API's /readyz, which must
// answer 200: the API takes jobs whatever Sinch does.
func (s *stack) readySinch(t *testing.T) string {
	t.Helper()
	code, body := s.get(s.url + "/readyz")
	require.Equal(t, http.StatusOK, code, "/readyz: %s", body)
	var r struct {
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	return r.Checks["sinch"]
}
