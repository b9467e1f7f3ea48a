package jobstore

// These tests live inside the package so that they can reach the record's
// key (for PTTL and MEMORY USAGE) and pin the store's clock; everything else
// goes through the exported API, against a Redis of the test's own.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
)

const testTTL = time.Hour

// clock is the fixed time the store writes as "now" in these tests.
var clock = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

type bundle struct {
	store *Store
	rdb   *redis.Client
	rs    *redistest.Server
}

func setup(t *testing.T) *bundle {
	t.Helper()

	rs := redistest.Start(t)
	rdb := rs.Client(t)
	s := New(rdb, testTTL)
	s.now = func() time.Time { return clock }
	return &bundle{store: s, rdb: rdb, rs: rs}
}

// newJob returns a new single-recipient job in status st, as the API would
// build it.
func newJob(st mms.Status) *mms.Job {
	created := clock.Add(-time.Minute)
	return &mms.Job{
		ID:       mms.NewJobID(),
		Status:   st,
		Priority: mms.PriorityNormal,
		Message: mms.Message{
			To:       []string{"+12025550123"},
			From:     "+12025550100",
			MediaURL: "https://cdn.example.com/mms/a.jpg",
			Text:     "hello",
		},
		MaxAttempts: 5,
		CreatedAt:   created,
		UpdatedAt:   created,
	}
}

// create stores a new job in status st and returns it.
func (b *bundle) create(t *testing.T, st mms.Status) *mms.Job {
	t.Helper()

	j := newJob(st)
	require.NoError(t, b.store.Create(context.Background(), j))
	return j
}

func (b *bundle) get(t *testing.T, id string) *mms.Job {
	t.Helper()

	j, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	return j
}

func (b *bundle) raw(t *testing.T, id string) map[string]string {
	t.Helper()

	h, err := b.rdb.HGetAll(context.Background(), key(id)).Result()
	require.NoError(t, err)
	return h
}

func (b *bundle) begin(t *testing.T, id string) *Attempt {
	t.Helper()

	a, err := b.store.Begin(context.Background(), id)
	require.NoError(t, err)
	return a
}

func (b *bundle) finish(t *testing.T, id string, o Outcome) bool {
	t.Helper()

	ok, err := b.store.Finish(context.Background(), id, o)
	require.NoError(t, err)
	return ok
}

func TestCreateGetRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// Local time with nanoseconds: the store keeps milliseconds, in UTC.
	created := time.Date(2025, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("EST", -5*3600))
	in := &mms.Job{
		ID:        mms.NewJobID(),
		Status:    mms.StatusScheduled,
		Priority:  mms.PriorityBulk,
		Reference: "campaign-7/wave 2",
		Message: mms.Message{
			To:       []string{"+12025550123", "+14155552671"},
			From:     "+12025550100",
			MediaURL: "https://cdn.example.com/mms/sale.jpg?sig=abc&x=1",
			Text:     "Winter sale ✓ starts now",
			Subject:  "Sale",
			Parameters: map[string]map[string]string{
				"name": {"+12025550123": "Ann", "default": "friend"},
			},
		},
		MaxAttempts: 7,
		CreatedAt:   created,
		UpdatedAt:   created,
	}
	require.NoError(t, b.store.Create(ctx, in))

	want := *in
	want.CreatedAt = created.UTC().Truncate(time.Millisecond)
	want.UpdatedAt = want.CreatedAt
	want.History = []mms.Event{{At: want.CreatedAt, Status: in.Status}}
	got, err := b.store.Get(ctx, in.ID)
	require.NoError(t, err)
	require.Equal(t, &want, got)
	require.Zero(t, got.Attempts)
	require.True(t, got.NextAttemptAt.IsZero())
	require.Nil(t, got.LastError)
	require.Empty(t, got.SinchBatchID)
}

func TestCreateOptionalFieldsStayEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)

	j := newJob(mms.StatusQueued)
	j.Reference = ""
	require.NoError(t, b.store.Create(context.Background(), j))

	got := b.get(t, j.ID)
	require.Empty(t, got.Reference)
	require.Nil(t, got.Message.Parameters)
	require.NotContains(t, b.raw(t, j.ID), fReference, "an empty reference is not stored at all")
}

func TestCreateExistingIDFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	first := b.create(t, mms.StatusQueued)
	before := b.raw(t, first.ID)

	second := newJob(mms.StatusSending)
	second.ID = first.ID
	second.Message.To = []string{"+14155552671"}
	err := b.store.Create(ctx, second)
	require.ErrorIs(t, err, ErrExists)
	require.Equal(t, before, b.raw(t, first.ID), "the first record is untouched")
}

func TestGetUnknownIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, err := b.store.Get(context.Background(), mms.NewJobID())
	require.ErrorIs(t, err, mms.ErrNotFound)
}

func TestDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	j := b.create(t, mms.StatusQueued)
	require.NoError(t, b.store.Delete(ctx, j.ID))
	_, err := b.store.Get(ctx, j.ID)
	require.ErrorIs(t, err, mms.ErrNotFound)
	require.NoError(t, b.store.Delete(ctx, j.ID), "deleting twice is not an error")
}

func TestBeginFromEachStatus(t *testing.T) {
	t.Parallel()

	tests := []struct {
		from mms.Status
		done bool
	}{
		{mms.StatusQueued, false},
		{mms.StatusScheduled, false},
		{mms.StatusSending, false},
		{mms.StatusRetrying, false},
		{mms.StatusSent, true},
		{mms.StatusDelivered, true},
		{mms.StatusPartiallyDelivered, true},
		{mms.StatusFailed, true},
		{mms.StatusCanceled, true},
		{mms.StatusExpired, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.from), func(t *testing.T) {
			t.Parallel()
			b := setup(t)

			j := b.create(t, tt.from)
			before := b.raw(t, j.ID)
			a, err := b.store.Begin(context.Background(), j.ID)
			if tt.done {
				require.ErrorIs(t, err, ErrDone)
				require.ErrorContains(t, err, string(tt.from))
				require.Nil(t, a)
				require.Equal(t, before, b.raw(t, j.ID), "a refused claim changes nothing")
				return
			}

			require.NoError(t, err)
			require.Equal(t, tt.from, a.Previous)
			require.False(t, a.Ambiguous)
			require.Equal(t, mms.StatusSending, a.Job.Status)
			require.Equal(t, 1, a.Job.Attempts)
			require.Equal(t, clock, a.Job.UpdatedAt)
			require.Equal(t, j.Message, a.Job.Message)
			require.Equal(t, a.Job, b.get(t, j.ID), "Begin returns the record as stored")
		})
	}
}

func TestBeginCountsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)

	j := b.create(t, mms.StatusQueued)
	prev := mms.StatusQueued
	for n := 1; n <= 3; n++ {
		a := b.begin(t, j.ID)
		require.Equal(t, n, a.Job.Attempts)
		require.Equal(t, prev, a.Previous)
		prev = mms.StatusSending // no Finish in between: the claim was left open
	}
	require.Equal(t, 3, b.get(t, j.ID).Attempts)

	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying}))
	a := b.begin(t, j.ID)
	require.Equal(t, mms.StatusRetrying, a.Previous)
	require.Equal(t, 4, a.Job.Attempts)
}

func TestBeginMissingIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, err := b.store.Begin(context.Background(), mms.NewJobID())
	require.ErrorIs(t, err, mms.ErrNotFound)
}

func TestFinishMoves(t *testing.T) {
	t.Parallel()

	tests := []struct {
		from, to mms.Status
		applied  bool
	}{
		{mms.StatusSending, mms.StatusSent, true},
		{mms.StatusSending, mms.StatusRetrying, true},
		{mms.StatusSending, mms.StatusFailed, true},
		{mms.StatusRetrying, mms.StatusSending, true},
		{mms.StatusRetrying, mms.StatusRetrying, true},
		{mms.StatusQueued, mms.StatusSent, true},
		{mms.StatusSent, mms.StatusDelivered, true},
		{mms.StatusSent, mms.StatusFailed, true},

		{mms.StatusSent, mms.StatusRetrying, false},
		{mms.StatusSent, mms.StatusSending, false},
		{mms.StatusSent, mms.StatusSent, false},
		{mms.StatusSent, mms.StatusQueued, false},
		{mms.StatusRetrying, mms.StatusQueued, false},
		{mms.StatusFailed, mms.StatusSent, false},
		{mms.StatusFailed, mms.StatusRetrying, false},
		{mms.StatusCanceled, mms.StatusSent, false},
		{mms.StatusDelivered, mms.StatusFailed, false},
		{mms.StatusExpired, mms.StatusSent, false},
		{mms.StatusSending, mms.Status("bogus"), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s to %s", tt.from, tt.to), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()

			j := b.create(t, tt.from)
			// Give the record a TTL that a refresh would visibly change.
			require.NoError(t, b.rdb.PExpire(ctx, key(j.ID), time.Minute).Err())
			before := b.raw(t, j.ID)

			o := Outcome{
				Status:        tt.to,
				BatchID:       "01HF4WG1TAVS351YYD7Q84K8HA",
				Err:           &mms.JobError{Code: "service_unavailable", Message: "try later", At: clock},
				NextAttemptAt: clock.Add(time.Minute),
				Ambiguous:     true,
			}
			applied := b.finish(t, j.ID, o)
			require.Equal(t, tt.applied, applied)

			if !tt.applied {
				require.Equal(t, before, b.raw(t, j.ID), "a refused move changes nothing")
				ttl, err := b.rdb.PTTL(ctx, key(j.ID)).Result()
				require.NoError(t, err)
				require.LessOrEqual(t, ttl, time.Minute, "a refused move does not refresh the TTL either")
				return
			}
			got := b.get(t, j.ID)
			require.Equal(t, tt.to, got.Status)
			require.Equal(t, o.BatchID, got.SinchBatchID)
			require.Equal(t, o.Err, got.LastError)
			require.Equal(t, o.NextAttemptAt, got.NextAttemptAt)
			require.Equal(t, clock, got.UpdatedAt)
			require.Zero(t, got.Attempts, "only Begin and Uncount change the count")
		})
	}
}

func TestFinishMissingIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	id := mms.NewJobID()
	ok, err := b.store.Finish(ctx, id, Outcome{Status: mms.StatusSent, BatchID: "b1"})
	require.NoError(t, err)
	require.False(t, ok)
	n, err := b.rdb.Exists(ctx, key(id)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "Finish never creates a record")
}

func TestUncountGivesTheAttemptBack(t *testing.T) {
	t.Parallel()
	b := setup(t)

	j := b.create(t, mms.StatusQueued)
	b.begin(t, j.ID)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying}))
	require.Equal(t, 1, b.get(t, j.ID).Attempts, "a counted attempt stays counted")

	a := b.begin(t, j.ID)
	require.Equal(t, 2, a.Job.Attempts)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, Uncount: true}))
	require.Equal(t, 1, b.get(t, j.ID).Attempts)
}

func TestNextAttemptAndAmbiguous(t *testing.T) {
	t.Parallel()
	b := setup(t)

	j := b.create(t, mms.StatusQueued)
	b.begin(t, j.ID)

	next := clock.Add(90 * time.Second)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: next, Ambiguous: true}))
	got := b.get(t, j.ID)
	require.Equal(t, next, got.NextAttemptAt)
	require.Contains(t, b.raw(t, j.ID), fAmbiguous)

	// Begin clears the planned time but reports, and keeps, the ambiguity:
	// only the outcome of this attempt can settle it.
	a := b.begin(t, j.ID)
	require.True(t, a.Ambiguous)
	require.True(t, a.Job.NextAttemptAt.IsZero())
	require.True(t, b.get(t, j.ID).NextAttemptAt.IsZero())
	require.Contains(t, b.raw(t, j.ID), fAmbiguous)

	// A retry with no planned time and a clear outcome clears both.
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: next, Ambiguous: true}))
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying}))
	require.NotContains(t, b.raw(t, j.ID), fNext)
	require.NotContains(t, b.raw(t, j.ID), fAmbiguous)
	require.False(t, b.begin(t, j.ID).Ambiguous)

	// Sent clears them too.
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: next, Ambiguous: true}))
	b.begin(t, j.ID)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "b1"}))
	h := b.raw(t, j.ID)
	require.NotContains(t, h, fNext)
	require.NotContains(t, h, fAmbiguous)
}

func TestTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	pttl := func(id string) time.Duration {
		t.Helper()
		d, err := b.rdb.PTTL(ctx, key(id)).Result()
		require.NoError(t, err)
		return d
	}

	j := b.create(t, mms.StatusQueued)
	// A lower bound far below the TTL keeps a slow machine from failing this.
	require.Greater(t, pttl(j.ID), testTTL-time.Minute, "Create sets the TTL")
	require.LessOrEqual(t, pttl(j.ID), testTTL)

	require.NoError(t, b.rdb.PExpire(ctx, key(j.ID), 10*time.Second).Err())
	b.begin(t, j.ID)
	require.Greater(t, pttl(j.ID), testTTL-time.Minute, "Begin refreshes the TTL")

	require.NoError(t, b.rdb.PExpire(ctx, key(j.ID), 10*time.Second).Err())
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "b1"}))
	require.Greater(t, pttl(j.ID), testTTL-time.Minute, "Finish refreshes the TTL")
}

