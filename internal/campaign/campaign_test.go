package campaign

// These tests live inside the package so that they can pin the store's
// clock and reach the campaign's keys; they run against a Redis of their
// own, with a queue that records what the expander enqueues.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/task"
)

const retention = time.Hour

var rules = mms.Rules{DefaultFrom: "+12025550100", DefaultRegion: "US"}

var errQueueDown = errors.New("queue down")

// recorder is the expander's queue: it hands tasks to a real asynq client
// (so that a second task with one ID is refused as asynq refuses it), and
// records every call. Call failAt (counted from 1) fails; before, if set,
// runs at the start of every call.
type recorder struct {
	real *asynq.Client

	mu       sync.Mutex
	calls    int
	failAt   int
	before   func(call int, jobID string)
	attempts map[string]int // job ID: calls
	enqueued map[string]int // job ID: tasks the queue took
	infos    map[string]*asynq.TaskInfo
	payloads map[string]task.SendPayload
	bad      []string // what was not a send task
}

func (q *recorder) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	p, err := task.DecodeSend(t.Payload())
	q.mu.Lock()
	if err != nil || t.Type() != task.TypeSend {
		q.bad = append(q.bad, fmt.Sprintf("%s %v", t.Type(), err))
	}
	q.calls++
	call := q.calls
	q.attempts[p.JobID]++
	before, fail := q.before, call == q.failAt
	q.mu.Unlock()

	if before != nil {
		before(call, p.JobID)
	}
	if fail {
		return nil, errQueueDown
	}
	info, err := q.real.EnqueueContext(ctx, t, opts...)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enqueued[p.JobID]++
	q.infos[p.JobID] = info
	q.payloads[p.JobID] = p
	return info, nil
}

func (q *recorder) numCalls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

type env struct {
	rdb   *redis.Client
	jobs  *jobstore.Store
	store *Store
	q     *recorder
	x     *Expander
}

func setup(t *testing.T) *env {
	t.Helper()
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	jobs := jobstore.New(rdb, retention)
	s := New(rdb, jobs, retention)
	q := &recorder{real: asynq.NewClientFromRedisClient(rdb), attempts: map[string]int{},
		enqueued: map[string]int{}, infos: map[string]*asynq.TaskInfo{}, payloads: map[string]task.SendPayload{}}
	t.Cleanup(func() { require.Empty(t, q.bad, "only send tasks are enqueued") })
	return &env{rdb: rdb, jobs: jobs, store: s, q: q, x: NewExpander(s, q, zerolog.Nop())}
}

// numbers returns n distinct valid numbers in E.164, from +12025550000 on.
func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+1202555%04d", i)
	}
	return out
}

// plain is a campaign request to the given numbers, nothing personalised.
func plain(nums []string) *mms.CampaignRequest {
	req := &mms.CampaignRequest{MediaURL: "https://cdn.example.com/a.jpg", Message: "Hello"}
	for _, n := range nums {
		req.Recipients = append(req.Recipients, mms.CampaignRecipient{To: n})
	}
	return req
}

// create validates req and stores it as the API does, in batches of size.
func (e *env) create(t *testing.T, req *mms.CampaignRequest, size int) (*Record, *mms.CampaignPlan) {
	t.Helper()
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	r := &Record{
		ID: mms.NewJobID(), Name: plan.Name, Reference: plan.Reference, Priority: plan.Priority,
		RateLimit: plan.RateLimit, Content: plan.Content, MaxAttempts: 4, BatchSize: size,
		Counts: Counts{Listed: plan.Listed, Invalid: plan.InvalidCount, Duplicates: plan.Duplicates,
			Accepted: len(plan.Recipients)},
		InvalidList: plan.Invalid, CreatedAt: time.Now().UTC(),
	}
	r.Jobs = (r.Accepted + size - 1) / size
	require.NoError(t, e.store.Create(t.Context(), r, plan))
	return r, plan
}

func (e *env) expand(t *testing.T, id string) error {
	t.Helper()
	tk, err := NewExpandTask(id)
	require.NoError(t, err)
	return e.x.ProcessTask(t.Context(), tk)
}

func (e *env) state(t *testing.T, id string) State {
	t.Helper()
	_, st, err := e.store.Get(t.Context(), id)
	require.NoError(t, err)
	return st
}

// jobCount counts the job records in Redis: each test has its own.
func (e *env) jobCount(t *testing.T) int {
	t.Helper()
	keys, err := e.rdb.Keys(t.Context(), "mmsgate:job:*").Result()
	require.NoError(t, err)
	return len(keys)
}

func (e *env) job(t *testing.T, id string) *mms.Job {
	t.Helper()
	j, err := e.jobs.Get(t.Context(), id)
	require.NoError(t, err)
	return j
}

