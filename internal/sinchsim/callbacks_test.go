package sinchsim_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// receiver is a callback endpoint on 127.0.0.1 that records what it gets
// and answers the scripted statuses in turn, then 200.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	got     []received
	answers []int
}

// received is one request the receiver got.
type received struct {
	method, path string
	header       http.Header
	body         []byte
	at           time.Time
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	t.Helper()
	return startReceiver(t, nil, answers...)
}

// startReceiver starts a receiver. If serve is set, it answers each
// request, once recorded, instead of the scripted statuses.
func startReceiver(t *testing.T, serve http.HandlerFunc, answers ...int) *receiver {
	t.Helper()

	rc := &receiver{answers: answers}
	rc.srv = newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}

		rc.mu.Lock()
		rc.got = append(rc.got, received{
			method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now(),
		})
		status := http.StatusOK
		if len(rc.answers) > 0 {
			status, rc.answers = rc.answers[0], rc.answers[1:]
		}
		rc.mu.Unlock()

		if serve != nil {
			serve(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	return rc
}

// url is the callback URL to put in a batch.
func (rc *receiver) url() string { return rc.srv.URL + "/dr" }

// requests returns what the receiver got so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received{}, rc.got...)
}

// wait returns the requests once there are at least n.
func (rc *receiver) wait(t *testing.T, n int) []received {
	t.Helper()

	require.Eventually(t, func() bool { return len(rc.requests()) >= n },
		5*time.Second, 5*time.Millisecond, "want %d callbacks", n)
	return rc.requests()
}

// recipientReport decodes a recipient report and checks its JSON shape.
func (r received) recipientReport(t *testing.T) sinchsim.RecipientReport {
	t.Helper()

	var rep sinchsim.RecipientReport
	require.NoError(t, json.Unmarshal(r.body, &rep), "body: %s", r.body)
	return rep
}

// waitCallbacks returns the simulator's records once n of them are done.
func waitCallbacks(t *testing.T, sim *sinchsim.Server, n int) []sinchsim.Callback {
	t.Helper()

	done := func() bool {
		cbs := sim.Callbacks()
		if len(cbs) < n {
			return false
		}
		for _, c := range cbs {
			if c.Result == sinchsim.CallbackPending {
				return false
			}
		}
		return true
	}
	require.Eventually(t, done, 5*time.Second, 5*time.Millisecond, "want %d finished callbacks", n)
	return sim.Callbacks()
}

// drRequest returns a valid request for delivery reports of kind, sent to
// callback, for the recipients to.
func drRequest(kind, callback string, to ...any) map[string]any {
	req := withRef("job-dr")
	req["delivery_report"] = kind
	req["callback_url"] = callback
	req["to"] = to
	return req
}

// fast are report settings for tests: short delays all round.
func fast() sinchsim.ReportSettings {
	return sinchsim.ReportSettings{Delay: 20 * time.Millisecond, RetryDelay: 10 * time.Millisecond}
}

