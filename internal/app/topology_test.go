package app_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// These tests run the whole service on Redis Cluster and on Redis Sentinel,
// each started here from redis-server on 127.0.0.1: any script of ours that
// touched keys of two hash slots would fail on the cluster with CROSSSLOT.

// exerciseEverything drives every path that keeps state in Redis: sends
// with an Idempotency-Key, the suppression list, a campaign (its store,
// batches and job creation), a scheduled job canceled, the shared rate
// limits, delivery reports matched by client_reference and by batch ID,
// client callbacks, the media-check cache, and the queues themselves. Every
// job must end sent or delivered, each batch at Sinch once.
func exerciseEverything(t *testing.T, rs *redistest.Server) {
	h, hookURL := newHook(t, 1)
	s := setupOn(t, rs, options{noWorker: true, callbacks: true, clientCallbacks: true,
		batchSize: 2, simReports: sinchsim.ReportSettings{Delay: 20 * time.Millisecond}})
	s.startWorkers(t, 2, func(c *config.Worker) {
		c.SinchRateLimit, c.SinchRateBurst = 200, 20
		c.QueueRateLimits = map[string]float64{"bulk": 100}
		c.SenderRateLimit = 150
	})

	// Idempotency: the same key twice, one job.
	body := `{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg","callback_url":"` + hookURL + `"}`
	first := s.do(t, http.MethodPost, "/api/mms/send", "application/json", body, "Idempotency-Key", "topo-1")
	require.Equal(t, http.StatusAccepted, first.status, "%v", first.body)
	again := s.do(t, http.MethodPost, "/api/mms/send", "application/json", body, "Idempotency-Key", "topo-1")
	require.Equal(t, http.StatusAccepted, again.status)
	require.Equal(t, first.body["job_id"], again.body["job_id"])
	ids := []string{first.body["job_id"].(string)}

	// The suppression list.
	require.Equal(t, http.StatusCreated, s.do(t, http.MethodPut, "/api/mms/suppressions/+14155552671",
		"application/json", `{"reason":"opt-out"}`).status)
	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":["+12025550124","+14155552671"],"media_url":"https://cdn.example.com/a.jpg"}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, []any{"+14155552671"}, r.body["suppressed"])
	ids = append(ids, r.body["job_id"].(string))

	// A scheduled job, canceled.
	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":"+12025550125","media_url":"https://cdn.example.com/a.jpg","send_at":"`+
			time.Now().Add(time.Hour).Format(time.RFC3339)+`"}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	scheduled := r.body["job_id"].(string)
	require.Equal(t, http.StatusOK, s.do(t, http.MethodDelete, "/api/mms/jobs/"+scheduled, "", "").status)

	// A scheduled campaign, canceled: its jobs are canceled in one pipeline.
	later := s.postCampaign(t, `,"send_at":"`+time.Now().Add(time.Hour).Format(time.RFC3339)+`"`,
		"+12025550131", "+12025550132", "+12025550133")
	require.Eventually(t, func() bool {
		jobs, _ := s.do(t, http.MethodGet, "/api/mms/campaigns/"+later, "", "").body["jobs"].(map[string]any)
		return jobs["created"] == 2.0
	}, 10*time.Second, 20*time.Millisecond, "the campaign's jobs are made, to wait for their time")
	r = s.do(t, http.MethodDelete, "/api/mms/campaigns/"+later, "", "")
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.EqualValues(t, 2, r.body["canceled_jobs"])

	// A campaign of five batches, capped.
	var numbers []string
	for i := range 10 {
		numbers = append(numbers, "+1202555"+strconv.Itoa(1000+i))
	}
	cid := s.postCampaign(t, `,"rate_limit":50`, numbers...)
	s.waitCampaign(t, cid, "completed")
	require.Eventually(t, func() bool {
		view := s.do(t, http.MethodGet, "/api/mms/campaigns/"+cid, "", "").body
		by, _ := view["recipients_by_status"].(map[string]any)
		return by["delivered"] == 10.0
	}, 10*time.Second, 20*time.Millisecond, "every campaign recipient delivered")

	for _, id := range ids {
		s.waitFor(t, id, mms.StatusDelivered)
	}
	job := s.waitFor(t, scheduled, mms.StatusCanceled)
	require.Nil(t, job["sinch_batch_id"])
	h.waitStatuses(t, ids[0], "queued>sending", "sending>sent", "sent>delivered")

	// Each batch at Sinch once: 2 sends and 5 campaign jobs.
	batches := s.sim.Batches()
	require.Len(t, batches, 7)
	st := s.sim.Stats()
	require.Zero(t, st.Duplicates, "jobs sent more than once: %v", st.ByClientReference)

	// The rate limiter kept its state on this deployment.
	n, err := s.rdb.Exists(context.Background(), "{mmsgate:rate}:plan").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the shared plan limit was used")
}

// TestRedisCluster runs everything on a three-primary Redis Cluster; then,
// with one primary down, the API is no longer ready.
func TestRedisCluster(t *testing.T) {
	rs := redistest.StartCluster(t)
	exerciseEverything(t, rs)
	s := setupOn(t, rs, options{noWorker: true})
	require.Equal(t, http.StatusOK, s.do(t, http.MethodGet, "/readyz", "", "").status)
	rs.StopNode(t, 2)
	r := s.do(t, http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.status, "%v", r.body)
}

// TestRedisSentinel runs everything on a Sentinel-managed primary.
func TestRedisSentinel(t *testing.T) {
	exerciseEverything(t, redistest.StartSentinel(t))
}

// TestSentinelFailoverLosesNoJob fails the primary over to its replica
// while clients keep sending: every job answered 202, before, during and
// after, is sent to Sinch exactly once; requests that met the failover may
// get 503 (and were not accepted); sending goes on on the new primary.
func TestSentinelFailoverLosesNoJob(t *testing.T) {
	rs := redistest.StartSentinel(t)
	s := setupOn(t, rs, options{noWorker: true})
	s.startWorkers(t, 2, nil)

	var (
		mu       sync.Mutex
		accepted []string
		refused  int
		after    int // accepted once the failover was over
	)
	failedOver := make(chan struct{})
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for c := range 3 {
		clients.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := `{"to":"` + number(c*1000+i) + `","media_url":"https://cdn.example.com/a.jpg"}`
				r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", body)
				mu.Lock()
				switch r.status {
				case http.StatusAccepted:
					accepted = append(accepted, r.body["job_id"].(string))
					select {
					case <-failedOver:
						after++
					default:
					}
				case http.StatusServiceUnavailable:
					refused++
				default:
					t.Errorf("unexpected answer %d: %v", r.status, r.body)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	time.Sleep(700 * time.Millisecond)
	start := time.Now()
	newPrimary := rs.Failover(t)
	t.Logf("failover to %s took %s", newPrimary, time.Since(start).Round(time.Millisecond))
	close(failedOver)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return after >= 20
	}, 20*time.Second, 20*time.Millisecond, "the API takes jobs again on the new primary %s", newPrimary)
	close(stop)
	clients.Wait()

	t.Logf("accepted %d jobs (%d after the failover), %d requests refused with 503", len(accepted), after, refused)
	// A task a worker had taken when the primary went, or whose outcome it
	// could not record then, runs again once asynq's lease on it has run
	// out (30 s) and its recovery pass (every minute) has come: hence the
	// long wait.
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range accepted {
		var job map[string]any
		for time.Now().Before(deadline) {
			job = s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
			if job["status"] == string(mms.StatusSent) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if job["status"] != string(mms.StatusSent) {
			info, err := s.inspector(t).GetTaskInfo("mms:normal", id)
			t.Fatalf("job %s not sent within 2 minutes: %v; its task: %+v (%v)", id, job, info, err)
		}
		require.Equal(t, 1, s.sim.CountByClientReference(id), "job %s", id)
	}
	require.Len(t, s.sim.Batches(), len(accepted), "nothing sent that was not accepted")
}