// send moves a job as a worker would: to sending, then to st (sent,
// failed, retrying...) with the given error code, if any.
func (e *env) send(t *testing.T, id string, st mms.Status, code string) {
	t.Helper()
	_, err := e.jobs.Begin(t.Context(), id)
	require.NoError(t, err)
	if st == mms.StatusSending {
		return
	}
	o := jobstore.Outcome{Status: st}
	if st == mms.StatusSent {
		o.BatchID = "batch-" + id
	}
	if code != "" {
		o.Err = &mms.JobError{Code: code, Message: code, At: time.Now().UTC()}
	}
	if st == mms.StatusRetrying {
		o.NextAttemptAt = time.Now().Add(time.Minute)
	}
	ok, err := e.jobs.Finish(t.Context(), id, o)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestExpandCreatesEveryJob(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	req := &mms.CampaignRequest{
		Name: "Spring", MediaURL: "https://cdn.example.com/a.jpg", Message: "Hi ${name}", Subject: "Sale",
		Reference: "spring-1", RateLimit: 2.5, Parameters: map[string]string{"name": "friend"},
		Recipients: mms.CampaignRecipients{
			{To: "+12025550001", Parameters: map[string]string{"name": "Ann", "city": "Paris"}},
			{To: "+12025550002"},
			{To: "+12025550003", Parameters: map[string]string{"name": "Bo"}},
			{To: "(202) 555-0001", Parameters: map[string]string{"name": "Ann again"}}, // repeat
			{To: "bad"}, // refused
			{To: "+12025550004", Parameters: map[string]string{"city": "Rome"}},
			{To: "+12025550005"},
			{To: "+12025550006"},
			{To: "+12025550007", Parameters: map[string]string{"name": "Cy"}},
			{To: "+12025550008"},
		},
	}
	r, plan := e.create(t, req, 3)
	require.Equal(t, 8, r.Accepted)
	require.Equal(t, 3, r.Jobs)
	n, err := e.rdb.LLen(ctx, batchesKey(r.ID)).Result()
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "one stored batch per job")
	ttl, err := e.rdb.PTTL(ctx, key(r.ID)).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, retention+71*time.Hour, "kept until its jobs expire, and then the retention")
	require.Equal(t, State{State: StatePreparing}, e.state(t, r.ID))

	require.NoError(t, e.expand(t, r.ID))

	require.Equal(t, State{State: StateReady, Made: 3}, e.state(t, r.ID))
	exists, err := e.rdb.Exists(ctx, batchesKey(r.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, exists, "the batches are deleted once the jobs exist")
	require.Equal(t, 3, e.jobCount(t), "exactly one job per batch")
	_, err = e.jobs.Get(ctx, JobID(r.ID, 3))
	require.ErrorIs(t, err, mms.ErrNotFound)

	wantTo := [][]string{
		{"+12025550001", "+12025550002", "+12025550003"},
		{"+12025550004", "+12025550005", "+12025550006"},
		{"+12025550007", "+12025550008"},
	}
	wantParams := []map[string]map[string]string{
		{"name": {"+12025550001": "Ann", "+12025550003": "Bo", "default": "friend"}, "city": {"+12025550001": "Paris"}},
		{"name": {"default": "friend"}, "city": {"+12025550004": "Rome"}},
		{"name": {"+12025550007": "Cy", "default": "friend"}},
	}
	require.Equal(t, 3, e.q.numCalls())
	for i := range 3 {
		id := JobID(r.ID, i)
		j := e.job(t, id)
		require.Equal(t, mms.StatusQueued, j.Status, i)
		require.Equal(t, wantTo[i], j.Message.To, i)
		require.Equal(t, wantParams[i], j.Message.Parameters, i)
		require.Equal(t, mms.PriorityBulk, j.Priority)
		require.Equal(t, "spring-1", j.Reference)
		require.Equal(t, 4, j.MaxAttempts)
		require.Equal(t, r.ID, j.CampaignID)
		require.Equal(t, 2.5, j.RateCap)
		require.Equal(t, "+12025550100", j.Message.From)
		require.Equal(t, "Hi ${name}", j.Message.Text)
		require.Equal(t, "Sale", j.Message.Subject)
		require.Equal(t, "https://cdn.example.com/a.jpg", j.Message.MediaURL)
		require.True(t, j.Message.ExpireAt.Equal(plan.Content.ExpireAt))
		require.True(t, j.Message.SendAt.IsZero())
		require.WithinDuration(t, time.Now(), j.CreatedAt, 10*time.Second)

		require.Equal(t, 1, e.q.attempts[id], "one enqueue per job")
		require.Equal(t, 1, e.q.enqueued[id])
		info := e.q.infos[id]
		require.Equal(t, id, info.ID, "the task ID is the job ID")
		require.Equal(t, "mms:bulk", info.Queue)
		require.Equal(t, asynq.TaskStatePending, info.State)
		p := e.q.payloads[id]
		require.Equal(t, len(wantTo[i]), p.Recipients)
		require.Equal(t, r.ID, p.Campaign)
		require.Equal(t, 2.5, p.CampaignRate)
	}

	// Running the task again changes nothing.
	require.NoError(t, e.expand(t, r.ID))
	require.Equal(t, 3, e.q.numCalls())
	require.Equal(t, 3, e.jobCount(t))
	require.Equal(t, State{State: StateReady, Made: 3}, e.state(t, r.ID))
}

