package callback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
)

const secret = "callback-secret-0123456789"

// TestSignatureAsDocumented computes the signature the way the README tells
// clients to, independently of Sign, and checks Verify's refusals.
func TestSignatureAsDocumented(t *testing.T) {
	body := []byte(`{"event_id":"x-1"}`)
	ts := int64(1796380800)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("1796380800." + string(body)))
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	require.Equal(t, want, Sign(secret, ts, body))

	now := time.Unix(ts, 0).Add(30 * time.Second)
	require.NoError(t, Verify(secret, "1796380800", want, body, now, 5*time.Minute))
	require.NoError(t, Verify(secret, "1796380800", "v1=00,"+want, body, now, 5*time.Minute),
		"any of several signatures may match")
	require.Error(t, Verify(secret, "1796380800", want, []byte(`{"event_id":"x-2"}`), now, 5*time.Minute))
	require.Error(t, Verify("another-secret-0123456", "1796380800", want, body, now, 5*time.Minute))
	require.Error(t, Verify(secret, "1796380801", want, body, now, 5*time.Minute), "the timestamp is signed")
	require.Error(t, Verify(secret, "1796380800", want, body, now.Add(time.Hour), 5*time.Minute), "too old")
	require.Error(t, Verify(secret, "soon", want, body, now, 5*time.Minute))
}

// receiver is a client's callback endpoint: it answers each request with
// the next status of its script (200 once the script runs out).
type receiver struct {
	mu      sync.Mutex
	script  []int
	got     []*http.Request
	bodies  [][]byte
	handler func(w http.ResponseWriter, r *http.Request) // overrides the script
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, r)
	rc.bodies = append(rc.bodies, b)
	code := http.StatusOK
	if len(rc.script) > 0 {
		code, rc.script = rc.script[0], rc.script[1:]
	}
	h := rc.handler
	rc.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.WriteHeader(code)
}

type fixture struct {
	store *jobstore.Store
	d     *Deliverer
	rc    *receiver
	url   string
}

func setup(t *testing.T, allow ...string) *fixture {
	t.Helper()
	rs := redistest.Start(t)
	store := jobstore.New(rs.Client(t), time.Hour)
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	if allow == nil {
		allow = []string{"127.0.0.1"}
	}
	al, err := media.ParseAllowList(allow)
	require.NoError(t, err)
	d := NewDeliverer(store, Config{Secret: secret, Timeout: time.Second, Allow: al}, zerolog.Nop())
	return &fixture{store: store, d: d, rc: rc, url: srv.URL + "/hooks/mms"}
}

// sentJob creates a job with a callback to url and moves it to sent: two
// events wait, sending (1) and sent (2).
func (f *fixture) sentJob(t *testing.T, url string) *mms.Job {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	j := &mms.Job{ID: mms.NewJobID(), Status: mms.StatusQueued, Priority: mms.PriorityNormal, Reference: "r-9",
		Message: mms.Message{To: []string{"+12025550123"}, MediaURL: "https://cdn.example.com/a.jpg",
			ExpireAt: now.Add(time.Hour)},
		MaxAttempts: 3, CreatedAt: now, UpdatedAt: now, CallbackURL: url}
	require.NoError(t, f.store.Create(ctx, j))
	_, err := f.store.Begin(ctx, j.ID)
	require.NoError(t, err)
	_, err = f.store.Finish(ctx, j.ID, jobstore.Outcome{Status: mms.StatusSent, BatchID: "batch-1", Recipients: 1})
	require.NoError(t, err)
	return j
}

func task(t *testing.T, id string, seq int64) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(payload{JobID: id, Seq: seq})
	require.NoError(t, err)
	return asynq.NewTask(TypeDeliver, b)
}

func (f *fixture) pending(t *testing.T, id string) []int64 {
	t.Helper()
	box, err := f.store.Outbox(context.Background(), id)
	require.NoError(t, err)
	var out []int64
	for _, e := range box.Events {
		out = append(out, e.Seq)
	}
	return out
}