// TestConcurrentAttempts races workers that each claim the job and report
// it sent, as duplicate deliveries of one task would. Exactly one report
// may land, and the record must tell a single story.
func TestConcurrentAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	j := b.create(t, mms.StatusQueued)

	const workers = 16
	type result struct {
		begun, applied bool
		batchID        string
		err            error
	}
	results := make([]result, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			r := &results[i]
			_, err := b.store.Begin(ctx, j.ID)
			if errors.Is(err, ErrDone) {
				return
			}
			if err != nil {
				r.err = err
				return
			}
			r.begun = true
			r.batchID = fmt.Sprintf("batch-%02d", i)
			r.applied, r.err = b.store.Finish(ctx, j.ID, Outcome{Status: mms.StatusSent, BatchID: r.batchID})
		})
	}
	close(start)
	wg.Wait()

	var begun, applied int
	var winner string
	for _, r := range results {
		require.NoError(t, r.err)
		if r.begun {
			begun++
		}
		if r.applied {
			applied++
			winner = r.batchID
		}
	}
	require.Equal(t, 1, applied, "exactly one worker records the send")
	require.GreaterOrEqual(t, begun, 1)

	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, got.Status)
	require.Equal(t, winner, got.SinchBatchID)
	require.Equal(t, begun, got.Attempts, "every claim that went through is counted, and no other")

	_, err := b.store.Begin(ctx, j.ID)
	require.ErrorIs(t, err, ErrDone)
}

// TestMemoryPerJob reports what one single-recipient job costs in Redis. A
// campaign keeps hundreds of thousands of these for the retention period.
func TestMemoryPerJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	j := newJob(mms.StatusQueued)
	j.Reference = "campaign-2025-03-spring"
	require.NoError(t, b.store.Create(ctx, j))
	b.begin(t, j.ID)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "01HF4WG1TAVS351YYD7Q84K8HA"}))

	payload := len(key(j.ID))
	for f, v := range b.raw(t, j.ID) {
		payload += len(f) + len(v)
	}
	t.Logf("sent single-recipient job: key and field bytes %d", payload)

	if b.rs.Embedded {
		t.Skip("MEMORY USAGE not checked: the embedded Redis (miniredis) does not implement it")
	}
	n, err := b.rdb.MemoryUsage(ctx, key(j.ID)).Result()
	require.NoError(t, err)
	enc, err := b.rdb.ObjectEncoding(ctx, key(j.ID)).Result()
	require.NoError(t, err)
	t.Logf("sent single-recipient job: MEMORY USAGE %d bytes, encoding %s", n, enc)
	require.Less(t, n, int64(4096), "sanity bound, not a budget")
}

func TestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := newJob(mms.StatusQueued)
	require.NoError(t, b.store.Create(ctx, j))

	_, err := b.store.Begin(ctx, j.ID)
	require.NoError(t, err)
	_, err = b.store.Finish(ctx, j.ID, Outcome{Status: mms.StatusRetrying,
		Err: &mms.JobError{Code: "service_unavailable", Message: "x", At: clock}})
	require.NoError(t, err)
	_, err = b.store.Begin(ctx, j.ID)
	require.NoError(t, err)
	_, err = b.store.Finish(ctx, j.ID, Outcome{Status: mms.StatusFailed,
		Err: &mms.JobError{Code: "syntax_constraint_violation", Message: "y", At: clock}})
	require.NoError(t, err)

	got, err := b.store.Get(ctx, j.ID)
	require.NoError(t, err)
	var seen []string
	for _, e := range got.History {
		seen = append(seen, string(e.Status)+"/"+e.Code)
	}
	require.Equal(t, []string{"queued/", "sending/", "retrying/service_unavailable", "sending/",
		"failed/syntax_constraint_violation"}, seen)

	// A long-retrying job keeps only the latest entries.
	for range 30 {
		_, err = b.store.Finish(ctx, j.ID, Outcome{Status: mms.StatusFailed})
		require.NoError(t, err) // refused: failed is final, and adds nothing
	}
	k := newJob(mms.StatusQueued)
	require.NoError(t, b.store.Create(ctx, k))
	for range 15 {
		_, err = b.store.Begin(ctx, k.ID)
		require.NoError(t, err)
		_, err = b.store.Finish(ctx, k.ID, Outcome{Status: mms.StatusRetrying})
		require.NoError(t, err)
	}
	got, err = b.store.Get(ctx, k.ID)
	require.NoError(t, err)
	require.Len(t, got.History, maxEvents)
	require.Equal(t, mms.StatusRetrying, got.History[maxEvents-1].Status)
}