func TestExpandBatchSizes(t *testing.T) {
	for _, tc := range []struct{ recipients, size int }{{1, 1}, {5, 5}, {6, 5}, {2001, 1000}, {999, 1000}, {10, 3}} {
		t.Run(fmt.Sprintf("%d by %d", tc.recipients, tc.size), func(t *testing.T) {
			e := setup(t)
			nums := numbers(tc.recipients)
			r, _ := e.create(t, plain(nums), tc.size)
			require.NoError(t, e.expand(t, r.ID))
			jobs := (tc.recipients + tc.size - 1) / tc.size
			require.Equal(t, jobs, r.Jobs)
			require.Equal(t, jobs, e.jobCount(t))
			var all []string
			for i := range jobs {
				j := e.job(t, JobID(r.ID, i))
				want := min(tc.size, tc.recipients-i*tc.size)
				require.Len(t, j.Message.To, want, "batch %d", i)
				require.Equal(t, want, r.batchLen(i))
				require.Nil(t, j.Message.Parameters)
				all = append(all, j.Message.To...)
			}
			require.Equal(t, nums, all, "every recipient once, in order")
			require.Zero(t, r.batchLen(jobs), "no batch beyond the last")
		})
	}
}

func TestExpandScheduled(t *testing.T) {
	e := setup(t)
	sendAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	req := plain(numbers(5))
	req.SendAt = sendAt.Format(time.RFC3339)
	req.Priority = mms.PriorityHigh
	r, _ := e.create(t, req, 2)

	sum, err := e.store.Summarize(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, "scheduled", sum.Status, "as the 202 said, before any job exists")

	require.NoError(t, e.expand(t, r.ID))
	for i := range 3 {
		id := JobID(r.ID, i)
		j := e.job(t, id)
		require.Equal(t, mms.StatusScheduled, j.Status)
		require.True(t, j.Message.SendAt.Equal(sendAt))
		require.True(t, j.Message.ExpireAt.Equal(sendAt.Add(mms.SinchMaxExpiry)), "expiry counts from send_at")
		info := e.q.infos[id]
		require.Equal(t, asynq.TaskStateScheduled, info.State)
		require.Equal(t, "mms:high", info.Queue)
		require.WithinDuration(t, sendAt, info.NextProcessAt, time.Second)
	}
	sum, err = e.store.Summarize(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, "scheduled", sum.Status)
	require.Equal(t, map[mms.Status]int{mms.StatusScheduled: 3}, sum.Jobs)
	require.Nil(t, sum.ETA)
}

// An expand task that fails half-way and runs again goes on where it
// stopped: no job is created twice and every job gets one send task.
func TestExpandResumesAfterFailure(t *testing.T) {
	const recipients, size = 59, 2 // 30 jobs, the last of one recipient
	for _, k := range []int{1, 2, 20, 21, 22, 30} {
		t.Run(fmt.Sprintf("fail at %d", k), func(t *testing.T) {
			e := setup(t)
			r, _ := e.create(t, plain(numbers(recipients)), size)
			require.Equal(t, 30, r.Jobs)
			e.q.failAt = k

			err := e.expand(t, r.ID)
			require.ErrorIs(t, err, errQueueDown)
			require.Contains(t, err.Error(), fmt.Sprintf("batch %d", k-1))
			st := e.state(t, r.ID)
			require.Equal(t, StatePreparing, st.State)
			require.Equal(t, k-1, st.Made, "made counts the jobs whose task is in")
			require.Equal(t, k, e.jobCount(t), "the failed batch's job exists, without its task")
			failed := e.job(t, JobID(r.ID, k-1))

			sum, err := e.store.Summarize(t.Context(), r.ID)
			require.NoError(t, err)
			if k > 1 {
				require.Equal(t, "sending", sum.Status)
			}
			require.Less(t, sum.Progress, 1.0)

			require.NoError(t, e.expand(t, r.ID))
			require.Equal(t, State{State: StateReady, Made: 30}, e.state(t, r.ID))
			require.Equal(t, 30, e.jobCount(t))
			require.Equal(t, 31, e.q.numCalls(), "one call per job, and the failed one again")
			for i := range 30 {
				id := JobID(r.ID, i)
				require.Equal(t, 1, e.q.enqueued[id], "job %d has one task", i)
				want := 1
				if i == k-1 {
					want = 2
				}
				require.Equal(t, want, e.q.attempts[id], "job %d", i)
				require.Equal(t, min(size, recipients-i*size), e.q.payloads[id].Recipients)
			}
			again := e.job(t, JobID(r.ID, k-1))
			require.Equal(t, failed.CreatedAt, again.CreatedAt, "the job was not created again")
			require.Equal(t, failed.History, again.History)
		})
	}
}