func TestPerRecipientCallbacks(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.Delay = 60 * time.Millisecond
	rs.Outcomes = map[string]sinchsim.Outcome{"*13": {Status: sinchsim.StatusFailed, Code: 417}}
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t)

	resp := e.post(t, drRequest("per_recipient", rc.url(), "+12025550123", "+1 (202) 555-0113"))
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	b := resp.batch(t)

	// The delay counts from created_at, which is cut to the millisecond.
	got := rc.wait(t, 4)
	require.False(t, got[0].at.Before(b.CreatedAt.Add(rs.Delay)), "callbacks wait for the delay")

	want := []struct {
		recipient, status string
		code              int
	}{
		{"12025550123", "Dispatched", 401},
		{"12025550123", "Delivered", 0},
		{"12025550113", "Dispatched", 401},
		{"12025550113", "Failed", 417},
	}
	for i, w := range want {
		r := got[i]
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/dr", r.path)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Empty(t, r.header.Get("x-sinch-webhook-signature"), "no secret, no signature")

		var fields map[string]any
		require.NoError(t, json.Unmarshal(r.body, &fields))
		require.ElementsMatch(t, []string{
			"type", "batch_id", "recipient", "code", "status", "at", "operator_status_at", "client_reference",
		}, keys(fields))
		require.Regexp(t, timePattern, fields["at"])
		require.Regexp(t, timePattern, fields["operator_status_at"])

		rep := r.recipientReport(t)
		require.Equal(t, "recipient_delivery_report_mms", rep.Type, "callback %d", i)
		require.Equal(t, b.ID, rep.BatchID)
		require.Equal(t, w.recipient, rep.Recipient, "digits without +")
		require.Equal(t, w.status, rep.Status, "callback %d", i)
		require.Equal(t, w.code, rep.Code, "callback %d", i)
		require.Equal(t, "job-dr", rep.ClientReference)
		if w.status == "Dispatched" {
			require.True(t, rep.At.Before(got[i+1].recipientReport(t).At), "dispatched before final")
		} else {
			require.Equal(t, b.CreatedAt.Add(rs.Delay), rep.At)
		}
	}

	cbs := waitCallbacks(t, e.sim, 4)
	for i, c := range cbs {
		require.Equal(t, i+1, c.Seq)
		require.Equal(t, sinchsim.CallbackDelivered, c.Result)
		require.Equal(t, b.ID, c.BatchID)
		require.Equal(t, want[i].status, c.Status)
		require.Equal(t, want[i].code, c.Code)
		require.Equal(t, 1, c.Copy)
		require.Equal(t, rc.url(), c.URL)
		require.JSONEq(t, string(got[i].body), string(c.Body))
		require.Len(t, c.Attempts, 1)
		require.Equal(t, http.StatusOK, c.Attempts[0].Status)
		require.Empty(t, c.Attempts[0].Error)
	}

	time.Sleep(50 * time.Millisecond)
	require.Len(t, rc.requests(), 4, "nothing more is sent")
}

func TestPerRecipientFinalCallbacks(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.Default = sinchsim.Outcome{Status: sinchsim.StatusDelivered, Code: 0}
	rs.Outcomes = map[string]sinchsim.Outcome{
		"*13":           {Status: sinchsim.StatusFailed, Code: 417},
		"*213":          {Status: sinchsim.StatusRejected, Code: 415}, // longer suffix wins
		"+1202555 0313": {Status: sinchsim.StatusExpired, Code: 406},  // exact number wins
	}
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t)

	to := []any{"+12025550100", "0012025550113", "12025550213", "+12025550313"}
	resp := e.post(t, drRequest("per_recipient_final", rc.url(), to...))
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)

	got := rc.wait(t, 4)
	want := [][3]any{
		{"12025550100", "Delivered", 0},
		{"12025550113", "Failed", 417},
		{"12025550213", "Rejected", 415},
		{"12025550313", "Expired", 406},
	}
	for i, w := range want {
		rep := got[i].recipientReport(t)
		require.Equal(t, w, [3]any{rep.Recipient, rep.Status, rep.Code})
	}

	time.Sleep(50 * time.Millisecond)
	require.Len(t, rc.requests(), 4, "no intermediate reports")
}

func TestBatchReportCallbacks(t *testing.T) {
	t.Parallel()

	for _, kind := range []string{"summary", "full"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()

			rs := fast()
			rs.Outcomes = map[string]sinchsim.Outcome{"*13": {Status: sinchsim.StatusFailed, Code: 417}}
			e := setup(t, sinchsim.Config{Reports: rs})
			rc := newReceiver(t)

			to := []any{"+12025550100", "+12025550113", "+12025550101", "+12025550100"} // one twice
			resp := e.post(t, drRequest(kind, rc.url(), to...))
			require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
			b := resp.batch(t)

			got := rc.wait(t, 1)
			require.Equal(t, "application/json", got[0].header.Get("Content-Type"))

			want := `{
				"type": "delivery_report_mms",
				"batch_id": "` + b.ID + `",
				"total_message_count": 3,
				"client_reference": "job-dr",
				"statuses": [
					{"code": 0, "status": "Delivered", "count": 2, "recipients": ["12025550100", "12025550101"]},
					{"code": 417, "status": "Failed", "count": 1, "recipients": ["12025550113"]}
				]
			}`
			if kind == "summary" {
				want = `{
					"type": "delivery_report_mms",
					"batch_id": "` + b.ID + `",
					"total_message_count": 3,
					"client_reference": "job-dr",
					"statuses": [
						{"code": 0, "status": "Delivered", "count": 2},
						{"code": 417, "status": "Failed", "count": 1}
					]
				}`
			}
			require.JSONEq(t, want, string(got[0].body))

			cbs := waitCallbacks(t, e.sim, 1)
			require.Len(t, cbs, 1)
			require.Equal(t, sinchsim.TypeBatchReport, cbs[0].Type)
			require.Empty(t, cbs[0].Recipient)

			time.Sleep(50 * time.Millisecond)
			require.Len(t, rc.requests(), 1, "one report per batch")
		})
	}
}

