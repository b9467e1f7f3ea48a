package jobstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// notifications records the jobs the store asked to notify, and fails
// while fail is set.
type notifications struct {
	mu   sync.Mutex
	ids  []string
	fail bool
}

func (n *notifications) notify(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids = append(n.ids, id)
	if n.fail {
		return errors.New("redis went away")
	}
	return nil
}

func (n *notifications) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.ids)
}

func (b *bundle) withCallback(t *testing.T) (*mms.Job, *notifications) {
	t.Helper()
	n := &notifications{}
	b.store.SetNotifier(n.notify)
	j := newJob(mms.StatusQueued)
	j.CallbackURL = "https://hooks.example.com/mms"
	j.Reference = "order-7"
	require.NoError(t, b.store.Create(context.Background(), j))
	return j, n
}

func (b *bundle) outbox(t *testing.T, id string) OutboxState {
	t.Helper()
	box, err := b.store.Outbox(context.Background(), id)
	require.NoError(t, err)
	return box
}

// TestOutboxRecordsEveryChange: each status change of a job with a callback
// URL adds one numbered event, with the status it left, and asks for it to
// be queued; accepting the job adds none.
func TestOutboxRecordsEveryChange(t *testing.T) {
	b := setup(t)
	j, n := b.withCallback(t)
	ctx := context.Background()
	require.Empty(t, b.outbox(t, j.ID).Events, "the 202 told the client the first status")

	b.begin(t, j.ID)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: clock.Add(time.Minute),
		Err: &mms.JobError{Code: "sinch_unavailable", Message: "503"}}))
	b.begin(t, j.ID)
	require.True(t, b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "b-1", Recipients: 1}))

	box := b.outbox(t, j.ID)
	require.Equal(t, "https://hooks.example.com/mms", box.URL)
	require.Equal(t, "order-7", box.Reference)
	require.Equal(t, "b-1", box.BatchID)
	var got []string
	for i, e := range box.Events {
		require.Equal(t, int64(i+1), e.Seq)
		require.Equal(t, j.ID, e.JobID)
		require.Equal(t, clock.Truncate(time.Millisecond), e.At)
		got = append(got, string(e.Previous)+">"+string(e.Status)+":"+e.Code)
	}
	require.Equal(t, []string{"queued>sending:", "sending>retrying:sinch_unavailable", "retrying>sending:",
		"sending>sent:"}, got)
	require.Equal(t, 4, n.count())
	require.Equal(t, j.ID+"-4", box.Events[3].ID())

	// Delivered events leave; a repeat of one changes nothing.
	ok, err := b.store.EventDone(ctx, j.ID, 2, false)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.store.EventDone(ctx, j.ID, 2, false)
	require.NoError(t, err)
	require.False(t, ok)
	for _, seq := range []int64{1, 3} {
		_, err = b.store.EventDone(ctx, j.ID, seq, false)
		require.NoError(t, err)
	}
	_, err = b.store.EventDone(ctx, j.ID, 4, true)
	require.NoError(t, err)
	require.Empty(t, b.outbox(t, j.ID).Events)
	require.NotContains(t, b.raw(t, j.ID), fCallbackBox, "an empty outbox is removed")
	require.Equal(t, mms.CallbackCounts{Pending: 0, Failed: 1}, b.get(t, j.ID).Callbacks)
}

// TestNoCallbackNoOutbox: a job without a callback URL keeps no events and
// asks nothing.
func TestNoCallbackNoOutbox(t *testing.T) {
	b := setup(t)
	n := &notifications{}
	b.store.SetNotifier(n.notify)
	j := b.create(t, mms.StatusQueued)
	b.begin(t, j.ID)
	b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "b"})
	require.Zero(t, n.count())
	require.NotContains(t, b.raw(t, j.ID), fCallbackBox)
	require.NotContains(t, b.raw(t, j.ID), fCallbackSeq)
}

// TestNotifyFailureSurfacesOnlyWhenNothingFollows: a change that more
// changes follow keeps quiet about an event it could not queue, since the
// next one queues it; a final change reports it, and repeating the call
// that found the job done queues it.
func TestNotifyFailureSurfacesOnlyWhenNothingFollows(t *testing.T) {
	b := setup(t)
	j, n := b.withCallback(t)
	ctx := context.Background()
	n.fail = true

	_, err := b.store.Begin(ctx, j.ID)
	require.NoError(t, err, "sending is followed by another change")

	applied, err := b.store.Finish(ctx, j.ID, Outcome{Status: mms.StatusFailed,
		Err: &mms.JobError{Code: "invalid_recipient", Message: "no"}})
	require.True(t, applied, "the outcome itself is stored")
	require.ErrorIs(t, err, ErrEventNotQueued)
	require.Equal(t, mms.StatusFailed, b.get(t, j.ID).Status)

	// The task runs again: the job is done, and its events are queued now.
	n.fail = false
	before := n.count()
	_, err = b.store.Begin(ctx, j.ID)
	require.ErrorIs(t, err, ErrDone)
	require.Equal(t, before+1, n.count())
	require.Len(t, b.outbox(t, j.ID).Events, 2, "both events still wait for delivery")

	// A finished job whose events were all delivered asks nothing more.
	for _, e := range b.outbox(t, j.ID).Events {
		_, err := b.store.EventDone(ctx, j.ID, e.Seq, false)
		require.NoError(t, err)
	}
	before = n.count()
	_, err = b.store.Begin(ctx, j.ID)
	require.ErrorIs(t, err, ErrDone)
	require.Equal(t, before, n.count())
}