// A run that lost track of how far it got (it ended between a job's task
// and the note of it) creates nothing twice, enqueues nothing twice, and
// gives no task to a job that has moved on meanwhile.
func TestExpandRerunSkipsJobsThatMovedOn(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(12)), 1)
	e.q.failAt = 9 // job 8 is created, its task not
	require.ErrorIs(t, e.expand(t, r.ID), errQueueDown)
	require.Equal(t, 8, e.state(t, r.ID).Made)

	ids := JobIDs(r.ID, 0, 12)
	e.send(t, ids[3], mms.StatusSent, "")
	e.send(t, ids[4], mms.StatusSending, "")
	require.NoError(t, e.jobs.Cancel(ctx, ids[8])) // an operator canceled the job without a task
	require.NoError(t, e.rdb.HSet(ctx, key(r.ID), "made", 2).Err())
	before := map[string]*mms.Job{}
	for _, id := range ids[:9] {
		before[id] = e.job(t, id)
	}

	require.NoError(t, e.expand(t, r.ID))
	require.Equal(t, State{State: StateReady, Made: 12}, e.state(t, r.ID))
	require.Equal(t, 12, e.jobCount(t))
	for i, id := range ids {
		switch i {
		case 3, 4:
			require.Equal(t, 1, e.q.attempts[id], "job %d moved on: no new task", i)
			require.Equal(t, 1, e.q.enqueued[id])
		case 8:
			require.Equal(t, 1, e.q.attempts[id], "job 8 was canceled: no task")
			require.Zero(t, e.q.enqueued[id])
			require.Equal(t, mms.StatusCanceled, e.job(t, id).Status)
		case 2, 5, 6, 7:
			require.Equal(t, 2, e.q.attempts[id], "job %d: tried again, refused as a repeat", i)
			require.Equal(t, 1, e.q.enqueued[id], "job %d", i)
		default:
			require.Equal(t, 1, e.q.attempts[id], "job %d", i)
			require.Equal(t, 1, e.q.enqueued[id], "job %d", i)
		}
		if j := before[id]; j != nil {
			now := e.job(t, id)
			require.Equal(t, j.Status, now.Status, "job %d keeps its status", i)
			require.Equal(t, j.History, now.History, "job %d", i)
		}
	}
}

// A campaign canceled while its jobs are being created stops creating
// them; the jobs made meanwhile are canceled by a later cancel (and by the
// worker, which checks the campaign before it sends).
func TestCancelDuringExpansion(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(100)), 1)
	var first *CancelSummary
	e.q.before = func(call int, _ string) {
		if call == 5 { // job 4 exists; jobs 0-3 have their tasks
			var err error
			first, err = e.store.Cancel(ctx, r.ID)
			require.NoError(t, err)
		}
	}

	require.NoError(t, e.expand(t, r.ID))
	require.NotNil(t, first)
	require.Equal(t, 4, first.CanceledJobs)
	require.Equal(t, 4, first.CanceledRecipients)
	require.Equal(t, 96, first.NotYetCreated)
	require.Empty(t, first.NotCanceled)

	st := e.state(t, r.ID)
	require.Equal(t, StateCanceled, st.State)
	require.GreaterOrEqual(t, st.Made, 5)
	require.LessOrEqual(t, st.Made, 20, "creation stops within 20 batches")
	require.Equal(t, st.Made, e.jobCount(t))
	require.Equal(t, st.Made, e.q.numCalls())
	_, err := e.jobs.Get(ctx, JobID(r.ID, st.Made))
	require.ErrorIs(t, err, mms.ErrNotFound)
	exists, err := e.rdb.Exists(ctx, batchesKey(r.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, exists, "a canceled campaign's batches are of no more use")

	// The task again: nothing more.
	require.NoError(t, e.expand(t, r.ID))
	require.Equal(t, st.Made, e.q.numCalls())
	require.Equal(t, st, e.state(t, r.ID))

	// Canceling again cancels the jobs made after the first cancel.
	second, err := e.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, st.Made-4, second.CanceledJobs)
	require.Equal(t, st.Made-4, second.CanceledRecipients)
	require.Equal(t, 100-st.Made, second.NotYetCreated)
	for i, id := range JobIDs(r.ID, 0, st.Made) {
		j := e.job(t, id)
		require.Equal(t, mms.StatusCanceled, j.Status, "job %d", i)
		require.Equal(t, "campaign_canceled", j.LastError.Code)
	}
	sum, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "canceled", sum.Status)
	require.Equal(t, ErrorCount{Jobs: st.Made, Recipients: st.Made}, sum.Errors["campaign_canceled"])
	require.Nil(t, sum.ETA)
}

func TestCancelBeforeExpansion(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(7)), 3)
	sum, err := e.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, &CancelSummary{NotCanceled: map[string]int{}, NotYetCreated: 3, Queue: "mms:bulk"}, sum)

	require.NoError(t, e.expand(t, r.ID))
	require.Zero(t, e.q.numCalls())
	require.Zero(t, e.jobCount(t))
	st := e.state(t, r.ID)
	require.Equal(t, StateCanceled, st.State)
	require.Zero(t, st.Made)
	exists, err := e.rdb.Exists(ctx, batchesKey(r.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, exists)

	s, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "canceled", s.Status)
	require.Empty(t, s.Jobs)
	require.Zero(t, s.Progress)
}

