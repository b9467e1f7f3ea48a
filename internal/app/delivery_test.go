package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// deliveryOf maps each recipient of a job view to its reported status.
func deliveryOf(job map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := job["delivery"].([]any)
	for _, d := range list {
		m := d.(map[string]any)
		out[m["recipient"].(string)] = m["status"].(string)
	}
	return out
}

// TestDeliveryFromSimulator runs delivery reports the whole way: the worker
// asks for them, the simulator sends them to the API's endpoint, signed.
// One recipient fails, so the job ends partially delivered.
func TestDeliveryFromSimulator(t *testing.T) {
	s := setup(t, options{reports: true, callbacks: true, simReports: sinchsim.ReportSettings{
		Delay: 100 * time.Millisecond, WebhookSecret: webhookSecret,
		Outcomes: map[string]sinchsim.Outcome{"+14155552671": {Status: "Failed", Code: 417}},
	}})
	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusPartiallyDelivered)
	require.Equal(t, map[string]string{"+12025550123": "Delivered", "+14155552671": "Failed"}, deliveryOf(job))
	b := s.sim.Batches()
	require.Len(t, b, 1)
	require.Equal(t, "per_recipient_final", b[0].DeliveryReport)
	require.True(t, strings.HasSuffix(b[0].CallbackURL, "/sinch/reports/"+reportSecret))
}

// TestDeliveryReportsBeforeTheSendReturns: the simulator sends its reports,
// twice each and the intermediate one after the final, before it answers
// the batch's POST. They land all the same; the late batch ID is stored.
func TestDeliveryReportsBeforeTheSendReturns(t *testing.T) {
	s := setup(t, options{reports: true, callbacks: true, reportKind: "per_recipient",
		simReports: sinchsim.ReportSettings{Delay: time.Millisecond, BeforeCreated: true, Duplicate: true,
			OutOfOrder: true, WebhookSecret: webhookSecret}})
	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusDelivered)
	require.Equal(t, map[string]string{"+12025550123": "Delivered", "+14155552671": "Delivered"}, deliveryOf(job))
	require.NotNil(t, job["sinch_batch_id"], "the worker's record of the batch still landed")
	require.Equal(t, 1, s.sim.CountByClientReference(id))

	// Every callback was answered 2xx: nothing for Sinch to retry.
	require.Eventually(t, func() bool {
		cbs := s.sim.Callbacks()
		for _, cb := range cbs {
			if cb.Result != sinchsim.CallbackDelivered {
				return false
			}
		}
		return len(cbs) >= 8 // two recipients, two reports each, each twice
	}, 10*time.Second, 20*time.Millisecond, "%+v", s.sim.Callbacks())
}

// TestMediaFailureSkipsSinch: media that Sinch could not send fails the job
// with the check's reason, and Sinch is never called.
func TestMediaFailureSkipsSinch(t *testing.T) {
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>not a picture</html>"))
	}))
	t.Cleanup(media.Close)

	s := setup(t, options{noWorker: true, mediaAllow: "127.0.0.1"})
	s.startWorkers(t, 1, func(c *config.Worker) { c.MediaCheck = true })
	id := s.send(t, `{"to":"+12025550123","media_url":"`+media.URL+`/a.jpg"}`)
	job := s.waitFor(t, id, mms.StatusFailed)
	require.Equal(t, "media_content_type", job["last_error"].(map[string]any)["code"])
	require.Empty(t, s.sim.Batches(), "Sinch never called")
}