// TestCancelAndReportsEmit: cancels and the report that settles a job add
// events; a repeated report with events waiting asks for them again.
func TestCancelAndReportsEmit(t *testing.T) {
	b := setup(t)
	ctx := context.Background()

	j, n := b.withCallback(t)
	require.NoError(t, b.store.Cancel(ctx, j.ID))
	require.Equal(t, 1, n.count())
	require.ErrorIs(t, b.store.Cancel(ctx, j.ID), ErrConflict)
	require.Equal(t, 2, n.count(), "a second cancel queues what still waits")
	box := b.outbox(t, j.ID)
	require.Len(t, box.Events, 1)
	require.Equal(t, mms.StatusCanceled, box.Events[0].Status)

	k, _ := b.withCallback(t)
	b.store.SetNotifier(n.notify)
	b.begin(t, k.ID)
	b.finish(t, k.ID, Outcome{Status: mms.StatusSent, BatchID: "b-2", Recipients: 1})
	rep := Report{Recipient: "+12025550123", Status: "Delivered", Code: 0, At: clock}
	before := n.count()
	applied, err := b.store.ApplyReport(ctx, k.ID, rep)
	require.NoError(t, err)
	require.Equal(t, ReportStored, applied)
	require.Equal(t, before+1, n.count())
	evs := b.outbox(t, k.ID).Events
	require.Equal(t, mms.StatusDelivered, evs[len(evs)-1].Status)
	require.Equal(t, mms.StatusSent, evs[len(evs)-1].Previous)

	// Sinch sends it again (we may have answered 5xx): queued again.
	applied, err = b.store.ApplyReport(ctx, k.ID, rep)
	require.NoError(t, err)
	require.Equal(t, ReportRepeat, applied)
	require.Equal(t, before+2, n.count())
}

// TestOutboxIsBounded: a client that takes nothing for long keeps only the
// latest events; the dropped ones count as failed.
func TestOutboxIsBounded(t *testing.T) {
	b := setup(t)
	j, _ := b.withCallback(t)
	for range maxOutbox/2 + 1 {
		b.begin(t, j.ID)
		b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: clock,
			Err: &mms.JobError{Code: "sinch_unavailable"}})
	}
	box := b.outbox(t, j.ID)
	require.Len(t, box.Events, maxOutbox)
	require.Equal(t, int64(maxOutbox/2*2+2), box.Events[maxOutbox-1].Seq)
	require.Equal(t, int64(3), box.Events[0].Seq)
	require.Equal(t, mms.CallbackCounts{Pending: maxOutbox, Failed: 2}, b.get(t, j.ID).Callbacks)
}

// TestWaitsPostOnce: a run of waits (retries that give their attempt back)
// posts one retrying event; the attempts and waits after it post none,
// until a change that is not a wait.
func TestWaitsPostOnce(t *testing.T) {
	b := setup(t)
	j, _ := b.withCallback(t)
	wait := Outcome{Status: mms.StatusRetrying, NextAttemptAt: clock, Uncount: true,
		Err: &mms.JobError{Code: "media_http_status"}}
	for range 5 {
		b.begin(t, j.ID)
		b.finish(t, j.ID, wait)
	}
	b.begin(t, j.ID)
	b.finish(t, j.ID, Outcome{Status: mms.StatusRetrying, NextAttemptAt: clock,
		Err: &mms.JobError{Code: "sinch_unavailable"}}) // a counted retry
	b.begin(t, j.ID)
	b.finish(t, j.ID, wait) // a new run of waits posts again
	b.begin(t, j.ID)
	b.finish(t, j.ID, Outcome{Status: mms.StatusSent, BatchID: "b-9", Recipients: 1})

	var got []string
	for _, e := range b.outbox(t, j.ID).Events {
		got = append(got, string(e.Previous)+">"+string(e.Status)+":"+e.Code)
	}
	require.Equal(t, []string{"queued>sending:", "sending>retrying:media_http_status",
		"sending>retrying:sinch_unavailable", "retrying>sending:", "sending>retrying:media_http_status",
		"sending>sent:"}, got)
	require.Len(t, b.get(t, j.ID).History, 17, "the job's history still has every change")
}

// TestExpiredAtClaimIsPosted: a job that expires as a worker claims it
// posts its expired event.
func TestExpiredAtClaimIsPosted(t *testing.T) {
	b := setup(t)
	n := &notifications{}
	b.store.SetNotifier(n.notify)
	j := newJob(mms.StatusQueued)
	j.CallbackURL = "https://hooks.example.com/mms"
	j.Message.ExpireAt = clock.Add(-time.Second)
	require.NoError(t, b.store.Create(context.Background(), j))
	_, err := b.store.Begin(context.Background(), j.ID)
	require.ErrorIs(t, err, ErrExpired)
	require.Equal(t, 1, n.count())
	evs := b.outbox(t, j.ID).Events
	require.Len(t, evs, 1)
	require.Equal(t, mms.StatusExpired, evs[0].Status)
}