func TestCancel(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(28)), 3) // 10 jobs, the last of one recipient
	require.NoError(t, e.expand(t, r.ID))
	ids := JobIDs(r.ID, 0, 10)
	e.send(t, ids[0], mms.StatusSent, "")
	e.send(t, ids[1], mms.StatusSending, "")
	e.send(t, ids[2], mms.StatusFailed, "sinch_rejected")
	e.send(t, ids[3], mms.StatusRetrying, "sinch_unavailable")
	_, err := e.jobs.Begin(ctx, ids[4])
	require.NoError(t, err)
	ok, err := e.jobs.Finish(ctx, ids[4], jobstore.Outcome{Status: mms.StatusRetrying, Ambiguous: true,
		Err: &mms.JobError{Code: "sinch_timeout"}, NextAttemptAt: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, e.jobs.Delete(ctx, ids[5]))
	require.NoError(t, e.jobs.Cancel(ctx, ids[6]))

	at := time.Date(2030, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	e.store.now = func() time.Time { return at }
	sum, err := e.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, 4, sum.CanceledJobs, "the retrying job and the three queued ones")
	require.Equal(t, 3+3+3+1, sum.CanceledRecipients)
	require.Equal(t, map[string]int{"sent": 1, "sending": 1, "failed": 1, "retrying": 1, "missing": 1},
		sum.NotCanceled)
	require.Equal(t, 1, sum.AlreadyCanceled, "the one an operator canceled")
	require.Zero(t, sum.NotYetCreated)

	want := []mms.Status{mms.StatusSent, mms.StatusSending, mms.StatusFailed, mms.StatusCanceled,
		mms.StatusRetrying, "", mms.StatusCanceled, mms.StatusCanceled, mms.StatusCanceled, mms.StatusCanceled}
	briefs, err := e.jobs.Briefs(ctx, ids)
	require.NoError(t, err)
	for i, b := range briefs {
		require.Equal(t, want[i], b.Status, "job %d", i)
	}
	for _, i := range []int{3, 7, 8, 9} {
		j := e.job(t, ids[i])
		require.Equal(t, "campaign_canceled", j.LastError.Code, "job %d", i)
		require.True(t, j.LastError.At.Equal(at))
	}
	st := e.state(t, r.ID)
	require.Equal(t, StateCanceled, st.State)
	require.True(t, st.CanceledAt.Equal(at), "%v", st.CanceledAt)

	s, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "canceled", s.Status)
	require.Equal(t, map[string]ErrorCount{
		"campaign_canceled": {Jobs: 4, Recipients: 10},
		"sinch_rejected":    {Jobs: 1, Recipients: 3},
		"canceled":          {Jobs: 1, Recipients: 3}, // by an operator, without a code
	}, s.Errors)

	// Again: nothing changes, and the first time stays the time.
	e.store.now = func() time.Time { return at.Add(time.Hour) }
	again, err := e.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Zero(t, again.CanceledJobs)
	require.Zero(t, again.CanceledRecipients)
	total := again.AlreadyCanceled
	for _, n := range again.NotCanceled {
		total += n
	}
	require.Equal(t, 10, total, "every job is accounted for")
	require.Equal(t, 5, again.AlreadyCanceled)
	after, err := e.jobs.Briefs(ctx, ids)
	require.NoError(t, err)
	require.Equal(t, briefs, after)
	require.True(t, e.state(t, r.ID).CanceledAt.Equal(at))

	_, err = e.store.Cancel(ctx, mms.NewJobID())
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, e.store.Delete(ctx, r.ID))
	_, err = e.store.Cancel(ctx, r.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = e.store.Summarize(ctx, r.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = e.store.ListJobs(ctx, r.ID, 0, 10, "")
	require.ErrorIs(t, err, ErrNotFound)
	canceled, err := e.store.Canceled(ctx, r.ID)
	require.NoError(t, err)
	require.True(t, canceled, "a campaign gone counts as canceled")
}

func TestSummarize(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(10)), 3) // jobs of 3, 3, 3 and 1
	ids := JobIDs(r.ID, 0, 4)

	sum, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "preparing", sum.Status)
	require.Empty(t, sum.Jobs)
	require.Zero(t, sum.Done)
	require.Zero(t, sum.Progress)
	require.Nil(t, sum.ETA)
	require.Equal(t, r.ID, sum.Record.ID)

	require.NoError(t, e.expand(t, r.ID))
	sum, err = e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "sending", sum.Status)
	require.Equal(t, map[mms.Status]int{mms.StatusQueued: 4}, sum.Jobs)
	require.Equal(t, map[mms.Status]int{mms.StatusQueued: 10}, sum.Recipients)
	require.Zero(t, sum.Rate)
	require.Nil(t, sum.ETA, "no rate, no ETA")
	require.Empty(t, sum.Errors)

	e.send(t, ids[0], mms.StatusSent, "")
	e.send(t, ids[1], mms.StatusFailed, "sinch_rejected")
	e.send(t, ids[2], mms.StatusSending, "")
	now := time.Now()
	e.store.now = func() time.Time { return now }
	sum, err = e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "sending", sum.Status)
	require.Equal(t, map[mms.Status]int{mms.StatusSent: 1, mms.StatusFailed: 1, mms.StatusSending: 1,
		mms.StatusQueued: 1}, sum.Jobs)
	require.Equal(t, map[mms.Status]int{mms.StatusSent: 3, mms.StatusFailed: 3, mms.StatusSending: 3,
		mms.StatusQueued: 1}, sum.Recipients)
	require.Equal(t, 6, sum.Done)
	require.InDelta(t, 0.6, sum.Progress, 1e-9)
	require.InDelta(t, 3.0/60, sum.Rate, 1e-9, "three recipients handed over in the last minute")
	require.NotNil(t, sum.ETA)
	require.WithinDuration(t, now.Add(80*time.Second), *sum.ETA, time.Millisecond, "four left at 0.05/s")
	require.Equal(t, map[string]ErrorCount{"sinch_rejected": {Jobs: 1, Recipients: 3}}, sum.Errors)

	// A minute on, the rate is gone, and the ETA with it.
	e.store.now = func() time.Time { return now.Add(2 * time.Minute) }
	sum, err = e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Zero(t, sum.Rate)
	require.Nil(t, sum.ETA)
	require.Equal(t, "sending", sum.Status)

	// The rest ends: sent, and expired as the worker records it (no code).
	e.store.now = time.Now
	e.send(t, ids[2], mms.StatusSent, "")
	ok, err := e.jobs.Finish(ctx, ids[3], jobstore.Outcome{Status: mms.StatusExpired})
	require.NoError(t, err)
	require.True(t, ok)
	sum, err = e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "completed", sum.Status)
	require.Equal(t, 10, sum.Done)
	require.Equal(t, 1.0, sum.Progress)
	require.Nil(t, sum.ETA, "nothing left")
	require.Equal(t, map[string]ErrorCount{
		"sinch_rejected": {Jobs: 1, Recipients: 3},
		"expired":        {Jobs: 1, Recipients: 1},
	}, sum.Errors)

	// A job record gone (past its retention) counts as done.
	require.NoError(t, e.jobs.Delete(ctx, ids[0]))
	sum, err = e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Jobs["missing"])
	require.Equal(t, 3, sum.Recipients["missing"])
	require.Equal(t, 10, sum.Done)
	require.Equal(t, "completed", sum.Status)
}