func TestNoCallbacksWithoutURLOrReport(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{Reports: fast()})
	rc := newReceiver(t)

	none := drRequest("none", rc.url(), "+12025550100")
	require.Equal(t, http.StatusCreated, e.post(t, none).status)

	noURL := drRequest("per_recipient", "", "+12025550100")
	delete(noURL, "callback_url")
	require.Equal(t, http.StatusCreated, e.post(t, noURL).status)

	time.Sleep(100 * time.Millisecond)
	require.Empty(t, rc.requests())
	require.Empty(t, e.sim.Callbacks())
}

func TestDuplicateCallbacks(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.Duplicate = true
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t)

	resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100", "+12025550101"))
	require.Equal(t, http.StatusCreated, resp.status)

	got := rc.wait(t, 4)
	require.Equal(t, got[0].body, got[1].body, "each report twice in a row")
	require.Equal(t, got[2].body, got[3].body)
	require.NotEqual(t, got[0].body, got[2].body)
	require.Equal(t, "12025550100", got[0].recipientReport(t).Recipient)
	require.Equal(t, "12025550101", got[2].recipientReport(t).Recipient)

	cbs := waitCallbacks(t, e.sim, 4)
	require.Equal(t, []int{1, 2, 1, 2}, []int{cbs[0].Copy, cbs[1].Copy, cbs[2].Copy, cbs[3].Copy})
	for _, c := range cbs {
		require.Equal(t, sinchsim.CallbackDelivered, c.Result)
	}

	time.Sleep(50 * time.Millisecond)
	require.Len(t, rc.requests(), 4)
}

func TestOutOfOrderCallbacks(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.OutOfOrder = true
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t)

	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient", rc.url(), "+12025550100")).status)

	got := rc.wait(t, 2)
	final, dispatched := got[0].recipientReport(t), got[1].recipientReport(t)
	require.Equal(t, "Delivered", final.Status)
	require.Equal(t, "Dispatched", dispatched.Status, "the intermediate report comes last")
	require.Equal(t, 401, dispatched.Code)
	require.True(t, dispatched.At.Before(final.At), "its own time is still the earlier one")
}

func TestCallbacksBeforeCreated(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.BeforeCreated = true
	rs.Delay = time.Hour // not waited for
	e := setup(t, sinchsim.Config{Reports: rs})

	// The receiver checks, while it handles the report, that the batch is
	// stored but its POST has not been answered yet.
	postDone := make(chan struct{})
	var sawBatch, beforeAnswer atomic.Bool
	rc := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		sawBatch.Store(len(e.sim.Batches()) == 1)
		select {
		case <-postDone:
		default:
			beforeAnswer.Store(true)
		}
		w.WriteHeader(http.StatusNoContent)
	})

	start := time.Now()
	resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100"))
	close(postDone)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	require.Less(t, time.Since(start), 2*time.Second)

	// No waiting: the report is already there.
	got := rc.requests()
	require.Len(t, got, 1)
	require.True(t, sawBatch.Load())
	require.True(t, beforeAnswer.Load())
	rep := got[0].recipientReport(t)
	require.Equal(t, resp.batch(t).ID, rep.BatchID)
	require.Equal(t, "Delivered", rep.Status)
	require.Equal(t, resp.batch(t).CreatedAt, rep.At)

	// Polling agrees at once.
	poll := e.get(t, "/batches/"+rep.BatchID+"/delivery_report/12025550100")
	require.Equal(t, http.StatusOK, poll.status)
	require.Equal(t, "Delivered", decode[sinchsim.RecipientReport](t, poll.body).Status)
}