// TestDeliverSignedEvent: the POST carries the event, its ID and a valid
// signature; once answered 2xx the event leaves the outbox, and the task
// for it, run again, posts nothing.
func TestDeliverSignedEvent(t *testing.T) {
	f := setup(t)
	j := f.sentJob(t, f.url)
	require.NoError(t, f.d.ProcessTask(context.Background(), task(t, j.ID, 2)))
	require.Len(t, f.rc.got, 1)
	r, body := f.rc.got[0], f.rc.bodies[0]
	require.Equal(t, "/hooks/mms", r.URL.Path)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, j.ID+"-2", r.Header.Get(HeaderEventID))
	require.NoError(t, Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body,
		time.Now(), time.Minute))

	var got Body
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, j.ID+"-2", got.EventID)
	require.Equal(t, EventType, got.Type)
	require.Equal(t, int64(2), got.Sequence)
	require.Equal(t, JobBrief{ID: j.ID, Status: mms.StatusSent, PreviousStatus: mms.StatusSending,
		Reference: "r-9", SinchBatchID: "batch-1", StatusURL: "/api/mms/jobs/" + j.ID}, got.Job)
	require.Equal(t, []int64{1}, f.pending(t, j.ID))

	require.NoError(t, f.d.ProcessTask(context.Background(), task(t, j.ID, 2)))
	require.Len(t, f.rc.got, 1, "a delivered event is not posted again")
}

// TestDeliverNot2xxIsRetried: a 5xx, a 4xx and a redirect all leave the
// event waiting and ask asynq to retry.
func TestDeliverNot2xxIsRetried(t *testing.T) {
	f := setup(t)
	j := f.sentJob(t, f.url)
	f.rc.script = []int{http.StatusServiceUnavailable, http.StatusBadRequest, http.StatusFound}
	for range 3 {
		err := f.d.ProcessTask(context.Background(), task(t, j.ID, 1))
		require.Error(t, err)
		require.False(t, errors.Is(err, asynq.SkipRetry))
	}
	require.Equal(t, []int64{1, 2}, f.pending(t, j.ID))
	require.NoError(t, f.d.ProcessTask(context.Background(), task(t, j.ID, 1)))
	require.Equal(t, []int64{2}, f.pending(t, j.ID))
	ids := map[string]bool{}
	for _, r := range f.rc.got {
		ids[r.Header.Get(HeaderEventID)] = true
	}
	require.Equal(t, map[string]bool{j.ID + "-1": true}, ids, "every retry carries the same event ID")
}

// TestDeliverRefusesPrivateAddress: without the allow-list, a callback to a
// loopback address is never made, and the event is given up on at once.
func TestDeliverRefusesPrivateAddress(t *testing.T) {
	f := setup(t, "10.9.8.0/24") // an allow-list that does not cover the receiver
	j := f.sentJob(t, f.url)
	err := f.d.ProcessTask(context.Background(), task(t, j.ID, 1))
	require.ErrorIs(t, err, asynq.SkipRetry)
	var aerr *media.AddressError
	require.ErrorAs(t, err, &aerr)
	require.Empty(t, f.rc.got, "nothing reached the address")
	require.Equal(t, []int64{2}, f.pending(t, j.ID))
	got, err := f.store.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, mms.CallbackCounts{Pending: 1, Failed: 1}, got.Callbacks)
}

// TestDeliverGoneJob: an event whose job is no longer kept is dropped.
func TestDeliverGoneJob(t *testing.T) {
	f := setup(t)
	j := f.sentJob(t, f.url)
	require.NoError(t, f.store.Delete(context.Background(), j.ID))
	require.NoError(t, f.d.ProcessTask(context.Background(), task(t, j.ID, 1)))
	require.Empty(t, f.rc.got)
	require.ErrorIs(t, f.d.ProcessTask(context.Background(), asynq.NewTask(TypeDeliver, []byte(`{"job_id":"x"}`))),
		asynq.SkipRetry)
}

// TestDeliverSlowClientTimesOut: a client that does not answer within the
// timeout is retried, and the attempt ends on time.
func TestDeliverSlowClientTimesOut(t *testing.T) {
	f := setup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.rc.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	j := f.sentJob(t, f.url)
	start := time.Now()
	err := f.d.ProcessTask(context.Background(), task(t, j.ID, 1))
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "bounded by the 1s timeout")
	require.Equal(t, []int64{1, 2}, f.pending(t, j.ID))
}

