package app_test

import (
	"net"
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
	s := setup(t, options{callbacks: true, simReports: sinchsim.ReportSettings{
		Delay:    100 * time.Millisecond,
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
	s := setup(t, options{callbacks: true, reportKind: "per_recipient",
		simReports: sinchsim.ReportSettings{Delay: time.Millisecond, BeforeCreated: true, Duplicate: true,
			OutOfOrder: true}})
	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusDelivered)
	require.Equal(t, map[string]string{"+12025550123": "Delivered", "+14155552671": "Delivered"}, deliveryOf(job))
	// The reports settle the job before the simulator's 201 reaches the
	// worker; the worker's record of the batch lands after.
	require.Eventually(t, func() bool {
		job = s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
		return job["sinch_batch_id"] != nil
	}, 10*time.Second, 10*time.Millisecond, "the worker's record of the batch still landed")
	require.Equal(t, string(mms.StatusDelivered), job["status"])
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

// TestEachMediaFailureKindSkipsSinch runs every kind of media failure
// through the real worker: each ends the job with its own reason and no
// Sinch call. One whose media server is merely down or slow holds the job
// (retrying, no attempt spent) instead of failing it.
func TestEachMediaFailureKindSkipsSinch(t *testing.T) {
	// A port nothing listens on, and one with a listener that is not on
	// the allow-list: both on loopback, so nothing leaves the machine.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	require.NoError(t, closed.Close())
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)

	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		file := func(ct string, n int) { fileHeaders(w, ct, n) }
		switch r.URL.Path {
		case "/page.html":
			file("text/html", 900)
		case "/gone.jpg":
			http.NotFound(w, r)
		case "/huge.mp4":
			file("video/mp4", 6<<20)
		case "/empty.gif":
			file("image/gif", 0)
		case "/nolength.jpg":
			w.Header().Set("Content-Type", "image/jpeg")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		case "/loop.jpg":
			http.Redirect(w, r, "/loop.jpg", http.StatusFound)
		case "/elsewhere.jpg":
			http.Redirect(w, r, other.URL+"/a.jpg", http.StatusFound)
		case "/down.jpg":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow.jpg":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	mediaAddr := strings.TrimPrefix(srv.URL, "http://")

	s := setup(t, options{noWorker: true, mediaAllow: mediaAddr + "," + closedAddr})
	s.startWorkers(t, 1, func(c *config.Worker) {
		c.MediaCheck = true
		c.MediaCheckTimeout = 300 * time.Millisecond
		c.RetryBaseDelay, c.RetryMaxDelay = time.Minute, time.Hour // a held job stays held for the test
	})
	for _, c := range []struct {
		url, reason string
		held        bool
	}{
		{srv.URL + "/page.html", "media_content_type", false},
		{srv.URL + "/gone.jpg", "media_http_status", false},
		{srv.URL + "/huge.mp4", "media_too_large", false},
		{srv.URL + "/empty.gif", "media_empty", false},
		{srv.URL + "/nolength.jpg", "media_no_content_length", false},
		{srv.URL + "/loop.jpg", "media_too_many_redirects", false},
		{srv.URL + "/elsewhere.jpg", "media_forbidden_address", false},
		{srv.URL + "/down.jpg", "media_http_status", true},
		{srv.URL + "/slow.jpg", "media_timeout", true},
		{"http://" + closedAddr + "/a.jpg", "media_unreachable", true},
	} {
		t.Run(c.reason+" "+c.url[strings.LastIndex(c.url, "/"):], func(t *testing.T) {
			id := s.send(t, `{"to":"+12025550123","media_url":"`+c.url+`"}`)
			var job map[string]any
			if c.held {
				require.Eventually(t, func() bool {
					job = s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
					return job["status"] == string(mms.StatusRetrying)
				}, 10*time.Second, 20*time.Millisecond)
				require.EqualValues(t, 0, job["attempts"], "waiting on the media server spends no attempt")
			} else {
				job = s.waitFor(t, id, mms.StatusFailed)
			}
			require.Equal(t, c.reason, job["last_error"].(map[string]any)["code"], "%v", job["last_error"])
			require.Zero(t, s.sim.CountByClientReference(id), "Sinch never called")
		})
	}
	require.Empty(t, s.sim.Batches())
}

// TestJobFailedByReportsIsNeverRetried: the reports fail the job while the
// worker still waits for the batch's 201. A retry then, with the task still
// running, and a retry after the worker recorded the batch are both
// refused, and neither changes the job: Sinch holds its batch.
func TestJobFailedByReportsIsNeverRetried(t *testing.T) {
	s := setup(t, options{callbacks: true,
		simReports: sinchsim.ReportSettings{Delay: time.Millisecond, BeforeCreated: true,
			Default: sinchsim.Outcome{Status: sinchsim.StatusFailed, Code: 417}}})
	s.sim.Inject(sinchsim.Fault{Hang: 2 * time.Second, AfterCreate: true})
	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusFailed)
	require.Nil(t, job["sinch_batch_id"], "the 201 has not reached the worker yet")
	history := len(job["history"].([]any))

	r := s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusConflict, r.status, "%v", r.body)
	require.Equal(t, "not_retryable", r.body["error"].(map[string]any)["code"])

	require.Eventually(t, func() bool {
		job = s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
		return job["sinch_batch_id"] != nil
	}, 10*time.Second, 20*time.Millisecond, "the worker's record of the batch lands")
	r = s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusConflict, r.status, "%v", r.body)

	job = s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
	require.Equal(t, string(mms.StatusFailed), job["status"])
	require.Len(t, job["history"], history, "the refused retries left no trace")
	require.Equal(t, 1, s.sim.CountByClientReference(id))
}
