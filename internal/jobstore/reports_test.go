package jobstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// sentJob stores a job to the given recipients and records it sent.
func (b *bundle) sentJob(t *testing.T, to ...string) *mms.Job {
	t.Helper()
	j := newJob(mms.StatusQueued)
	j.Message.To = to
	require.NoError(t, b.store.Create(context.Background(), j))
	_, err := b.store.Begin(context.Background(), j.ID)
	require.NoError(t, err)
	ok, err := b.store.Finish(context.Background(), j.ID, Outcome{Status: mms.StatusSent, BatchID: "batch-" + j.ID})
	require.NoError(t, err)
	require.True(t, ok)
	return j
}

func (b *bundle) report(t *testing.T, id, who, status string, code int) Applied {
	t.Helper()
	a, err := b.store.ApplyReport(context.Background(), id, Report{Recipient: who, Status: status, Code: code,
		At: clock})
	require.NoError(t, err)
	return a
}

func TestReportsDecideTheOutcome(t *testing.T) {
	b := setup(t)
	ann, bo := "+12025550123", "+14155552671"

	// Both delivered: delivered, and the intermediate report before the
	// final one changes nothing but the history.
	j := b.sentJob(t, ann, bo)
	require.Equal(t, ReportStored, b.report(t, j.ID, ann, "Dispatched", 401))
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status)
	require.Equal(t, ReportStored, b.report(t, j.ID, ann, "Delivered", 0))
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status, "one recipient still open")
	require.Equal(t, ReportStored, b.report(t, j.ID, bo, "Delivered", 0))
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusDelivered, got.Status)
	require.Equal(t, "report", string(got.History[len(got.History)-2].Status))

	// One of two: partially delivered.
	j = b.sentJob(t, ann, bo)
	b.report(t, j.ID, ann, "Delivered", 0)
	b.report(t, j.ID, bo, "Failed", 417)
	require.Equal(t, mms.StatusPartiallyDelivered, b.get(t, j.ID).Status)

	// None: failed.
	j = b.sentJob(t, ann)
	b.report(t, j.ID, ann, "Expired", 406)
	require.Equal(t, mms.StatusFailed, b.get(t, j.ID).Status)

	_, reps, err := b.store.GetWithReports(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, []Report{{Recipient: ann, Status: "Expired", Code: 406, At: clock}}, reps)
}

func TestReportsRepeatedAndOutOfOrder(t *testing.T) {
	b := setup(t)
	ann := "+12025550123"
	j := b.sentJob(t, ann)
	require.Equal(t, ReportStored, b.report(t, j.ID, ann, "Delivered", 0))
	history := len(b.get(t, j.ID).History)

	require.Equal(t, ReportRepeat, b.report(t, j.ID, ann, "Delivered", 0), "the same report again")
	require.Equal(t, ReportFinalKept, b.report(t, j.ID, ann, "Dispatched", 401), "late intermediate")
	require.Equal(t, ReportRepeat, b.report(t, j.ID, ann, "Failed", 417), "the first final one stands")
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusDelivered, got.Status)
	require.Len(t, got.History, history, "nothing recorded for them")

	require.Equal(t, ReportNoJob, b.report(t, mms.NewJobID(), ann, "Delivered", 0))
}

// TestIntermediateReportsOnlyMoveForward: among Queued and Dispatched a
// report counts only when it is news. A repeat stamped with another time
// (a report without "at", or one fetched again), an earlier stage, or the
// same stage reported earlier changes nothing, history included.
func TestIntermediateReportsOnlyMoveForward(t *testing.T) {
	b := setup(t)
	ann := "+12025550123"
	j := b.sentJob(t, ann)
	at := func(d time.Duration, status string, code int) Applied {
		t.Helper()
		a, err := b.store.ApplyReport(context.Background(), j.ID,
			Report{Recipient: ann, Status: status, Code: code, At: clock.Add(d)})
		require.NoError(t, err)
		return a
	}
	require.Equal(t, ReportStored, at(0, "Queued", 400))
	history := len(b.get(t, j.ID).History)
	require.Equal(t, ReportRepeat, at(time.Minute, "Queued", 400), "the same status later")
	require.Equal(t, ReportStored, at(2*time.Minute, "Dispatched", 401))
	require.Equal(t, ReportRepeat, at(3*time.Minute, "Queued", 400), "an earlier stage")
	require.Equal(t, ReportRepeat, at(time.Minute, "Dispatched", 402), "the same stage, reported earlier")
	require.Equal(t, ReportRepeat, at(4*time.Minute, "Dispatched", 401), "the same status later")
	require.Len(t, b.get(t, j.ID).History, history+1, "only the Dispatched report recorded")

	_, reps, err := b.store.GetWithReports(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, []Report{{Recipient: ann, Status: "Dispatched", Code: 401, At: clock.Add(2 * time.Minute)}}, reps)

	require.Equal(t, ReportStored, at(5*time.Minute, "Dispatched", 402), "the same stage, later, another code")
	require.Equal(t, ReportStored, at(time.Second, "Delivered", 0), "a final report after any intermediate")
	require.Equal(t, mms.StatusDelivered, b.get(t, j.ID).Status)
}

