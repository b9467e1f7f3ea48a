package app_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// hook is a client's callback endpoint. It refuses the first refuse
// deliveries of each event with a 503, checks every signature the way the
// README tells clients to, and keeps the events it took.
type hook struct {
	t      *testing.T
	refuse int
	block  chan struct{} // when set, every request waits on it

	mu       sync.Mutex
	tries    map[string]int            // event ID -> deliveries seen
	taken    map[string]map[string]any // event ID -> body, once answered 200
	badSig   int
	order    []string // event IDs in the order taken
	requests int
}

func newHook(t *testing.T, refuse int) (*hook, string) {
	h := &hook{t: t, refuse: refuse, tries: map[string]int{}, taken: map[string]map[string]any{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/mms-events"
}

// signatureOK recomputes Mmsgate-Signature from the README's recipe:
// hex HMAC-SHA256 of "<Mmsgate-Timestamp>.<body>", prefixed "v1=".
func signatureOK(r *http.Request, body []byte) bool {
	ts := r.Header.Get("Mmsgate-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(clientCallbackSecret))
	mac.Write([]byte(ts + "." + string(body)))
	return hmac.Equal([]byte(r.Header.Get("Mmsgate-Signature")), []byte("v1="+hex.EncodeToString(mac.Sum(nil))))
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.block != nil {
		select {
		case <-h.block:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if r.Method != http.MethodPost || r.URL.Path != "/mms-events" || !signatureOK(r, body) {
		h.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("Mmsgate-Event-Id")
	h.tries[id]++
	if h.tries[id] <= h.refuse {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev["event_id"] != id {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, dup := h.taken[id]; !dup {
		h.order = append(h.order, id)
	}
	h.taken[id] = ev
	w.WriteHeader(http.StatusNoContent)
}

// statuses lists, by sequence number, the statuses of job id's events
// taken so far.
func (h *hook) statuses(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for seq := 1; ; seq++ {
		ev, ok := h.taken[id+"-"+strconv.Itoa(seq)]
		if !ok {
			return out
		}
		job := ev["job"].(map[string]any)
		out = append(out, fmt.Sprintf("%v>%v", job["previous_status"], job["status"]))
	}
}

func (h *hook) waitStatuses(t *testing.T, id string, want ...string) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.Equal(h.statuses(id), want) }, 15*time.Second,
		20*time.Millisecond, "job %s: events taken %v, want %v", id, h.statuses(id), want)
}

// TestClientCallbacksRetriedUntilTaken: a client endpoint that refuses each
// event twice still gets every status change of a job that ends delivered,
// each verifiable with the documented signature, numbered in order, with
// the same event ID on every retry; the job shows nothing left pending.
func TestClientCallbacksRetriedUntilTaken(t *testing.T) {
	t.Parallel()
	h, url := newHook(t, 2)
	s := setup(t, options{clientCallbacks: true, callbacks: true,
		simReports: sinchsim.ReportSettings{Delay: 50 * time.Millisecond}})

	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg","reference":"order-1",`+
			`"callback_url":"`+url+`"}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	id := r.body["job_id"].(string)
	s.waitFor(t, id, mms.StatusDelivered)
	h.waitStatuses(t, id, "queued>sending", "sending>sent", "sent>delivered")

	h.mu.Lock()
	for seq := 1; seq <= 3; seq++ {
		ev := h.taken[id+"-"+strconv.Itoa(seq)]
		require.EqualValues(t, seq, ev["sequence"])
		require.Equal(t, "job.status_changed", ev["type"])
		job := ev["job"].(map[string]any)
		require.Equal(t, id, job["job_id"])
		require.Equal(t, "order-1", job["reference"])
		require.Equal(t, "/api/mms/jobs/"+id, job["status_url"])
		require.Equal(t, 3, h.tries[id+"-"+strconv.Itoa(seq)], "taken on the third delivery")
	}
	require.Zero(t, h.badSig)
	h.mu.Unlock()

	require.Eventually(t, func() bool {
		job := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
		cb, _ := job["callbacks"].(map[string]any)
		return job["callback_url"] == url && cb != nil && cb["pending"] == 0.0 && cb["failed"] == 0.0
	}, 5*time.Second, 20*time.Millisecond)
}

// TestClientCallbacksGiveUp: an endpoint that never takes an event gets it
// CLIENT_CALLBACK_MAX_ATTEMPTS times; then the event is counted failed on
// the job and its task archived for an operator to see.
func TestClientCallbacksGiveUp(t *testing.T) {
	t.Parallel()
	h, url := newHook(t, 1000)
	s := setup(t, options{clientCallbacks: true})
	id := s.send(t, `{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg","callback_url":"`+url+`"}`)
	s.waitFor(t, id, mms.StatusSent)
	require.Eventually(t, func() bool {
		job := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
		cb, _ := job["callbacks"].(map[string]any)
		return cb != nil && cb["failed"] == 2.0 && cb["pending"] == 0.0
	}, 20*time.Second, 50*time.Millisecond)
	h.mu.Lock()
	require.Equal(t, 6, h.tries[id+"-1"])
	require.Equal(t, 6, h.tries[id+"-2"])
	h.mu.Unlock()
	archived, err := s.inspector(t).ListArchivedTasks("mms:callbacks")
	require.NoError(t, err)
	require.Len(t, archived, 2)
}

// TestClientCallbacksNeverDelaySending: with every callback hanging, jobs
// are still sent at once: callbacks hold no worker slot a send needs.
func TestClientCallbacksNeverDelaySending(t *testing.T) {
	t.Parallel()
	h, url := newHook(t, 0)
	h.block = make(chan struct{})
	s := setup(t, options{clientCallbacks: true, noWorker: true})
	// Each callback hangs far longer than the test waits for the sends.
	s.startWorkers(t, 1, func(c *config.Worker) { c.ClientCallbackTimeout = time.Minute })
	t.Cleanup(func() {
		select {
		case <-h.block:
		default:
			close(h.block)
		}
	})
	var ids []string
	for i := range 12 { // three times the worker's concurrency
		ids = append(ids, s.send(t, `{"to":"`+number(i)+`","media_url":"https://cdn.example.com/a.jpg",`+
			`"callback_url":"`+url+`"}`))
	}
	for _, id := range ids {
		s.waitFor(t, id, mms.StatusSent)
	}
	close(h.block)
	for _, id := range ids {
		h.waitStatuses(t, id, "queued>sending", "sending>sent")
	}
}

// TestCampaignCallbacks: each job of a campaign posts its own changes to
// the campaign's callback URL, with the campaign's ID.
func TestCampaignCallbacks(t *testing.T) {
	t.Parallel()
	h, url := newHook(t, 0)
	s := setup(t, options{clientCallbacks: true, batchSize: 2})
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"recipients":["+12025550101","+12025550102","+12025550103"],"media_url":"https://cdn.example.com/a.jpg",`+
			`"callback_url":"`+url+`"}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	cid := r.body["campaign_id"].(string)
	s.waitCampaign(t, cid, "completed")
	view := s.do(t, http.MethodGet, "/api/mms/campaigns/"+cid, "", "").body
	require.Equal(t, url, view["callback_url"])
	jobs := s.do(t, http.MethodGet, "/api/mms/campaigns/"+cid+"/jobs", "", "").body["jobs"].([]any)
	require.Len(t, jobs, 2)
	for _, j := range jobs {
		id := j.(map[string]any)["job_id"].(string)
		h.waitStatuses(t, id, "queued>sending", "sending>sent")
		h.mu.Lock()
		require.Equal(t, cid, h.taken[id+"-2"]["job"].(map[string]any)["campaign_id"])
		h.mu.Unlock()
	}
}

// TestCallbackURLValidation: a callback_url is checked as a media URL is,
// with the field named, and nothing is enqueued; without a signing secret
// the server refuses callbacks altogether.
func TestCallbackURLValidation(t *testing.T) {
	t.Parallel()
	s := setup(t, options{clientCallbacks: true, noWorker: true})
	for _, c := range []struct{ url, msg string }{
		{"ftp://hooks.example.com/x", `scheme must be http or https, not "ftp"`},
		{"/relative", "must be an absolute http or https URL"},
		{"https://user:pw@hooks.example.com/x", "must not carry credentials"},
		{"http://10.0.0.7/x", "host 10.0.0.7 is not a public address"},
		{"http://169.254.169.254/latest", "host 169.254.169.254 is not a public address"},
		{"http://hooks.internal/x", `host "hooks.internal" is not a public DNS name`},
		{`https://hooks.example.com/\ud800`, "must not contain invalid escapes"},
	} {
		r := s.do(t, http.MethodPost, "/api/mms/send", "application/json",
			`{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg","callback_url":"`+c.url+`"}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, c.url)
		e := apiError(t, r)
		require.Equal(t, []string{"callback_url"}, fieldNames(t, e), c.url)
		require.Equal(t, c.msg, e["fields"].([]any)[0].(map[string]any)["message"], c.url)
	}
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"recipients":["+12025550101"],"media_url":"https://cdn.example.com/a.jpg","callback_url":"http://[::1]:9/x"}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"callback_url"}, fieldNames(t, apiError(t, r)))

	off := setup(t, options{noWorker: true})
	r = off.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg",`+
			`"callback_url":"https://hooks.example.com/x"}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"callback_url"}, fieldNames(t, apiError(t, r)))

	for _, st := range []*stack{s, off} {
		queues, err := st.inspector(t).Queues()
		require.NoError(t, err)
		require.Empty(t, queues, "nothing enqueued")
	}
}

// TestCancelQueuesAFlush: a cancel of a job with callbacks queues its
// event at once and, as a safety net should the API die in between, a
// flush of the job's outbox a while later.
func TestCancelQueuesAFlush(t *testing.T) {
	t.Parallel()
	s := setup(t, options{clientCallbacks: true, noWorker: true})
	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":"+12025550123","media_url":"https://cdn.example.com/a.jpg",`+
			`"callback_url":"https://hooks.example.com/x",`+
			`"send_at":"`+time.Now().Add(time.Hour).Format(time.RFC3339)+`"}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	id := r.body["job_id"].(string)
	require.Equal(t, http.StatusOK, s.do(t, http.MethodDelete, "/api/mms/jobs/"+id, "", "").status)

	insp := s.inspector(t)
	pending, err := insp.ListPendingTasks("mms:callbacks")
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.Equal(t, "callback:deliver", pending[0].Type)
	later, err := insp.ListScheduledTasks("mms:callbacks")
	require.NoError(t, err)
	require.Len(t, later, 1)
	require.Equal(t, "callback:flush", later[0].Type)
	require.Contains(t, string(later[0].Payload), id)
}
