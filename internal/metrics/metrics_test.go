package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

func scrape(t *testing.T, a *API) string {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

// TestLabelsStayBounded: methods a client invents and reason codes that
// are not snake_case words (Sinch's code is its own text) become "other".
func TestLabelsStayBounded(t *testing.T) {
	a := NewAPI()
	a.Request("/healthz", "GET", 200, time.Millisecond)
	a.Request("/healthz", "M12345", 405, time.Millisecond)
	a.Request("/healthz", strings.Repeat("X", 5000), 405, time.Millisecond)
	for _, r := range []string{"syntax_invalid_parameter_format", "x+12025550199", strings.Repeat("z", 300),
		"Käse", "media_http_status"} {
		a.Jobs().JobChanged("mms:bulk", "failed", r)
	}
	text := scrape(t, a)
	require.Contains(t, text, `mmsgate_http_requests_total{method="GET",route="/healthz",status="200"} 1`)
	require.Contains(t, text, `mmsgate_http_requests_total{method="other",route="/healthz",status="405"} 2`)
	require.Contains(t, text, `mmsgate_jobs_failed_total{queue="mms:bulk",reason="other"} 3`)
	require.Contains(t, text, `mmsgate_jobs_failed_total{queue="mms:bulk",reason="syntax_invalid_parameter_format"} 1`)
	require.NotContains(t, text, "2025550199")
	require.NotContains(t, text, "M12345")
}

// stallingInspector answers after release is closed.
type stallingInspector struct {
	release chan struct{}
	mu      sync.Mutex
	reads   int
	fail    bool
}

func (s *stallingInspector) Queues() ([]string, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.fail {
		return nil, errors.New("redis went away")
	}
	return []string{"mms:bulk"}, nil
}

func (s *stallingInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	return &asynq.QueueInfo{Queue: q, Pending: 7}, nil
}

// TestQueuesNeverQueueUp: while one scrape reads a stalled Redis, others
// answer at once with the last figures; a failed read keeps them and is
// not retried before the ttl.
func TestQueuesNeverQueueUp(t *testing.T) {
	insp := &stallingInspector{release: make(chan struct{})}
	a := NewAPI()
	q := NewQueues(insp, []string{"mms:bulk", "mms:high"}, time.Hour, zerolog.Nop())
	a.Register(q)

	first := make(chan string)
	go func() { first <- scrape(t, a) }()
	time.Sleep(50 * time.Millisecond) // the first scrape is now stuck in Queues()
	start := time.Now()
	text := scrape(t, a)
	require.Less(t, time.Since(start), time.Second, "the second scrape did not wait for the first")
	require.NotContains(t, text, "mmsgate_queue_tasks", "no figures before the first read")
	require.Contains(t, text, "go_goroutines", "the rest of the metrics are there")
	close(insp.release)
	text = <-first
	require.Contains(t, text, `mmsgate_queue_tasks{queue="mms:bulk",state="pending"} 7`)
	require.Contains(t, text, `mmsgate_queue_tasks{queue="mms:high",state="pending"} 0`)

	insp.fail = true
	q.at = time.Time{} // the ttl is over
	text = scrape(t, a)
	require.Contains(t, text, `mmsgate_queue_tasks{queue="mms:bulk",state="pending"} 7`, "the last figures stay")
	scrape(t, a)
	require.Equal(t, 2, insp.reads, "a failed read is not retried at once")
}