// A campaign whose expansion stopped half-way is not complete, however its
// existing jobs stand: the jobs not made yet still have to be sent.
func TestSummarizeCountsJobsNotMade(t *testing.T) {
	e := setup(t)
	r, _ := e.create(t, plain(numbers(10)), 3)
	e.q.failAt = 3
	require.ErrorIs(t, e.expand(t, r.ID), errQueueDown)
	e.send(t, JobID(r.ID, 0), mms.StatusSent, "")
	e.send(t, JobID(r.ID, 1), mms.StatusSent, "")

	sum, err := e.store.Summarize(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, "sending", sum.Status)
	require.Equal(t, 2, sum.State.Made)
	require.Equal(t, 6, sum.Done)
	require.InDelta(t, 0.6, sum.Progress, 1e-9)
	require.NotNil(t, sum.ETA, "4 recipients left at 6 a minute")
	require.WithinDuration(t, time.Now().Add(40*time.Second), *sum.ETA, 5*time.Second)
}

func TestListJobs(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(25)), 1)
	require.NoError(t, e.expand(t, r.ID))
	ids := JobIDs(r.ID, 0, 25)
	sent := []int{3, 7, 8, 20, 24}
	for _, i := range sent {
		e.send(t, ids[i], mms.StatusSent, "")
	}

	pageIDs := func(p *JobPage) []string {
		var out []string
		for _, b := range p.Jobs {
			out = append(out, b.ID)
		}
		return out
	}
	page, err := e.store.ListJobs(ctx, r.ID, 0, 10, "")
	require.NoError(t, err)
	require.Equal(t, ids[:10], pageIDs(page))
	require.Equal(t, 10, page.Next)
	require.Equal(t, mms.StatusQueued, page.Jobs[0].Status)
	require.Equal(t, mms.StatusSent, page.Jobs[3].Status)
	require.Equal(t, "batch-"+ids[3], page.Jobs[3].BatchID)
	require.Equal(t, 1, page.Jobs[3].Recipients)
	page, err = e.store.ListJobs(ctx, r.ID, 20, 5, "")
	require.NoError(t, err)
	require.Equal(t, ids[20:], pageIDs(page))
	require.Equal(t, -1, page.Next, "a page that ends at the last job is the last")
	page, err = e.store.ListJobs(ctx, r.ID, 25, 5, "")
	require.NoError(t, err)
	require.Empty(t, page.Jobs)
	require.Equal(t, -1, page.Next)
	page, err = e.store.ListJobs(ctx, r.ID, 99, 5, mms.StatusSent)
	require.NoError(t, err)
	require.Empty(t, page.Jobs)
	require.Equal(t, -1, page.Next)

	page, err = e.store.ListJobs(ctx, r.ID, 0, 2, mms.StatusSent)
	require.NoError(t, err)
	require.Equal(t, []string{ids[3], ids[7]}, pageIDs(page))
	require.Equal(t, 8, page.Next)
	page, err = e.store.ListJobs(ctx, r.ID, 8, 2, mms.StatusSent)
	require.NoError(t, err)
	require.Equal(t, []string{ids[8], ids[20]}, pageIDs(page))
	require.Equal(t, 21, page.Next)
	page, err = e.store.ListJobs(ctx, r.ID, 21, 2, mms.StatusSent)
	require.NoError(t, err)
	require.Equal(t, []string{ids[24]}, pageIDs(page))
	require.Equal(t, -1, page.Next)
	page, err = e.store.ListJobs(ctx, r.ID, 0, 100, mms.StatusFailed)
	require.NoError(t, err)
	require.Empty(t, page.Jobs)
	require.Equal(t, -1, page.Next)

	// Walking every page, whatever the limit, gives every job once, in
	// order; a page is never over its limit, and only the last is short.
	var sentIDs, queuedIDs []string
	for i, id := range ids {
		if slices.Contains(sent, i) {
			sentIDs = append(sentIDs, id)
		} else {
			queuedIDs = append(queuedIDs, id)
		}
	}
	for _, tc := range []struct {
		status mms.Status
		want   []string
	}{{"", ids}, {mms.StatusSent, sentIDs}, {mms.StatusQueued, queuedIDs}} {
		for limit := 1; limit <= 26; limit++ {
			var got []string
			cursor, pages := 0, 0
			for {
				p, err := e.store.ListJobs(ctx, r.ID, cursor, limit, tc.status)
				require.NoError(t, err)
				require.LessOrEqual(t, len(p.Jobs), limit)
				got = append(got, pageIDs(p)...)
				pages++
				require.Less(t, pages, 30, "paging ends")
				if p.Next == -1 {
					break
				}
				require.Len(t, p.Jobs, limit, "status %q limit %d: only the last page is short", tc.status, limit)
				require.Greater(t, p.Next, cursor)
				cursor = p.Next
			}
			require.Equal(t, tc.want, got, "status %q limit %d", tc.status, limit)
			for _, id := range got {
				if tc.status != "" {
					b, err := e.jobs.Briefs(ctx, []string{id})
					require.NoError(t, err)
					require.Equal(t, tc.status, b[0].Status)
				}
			}
		}
	}
}