// TestOutboxNotifyQueuesEachEventOnce: Notify queues one task per waiting
// event, and queuing again adds none.
func TestOutboxNotifyQueuesEachEventOnce(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	store := jobstore.New(rdb, time.Hour)
	q := asynq.NewClientFromRedisClient(rdb)
	o := NewOutbox(store, q, 5, zerolog.Nop())
	store.SetNotifier(o.Notify)
	f := &fixture{store: store}
	j := f.sentJob(t, "https://hooks.example.com/x")
	require.NoError(t, o.Notify(context.Background(), j.ID))

	insp := asynq.NewInspectorFromRedisClient(rdb)
	tasks, err := insp.ListPendingTasks(Queue)
	require.NoError(t, err)
	require.Len(t, tasks, 2)
	for _, ti := range tasks {
		require.Equal(t, TypeDeliver, ti.Type)
		require.Equal(t, 4+safetyRetries, ti.MaxRetry, "asynq's cap is a few retries above the budget")
		var p payload
		require.NoError(t, json.Unmarshal(ti.Payload, &p))
		require.Equal(t, TaskID(j.ID, p.Seq), ti.ID)
	}
	require.NoError(t, o.Notify(context.Background(), j.ID))
	require.NoError(t, o.Notify(context.Background(), mms.NewJobID()), "no such job: nothing to do")
	tasks, err = insp.ListPendingTasks(Queue)
	require.NoError(t, err)
	require.Len(t, tasks, 2)
	require.Equal(t, "cb:"+j.ID+":"+strconv.Itoa(1), TaskID(j.ID, 1))
}

// TestErrorsKeepTheURLOut: a callback URL may carry the client's token;
// no error (which asynq and the logs show) repeats it.
func TestErrorsKeepTheURLOut(t *testing.T) {
	f := setup(t)
	f.rc.handler = func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close() // no answer at all
		}
	}
	j := f.sentJob(t, f.url+"?token=SECRET-TOKEN-42")
	err := f.d.ProcessTask(context.Background(), task(t, j.ID, 1))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "SECRET-TOKEN-42")
	require.NotContains(t, err.Error(), "/hooks/mms")
}

// TestFlushQueuesStrandedEvents: events a process left in outboxes without
// queuing them (it died between the change and the enqueue) are queued by
// a flush of the job, or of its campaign.
func TestFlushQueuesStrandedEvents(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	store := jobstore.New(rdb, time.Hour) // no notifier: nothing is queued as it happens
	f := &fixture{store: store}
	one := f.sentJob(t, "https://hooks.example.com/x")
	two := f.sentJob(t, "https://hooks.example.com/y")
	o := NewOutbox(store, asynq.NewClientFromRedisClient(rdb), 3, zerolog.Nop())
	fl := NewFlusher(o, func(_ context.Context, id string) ([]string, error) {
		require.Equal(t, "01m91ek3d1zxwq3cf9w0m4a7gb", id)
		return []string{one.ID, two.ID}, nil
	})
	insp := asynq.NewInspectorFromRedisClient(rdb)
	pending := func() int {
		tasks, err := insp.ListPendingTasks(Queue)
		if err != nil {
			return 0 // the queue does not exist yet
		}
		return len(tasks)
	}

	flush, err := NewFlushTask(one.ID, "")
	require.NoError(t, err)
	require.NoError(t, fl.ProcessTask(context.Background(), flush))
	require.Equal(t, 2, pending(), "the job's two events")

	flush, err = NewFlushTask("", "01m91ek3d1zxwq3cf9w0m4a7gb")
	require.NoError(t, err)
	require.NoError(t, fl.ProcessTask(context.Background(), flush))
	require.Equal(t, 4, pending(), "and the other job's, once each")
	require.ErrorIs(t, fl.ProcessTask(context.Background(), asynq.NewTask(TypeFlush, []byte(`{}`))), asynq.SkipRetry)
}