func TestCallbackBeforeCreatedWithLostAnswer(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.BeforeCreated = true
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t)
	e.sim.Inject(sinchsim.Fault{Status: http.StatusServiceUnavailable, AfterCreate: true})

	resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100"))
	require.Equal(t, http.StatusServiceUnavailable, resp.status)

	// The client never saw the batch id, yet its report came.
	got := rc.requests()
	require.Len(t, got, 1)
	require.Equal(t, e.sim.Batches()[0].ID, got[0].recipientReport(t).BatchID)
}

func TestCallbackRetries(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.RetryDelay = 30 * time.Millisecond
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusOK)

	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100")).status)

	got := rc.wait(t, 3)
	require.Equal(t, got[0].body, got[1].body)
	require.Equal(t, got[0].body, got[2].body)
	require.GreaterOrEqual(t, got[1].at.Sub(got[0].at), rs.RetryDelay, "first backoff")
	require.GreaterOrEqual(t, got[2].at.Sub(got[1].at), 2*rs.RetryDelay, "doubled")

	cbs := waitCallbacks(t, e.sim, 1)
	require.Len(t, cbs, 1)
	require.Equal(t, sinchsim.CallbackDelivered, cbs[0].Result)
	require.Equal(t, []int{503, 429, 200}, attemptStatuses(cbs[0]))

	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc.requests(), 3)
}

func TestCallbackGivesUp(t *testing.T) {
	t.Parallel()

	rs := fast()
	rs.MaxAttempts = 3
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t, 500, 502, 504, 200)

	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100")).status)

	cbs := waitCallbacks(t, e.sim, 1)
	require.Equal(t, sinchsim.CallbackFailed, cbs[0].Result)
	require.Equal(t, []int{500, 502, 504}, attemptStatuses(cbs[0]))

	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc.requests(), 3, "no attempt beyond MaxAttempts")
}

func TestCallbackRetriesWithoutAnswer(t *testing.T) {
	t.Parallel()

	// A loopback port with nothing listening: every attempt is refused by
	// the kernel, which counts as no answer and is retried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String() + "/dr"
	require.NoError(t, ln.Close())

	rs := fast()
	rs.MaxAttempts = 2
	e := setup(t, sinchsim.Config{Reports: rs})
	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", dead, "+12025550100")).status)

	cbs := waitCallbacks(t, e.sim, 1)
	require.Equal(t, sinchsim.CallbackFailed, cbs[0].Result)
	require.Len(t, cbs[0].Attempts, 2)
	for _, a := range cbs[0].Attempts {
		require.Zero(t, a.Status)
		require.NotEmpty(t, a.Error)
	}
}

func TestCallbackDroppedOn4xx(t *testing.T) {
	t.Parallel()

	for _, status := range []int{400, 401, 404, 410, 422, 307} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()

			e := setup(t, sinchsim.Config{Reports: fast()})
			rc := newReceiver(t, status)
			if status == http.StatusTemporaryRedirect {
				// A redirect off loopback is not followed.
				rc = startReceiver(t, http.RedirectHandler("http://192.0.2.1/dr", status).ServeHTTP)
			}

			resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100"))
			require.Equal(t, http.StatusCreated, resp.status)

			cbs := waitCallbacks(t, e.sim, 1)
			require.Equal(t, sinchsim.CallbackDropped, cbs[0].Result)
			require.Equal(t, []int{status}, attemptStatuses(cbs[0]))

			time.Sleep(60 * time.Millisecond)
			require.Len(t, e.sim.Callbacks()[0].Attempts, 1, "not retried")
		})
	}
}