// Looking for a status few jobs have reads a bounded number of jobs per
// page: the page may come back short, or empty, with a cursor to go on.
func TestListJobsBoundsTheScan(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	const n = maxScan + 700
	r := &Record{ID: mms.NewJobID(), BatchSize: 1, Counts: Counts{Accepted: n}, Jobs: n, Priority: mms.PriorityBulk,
		CreatedAt: time.Now().UTC(), Content: mms.Message{ExpireAt: time.Now().Add(time.Hour)}}
	plan := &mms.CampaignPlan{Recipients: numbers(n)}
	require.NoError(t, e.store.Create(ctx, r, plan))
	// The job records are written directly: expanding thousands of jobs
	// through the queue would only slow the test down.
	now := time.Now().UTC()
	for i := range n {
		st := mms.StatusQueued
		if i == n-1 {
			st = mms.StatusFailed
		}
		require.NoError(t, e.jobs.Create(ctx, &mms.Job{ID: JobID(r.ID, i), Status: st, Priority: mms.PriorityBulk,
			Message: mms.Message{To: []string{plan.Recipients[i]}}, CreatedAt: now, UpdatedAt: now,
			CampaignID: r.ID}))
	}
	require.NoError(t, e.rdb.HSet(ctx, key(r.ID), "made", n, "st", StateReady).Err())

	page, err := e.store.ListJobs(ctx, r.ID, 0, 10, mms.StatusFailed)
	require.NoError(t, err)
	require.Empty(t, page.Jobs)
	require.GreaterOrEqual(t, page.Next, maxScan, "the scan went at least maxScan jobs far")
	require.Less(t, page.Next, n)
	page, err = e.store.ListJobs(ctx, r.ID, page.Next, 10, mms.StatusFailed)
	require.NoError(t, err)
	require.Len(t, page.Jobs, 1)
	require.Equal(t, JobID(r.ID, n-1), page.Jobs[0].ID)
	require.Equal(t, -1, page.Next)

	page, err = e.store.ListJobs(ctx, r.ID, 0, 1000, mms.StatusQueued)
	require.NoError(t, err)
	require.Len(t, page.Jobs, 1000)
	require.Equal(t, 1000, page.Next)

	sum, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, map[mms.Status]int{mms.StatusQueued: n - 1, mms.StatusFailed: 1}, sum.Jobs)
}

func TestJobID(t *testing.T) {
	a, b := mms.NewJobID(), mms.NewJobID()
	seen := map[string]string{}
	for _, c := range []string{a, b} {
		cu, err := ulid.ParseStrict(strings.ToUpper(c))
		require.NoError(t, err)
		for i := range 20_000 {
			id := JobID(c, i)
			require.True(t, mms.ValidJobID(id), id)
			require.Equal(t, strings.ToLower(id), id)
			require.NotEqual(t, c, id)
			where := fmt.Sprintf("%s/%d", c, i)
			prev, dup := seen[id]
			require.False(t, dup, "%s and %s share %s", prev, where, id)
			seen[id] = where
			if i%1000 == 0 {
				require.Equal(t, id, JobID(c, i), "stable")
				u, err := ulid.ParseStrict(strings.ToUpper(id))
				require.NoError(t, err)
				require.Equal(t, cu.Time(), u.Time(), "a job's ID carries its campaign's time")
			}
		}
	}
	// Stable across processes too: a fixed campaign ID gives fixed job IDs.
	const fixed = "01arz3ndektsv4rrffq69g5fav"
	require.Equal(t, JobID(fixed, 7), JobID(fixed, 7))
	require.NotEqual(t, JobID(fixed, 7), JobID(fixed, 70))
	require.Equal(t, []string{JobID(fixed, 2), JobID(fixed, 3), JobID(fixed, 4)}, JobIDs(fixed, 2, 5))
	require.Empty(t, JobIDs(fixed, 3, 3))
	require.Empty(t, JobIDs(fixed, 5, 3))
	require.Panics(t, func() { JobID("not-a-ulid", 0) })
}

