package app_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestAPIMetrics: the API's /metrics counts requests by route pattern and
// status, with latency; jobs accepted and canceled by queue; delivery
// reports by status; and the queues' sizes, read from Redis. No ID or
// phone number becomes a label.
func TestAPIMetrics(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true, reports: true})
	id := s.send(t, goodBody)
	s.send(t, `{"to":"+12025550124","media_url":"https://cdn.example.com/a.jpg","priority":"bulk"}`)
	require.Equal(t, http.StatusOK, s.do(t, http.MethodDelete, "/api/mms/jobs/"+id, "", "").status)
	require.Equal(t, http.StatusNotFound, s.do(t, http.MethodGet, "/api/mms/jobs/"+mms.NewJobID(), "", "").status)
	require.Equal(t, http.StatusNotFound, s.do(t, http.MethodGet, "/no/such/+12025550123", "", "").status)

	text := scrape(t, s.url+"/metrics")
	for _, want := range []string{
		`mmsgate_http_requests_total{method="POST",route="/api/mms/send",status="202"} 2`,
		`mmsgate_http_requests_total{method="DELETE",route="/api/mms/jobs/:id",status="200"} 1`,
		`mmsgate_http_requests_total{method="GET",route="/api/mms/jobs/:id",status="404"} 1`,
		`mmsgate_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`mmsgate_http_request_duration_seconds_count{method="POST",route="/api/mms/send"} 2`,
		`mmsgate_jobs_accepted_total{queue="mms:normal"} 1`,
		`mmsgate_jobs_accepted_total{queue="mms:bulk"} 1`,
		`mmsgate_jobs_canceled_total{queue="mms:normal",reason="operator"} 1`,
		`mmsgate_queue_tasks{queue="mms:bulk",state="pending"} 1`,
		`mmsgate_queue_tasks{queue="mms:normal",state="pending"} 0`,
		`mmsgate_queue_tasks{queue="mms:callbacks",state="pending"} 0`,
		`mmsgate_queue_latency_seconds{queue="mms:bulk"}`,
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, id)
	require.NotContains(t, text, "2025550123")
	require.NotContains(t, text, "2025550124")

	// Reports: a report for a job Sinch holds is counted by its status.
	s2 := setup(t, options{reports: true})
	id2 := s2.send(t, `{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg"}`)
	s2.waitFor(t, id2, mms.StatusSent)
	r := s2.postReport(t, recipientReport(id2, "+12025550123", "Delivered", 0))
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.Contains(t, scrape(t, s2.url+"/metrics"), `mmsgate_delivery_reports_total{status="Delivered"} 1`)
}

// TestWorkerJobMetrics: the worker counts jobs sent, retried and failed by
// queue and reason.
func TestWorkerJobMetrics(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	s := setup(t, options{metricsAddr: addr, maxAttempts: 3})
	s.sim.Inject(sinchsim.Fault{Status: 503})
	sent := s.send(t, goodBody)
	s.waitFor(t, sent, mms.StatusSent)
	s.sim.Inject(sinchsim.Fault{Status: 400, Code: "syntax_invalid_parameter_format", Text: "bad"})
	failed := s.send(t, `{"to":"+12025550124","media_url":"https://cdn.example.com/a.jpg","priority":"high"}`)
	s.waitFor(t, failed, mms.StatusFailed)

	var text string
	require.Eventually(t, func() bool {
		text = scrape(t, "http://"+addr+"/metrics")
		return len(text) > 0
	}, 5*time.Second, 50*time.Millisecond)
	for _, want := range []string{
		`mmsgate_jobs_sent_total{queue="mms:normal"} 1`,
		`mmsgate_job_retries_total{queue="mms:normal",reason="service_unavailable"} 1`,
		`mmsgate_jobs_failed_total{queue="mms:high",reason="syntax_invalid_parameter_format"} 1`,
	} {
		require.Contains(t, text, want)
	}
}