func TestCallbackSignature(t *testing.T) {
	t.Parallel()

	const secret = "whsec-test"
	rs := fast()
	rs.WebhookSecret = secret
	e := setup(t, sinchsim.Config{Reports: rs})
	rc := newReceiver(t, http.StatusServiceUnavailable) // a retry is signed afresh

	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100")).status)

	got := rc.wait(t, 2)
	nonces := map[string]bool{}
	for _, r := range got {
		sig := r.header.Get("X-Sinch-Webhook-Signature")
		nonce := r.header.Get("X-Sinch-Webhook-Signature-Nonce")
		ts := r.header.Get("X-Sinch-Webhook-Signature-Timestamp")
		require.NotEmpty(t, sig)
		require.NotEmpty(t, nonce)
		nonces[nonce] = true

		sec, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err, "timestamp in Unix seconds")
		require.InDelta(t, time.Now().Unix(), sec, 5)

		// The documented formula, computed here on its own.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(string(r.body) + "." + nonce + "." + ts))
		want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
		require.Equal(t, want, sig)
		require.Equal(t, want, sinchsim.Signature(secret, r.body, nonce, ts))

		// Another secret does not verify.
		other := hmac.New(sha256.New, []byte("wrong"))
		other.Write([]byte(string(r.body) + "." + nonce + "." + ts))
		require.NotEqual(t, base64.StdEncoding.EncodeToString(other.Sum(nil)), sig)
	}
	require.Len(t, nonces, 2, "a fresh nonce per attempt")
}

func TestCallbackRefusedOffLoopback(t *testing.T) {
	t.Parallel()

	// A live receiver on 127.0.0.1: a URL naming it by "localhost" or
	// 0.0.0.0 would reach it if the simulator dialed.
	rc := newReceiver(t)
	_, port, err := net.SplitHostPort(rc.srv.Listener.Addr().String())
	require.NoError(t, err)

	urls := []string{
		"http://192.0.2.1/cb",
		"http://localhost:" + port + "/dr",
		"http://0.0.0.0:" + port + "/dr",
		"http://[2001:db8::1]/cb",
		"http://[::ffff:192.0.2.1]/cb",
		"https://hooks.example.com/dr",
	}

	var mu sync.Mutex
	var hooked []sinchsim.Callback
	rs := fast()
	e := setup(t, sinchsim.Config{Reports: rs, OnCallback: func(c sinchsim.Callback) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, c)
	}})

	start := time.Now()
	for _, u := range urls {
		require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient", u, "+12025550100")).status, u)
	}

	// Two reports (Dispatched, Delivered) per batch, all refused.
	cbs := waitCallbacks(t, e.sim, 2*len(urls))
	// Well under the 5 s attempt timeout that a dial into the void would
	// have used up.
	require.Less(t, time.Since(start), 3*time.Second, "refusals take no network time")
	require.Len(t, cbs, 2*len(urls))
	for _, c := range cbs {
		require.Equal(t, sinchsim.CallbackRefused, c.Result, c.URL)
		require.NotEmpty(t, c.Reason, c.URL)
		require.Empty(t, c.Attempts, "nothing is dialed: %s", c.URL)
		require.Contains(t, urls, c.URL)
	}
	require.Empty(t, rc.requests())

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hooked) == 2*len(urls)
	}, time.Second, 5*time.Millisecond, "OnCallback tells of every refusal")
}

func TestResetAndCloseStopCallbacks(t *testing.T) {
	t.Parallel()

	long := fast()
	long.Delay = time.Hour
	e := setup(t, sinchsim.Config{Reports: long})
	rc := newReceiver(t)

	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100")).status)
	e.sim.Reset()

	// After Reset, new batches get their callbacks again.
	e.sim.SetReports(fast())
	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550101")).status)
	got := rc.wait(t, 1)
	require.Equal(t, "12025550101", got[0].recipientReport(t).Recipient)

	// Close drops the ones still waiting, and returns once all is quiet;
	// batches created after it get no callbacks.
	e.sim.SetReports(long)
	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550102")).status)
	e.sim.Close()
	e.sim.SetReports(fast())
	require.Equal(t, http.StatusCreated, e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550103")).status)

	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc.requests(), 1)
}

// attemptStatuses returns the answer status of each attempt of c.
func attemptStatuses(c sinchsim.Callback) []int {
	out := make([]int, len(c.Attempts))
	for i, a := range c.Attempts {
		out[i] = a.Status
	}
	return out
}

// decode decodes a JSON answer into a T.
func decode[T any](t *testing.T, body []byte) T {
	t.Helper()

	var v T
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return v
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