// Two runs of one expand task at once (asynq runs a task again when its
// lease runs out) create every job once and give it one task.
func TestExpandConcurrentRuns(t *testing.T) {
	e := setup(t)
	r, _ := e.create(t, plain(numbers(60)), 1)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for k := range errs {
		wg.Go(func() {
			tk, err := NewExpandTask(r.ID)
			if err == nil {
				err = e.x.ProcessTask(t.Context(), tk)
			}
			errs[k] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, State{State: StateReady, Made: 60}, e.state(t, r.ID))
	require.Equal(t, 60, e.jobCount(t))
	for i, id := range JobIDs(r.ID, 0, 60) {
		require.Equal(t, 1, e.q.enqueued[id], "job %d", i)
	}
}

// A run that overlaps another, and goes on after the other has finished,
// must not leave the count of jobs made lower than it was: the campaign
// would then be summarized, listed and canceled without its last jobs.
func TestExpandOverlappingRunKeepsMade(t *testing.T) {
	e := setup(t)
	r, _ := e.create(t, plain(numbers(10)), 1)
	var once sync.Once
	e.q.before = func(call int, _ string) {
		if call == 3 { // run A is at job 2: run B starts and finishes
			once.Do(func() { require.NoError(t, e.expand(t, r.ID)) })
		}
	}
	require.NoError(t, e.expand(t, r.ID), "run A finds the work done")
	require.NoError(t, e.expand(t, r.ID))

	require.Equal(t, State{State: StateReady, Made: 10}, e.state(t, r.ID))
	sum, err := e.store.Cancel(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, 10, sum.CanceledJobs, "every job is canceled")
	for i, id := range JobIDs(r.ID, 0, 10) {
		require.Equal(t, 1, e.q.enqueued[id], "job %d", i)
	}
}

// A campaign removed while its jobs are made (the API removes one whose
// expand task it believes was not enqueued) is not brought back as a key
// without a time to live.
func TestExpandStopsWhenCampaignRemoved(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, _ := e.create(t, plain(numbers(10)), 1)
	e.q.before = func(call int, _ string) {
		if call == 3 {
			require.NoError(t, e.store.Delete(ctx, r.ID))
		}
	}
	require.NoError(t, e.expand(t, r.ID))
	require.Equal(t, 3, e.jobCount(t), "no job after the removal but the one under way")
	n, err := e.rdb.Exists(ctx, key(r.ID), batchesKey(r.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing of the campaign is left")
	canceled, err := e.store.Canceled(ctx, r.ID)
	require.NoError(t, err)
	require.True(t, canceled, "its jobs are dropped by the worker")
	require.NoError(t, e.expand(t, r.ID))
	require.Equal(t, 3, e.q.numCalls())
}

// TestCancelCompleted: a campaign whose every job reached Sinch or ended
// has nothing to cancel, and stays completed.
func TestCancelCompleted(t *testing.T) {
	e := setup(t)
	r, _ := e.create(t, plain(numbers(4)), 2)
	require.NoError(t, e.expand(t, r.ID))
	ids := JobIDs(r.ID, 0, 2)
	e.send(t, ids[0], mms.StatusSent, "")
	e.send(t, ids[1], mms.StatusFailed, "sinch_rejected")

	_, err := e.store.Cancel(t.Context(), r.ID)
	require.ErrorIs(t, err, ErrCompleted)
	require.Equal(t, StateReady, e.state(t, r.ID).State)
	sum, err := e.store.Summarize(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, "completed", sum.Status)
}

// TestSummarizeCountsSuppressedApart: recipients the worker left out for
// the suppression list are counted as such, not as sent.
func TestSummarizeCountsSuppressedApart(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	r, plan := e.create(t, plain(numbers(4)), 2)
	require.NoError(t, e.expand(t, r.ID))
	id := JobID(r.ID, 0)
	_, err := e.jobs.Begin(ctx, id)
	require.NoError(t, err)
	ok, err := e.jobs.Finish(ctx, id, jobstore.Outcome{Status: mms.StatusSent, BatchID: "b1",
		Suppressed: plan.Recipients[:1]})
	require.NoError(t, err)
	require.True(t, ok)

	sum, err := e.store.Summarize(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, map[mms.Status]int{mms.StatusSent: 1, StatusSuppressed: 1, mms.StatusQueued: 2},
		sum.Recipients)
	require.Equal(t, 2, sum.Done)
}