// TestReportedJobIsNotRetried: reports can fail a job before the worker
// records its batch, and that record can be lost (a crash). The reports
// alone prove a batch at Sinch, so the job is never re-driven.
func TestReportedJobIsNotRetried(t *testing.T) {
	b := setup(t)
	ann := "+12025550123"
	j := newJob(mms.StatusQueued)
	j.Message.To = []string{ann}
	require.NoError(t, b.store.Create(context.Background(), j))
	_, err := b.store.Begin(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, ReportStored, b.report(t, j.ID, ann, "Failed", 417))
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, got.Status)
	require.Empty(t, got.SinchBatchID)

	err = b.store.Redrive(context.Background(), j.ID)
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorContains(t, err, "delivery reports")
	require.Equal(t, mms.StatusFailed, b.get(t, j.ID).Status)
}

// TestReportBeforeSendIsRecorded: Sinch's report can come before the worker
// records the batch. The job takes its outcome from the report, and the
// worker's late "sent" still stores the batch ID.
func TestReportBeforeSendIsRecorded(t *testing.T) {
	b := setup(t)
	ann := "+12025550123"
	j := newJob(mms.StatusQueued)
	require.NoError(t, b.store.Create(context.Background(), j))
	_, err := b.store.Begin(context.Background(), j.ID)
	require.NoError(t, err)

	require.Equal(t, ReportStored, b.report(t, j.ID, ann, "Delivered", 0))
	require.Equal(t, mms.StatusDelivered, b.get(t, j.ID).Status)

	ok, err := b.store.Finish(context.Background(), j.ID, Outcome{Status: mms.StatusSent, BatchID: "b-late"})
	require.NoError(t, err)
	require.True(t, ok)
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusDelivered, got.Status, "the outcome stays")
	require.Equal(t, "b-late", got.SinchBatchID)
	require.False(t, got.SentAt.IsZero())
}

func TestReportsByBatchWaitForTheIndex(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	id, err := b.store.JobForBatch(ctx, "batch-x", []byte(`{"report":1}`))
	require.NoError(t, err)
	require.Empty(t, id, "no job known yet: the report waits")
	id, err = b.store.JobForBatch(ctx, "batch-x", []byte(`{"report":2}`))
	require.NoError(t, err)
	require.Empty(t, id)

	pending, err := b.store.IndexBatch(ctx, "batch-x", "job-1")
	require.NoError(t, err)
	require.Equal(t, []string{`{"report":1}`, `{"report":2}`}, pending)
	id, err = b.store.JobForBatch(ctx, "batch-x", []byte(`{"report":3}`))
	require.NoError(t, err)
	require.Equal(t, "job-1", id)
	pending, err = b.store.IndexBatch(ctx, "batch-x", "job-1")
	require.NoError(t, err)
	require.Len(t, pending, 2, "kept until they are dropped: a crash while they are applied loses none")
	require.NoError(t, b.store.DropPending(ctx, "batch-x"))
	pending, err = b.store.IndexBatch(ctx, "batch-x", "job-1")
	require.NoError(t, err)
	require.Empty(t, pending)
	ttl, err := b.rdb.PTTL(ctx, batchIndexKey("batch-x")).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0))
}

// TestReportsOnlyForWhatWasSent: a report for a number that is not one of
// the job's recipients, or for a job that was never sent, changes nothing.
func TestReportsOnlyForWhatWasSent(t *testing.T) {
	b := setup(t)
	ann := "+12025550123"
	j := b.sentJob(t, ann)
	require.Equal(t, ReportNotOurs, b.report(t, j.ID, "+19995550000", "Delivered", 0))
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status)
	_, reps, err := b.store.GetWithReports(context.Background(), j.ID)
	require.NoError(t, err)
	require.Empty(t, reps)

	waiting := b.create(t, mms.StatusScheduled)
	require.Equal(t, ReportNotOurs, b.report(t, waiting.ID, ann, "Delivered", 0))
	require.Equal(t, mms.StatusScheduled, b.get(t, waiting.ID).Status, "a job never sent cannot be delivered")
}

// TestPendingReportsAreBounded: reports naming a batch nobody knows are
// kept, but only the latest maxPending of them.
func TestPendingReportsAreBounded(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for i := range maxPending + 10 {
		id, err := b.store.JobForBatch(ctx, "NOSUCHBATCH", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		require.NoError(t, err)
		require.Empty(t, id)
	}
	kept, err := b.rdb.LRange(ctx, pendingKey("NOSUCHBATCH"), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, kept, maxPending)
	require.Equal(t, fmt.Sprintf(`{"n":%d}`, maxPending+9), kept[len(kept)-1], "the latest are kept")
}

// TestLateSentKeepsSinchTime: a batch found by a lookup after the reports
// settled the job is recorded with the time Sinch created it, never a time
// to come.
func TestLateSentKeepsSinchTime(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		at, want time.Time
	}{
		{clock.Add(-time.Minute), clock.Add(-time.Minute)},
		{clock.Add(time.Hour), clock},
		{time.Time{}, clock},
	} {
		j := newJob(mms.StatusQueued)
		require.NoError(t, b.store.Create(context.Background(), j))
		_, err := b.store.Begin(context.Background(), j.ID)
		require.NoError(t, err)
		require.Equal(t, ReportStored, b.report(t, j.ID, "+12025550123", "Delivered", 0))
		_, err = b.store.Finish(context.Background(), j.ID,
			Outcome{Status: mms.StatusSent, BatchID: "b", SentAt: tc.at})
		require.NoError(t, err)
		got := b.get(t, j.ID)
		require.Equal(t, mms.StatusDelivered, got.Status)
		require.True(t, tc.want.Equal(got.SentAt), "at %v: sent_at %v, want %v", tc.at, got.SentAt, tc.want)
	}
}
