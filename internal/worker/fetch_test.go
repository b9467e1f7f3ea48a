package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinch"
)

// fakeReports answers DeliveryReport calls from a list, and counts them.
type fakeReports struct {
	answers []func(batchID string) ([]byte, error)
	calls   int
}

func (f *fakeReports) DeliveryReport(_ context.Context, batchID string) ([]byte, error) {
	a := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	return a(batchID)
}

func fullReport(jobID string, buckets string) func(string) ([]byte, error) {
	return func(batchID string) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"type":"delivery_report_mms","batch_id":%q,"client_reference":%q,`+
			`"total_message_count":2,"statuses":[%s]}`, batchID, jobID, buckets)), nil
	}
}

func fetchTask(t *testing.T, id string) *asynq.Task {
	p, err := json.Marshal(fetchPayload{JobID: id})
	require.NoError(t, err)
	return asynq.NewTask(TypeFetchReports, p)
}

// TestFetchReports: a sent job without final reports for everyone is
// looked up at Sinch; what is still open is looked up again a window
// later, and the fetch stops once the job is settled.
func TestFetchReports(t *testing.T) {
	b := setup(t, options{})
	j := b.create(t, 3)
	require.NoError(t, b.process(t, j.ID))
	sent := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, sent.Status)

	src := &fakeReports{answers: []func(string) ([]byte, error){
		func(string) ([]byte, error) { return nil, &sinch.Error{StatusCode: http.StatusServiceUnavailable} },
		fullReport(j.ID, `{"code":0,"status":"Delivered","count":1,"recipients":["12025550123"]},`+
			`{"code":401,"status":"Dispatched","count":1,"recipients":["14155552671"]}`),
		fullReport(j.ID, `{"code":0,"status":"Delivered","count":1,"recipients":["12025550123"]},`+
			`{"code":417,"status":"Failed","count":1,"recipients":["14155552671"]}`),
	}}
	f := NewFetcher(b.store, src, time.Minute, zerolog.New(t.Output()))

	// Sinch down: look again a window later, at no cost.
	require.Equal(t, time.Minute, requireRetry(t, f.ProcessTask(context.Background(), fetchTask(t, j.ID)), false))
	// One recipient final, one not: again.
	requireRetry(t, f.ProcessTask(context.Background(), fetchTask(t, j.ID)), false)
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status)
	// Both final: settled, and done.
	require.NoError(t, f.ProcessTask(context.Background(), fetchTask(t, j.ID)))
	require.Equal(t, mms.StatusPartiallyDelivered, b.get(t, j.ID).Status)
	require.NoError(t, f.ProcessTask(context.Background(), fetchTask(t, j.ID)), "settled: nothing to do")
	require.Equal(t, 3, src.calls, "no call once the job is settled")

	_, reps, err := b.store.GetWithReports(context.Background(), j.ID)
	require.NoError(t, err)
	require.Len(t, reps, 2)

	// Past the job's expiry by a window, with reports still open, it gives
	// up.
	expire := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	other := &mms.Job{ID: mms.NewJobID(), Status: mms.StatusQueued, Priority: mms.PriorityNormal,
		Message: mms.Message{To: []string{"+12025550123", "+14155552671"}, From: "+12025550100",
			MediaURL: "https://cdn.example.com/a.jpg", ExpireAt: expire},
		MaxAttempts: 3, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	require.NoError(t, b.store.Create(context.Background(), other))
	require.NoError(t, b.process(t, other.ID))
	src.answers = []func(string) ([]byte, error){fullReport(other.ID,
		`{"code":401,"status":"Dispatched","count":1,"recipients":["14155552671"]}`)}
	requireRetry(t, f.ProcessTask(context.Background(), fetchTask(t, other.ID)), false)
	f.now = func() time.Time { return expire.Add(2 * time.Minute) }
	require.NoError(t, f.ProcessTask(context.Background(), fetchTask(t, other.ID)))
	require.Equal(t, mms.StatusSent, b.get(t, other.ID).Status)
}
