package app_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// bodyTo is a send body for the given numbers and priority.
func bodyTo(prio string, numbers ...string) string {
	return fmt.Sprintf(`{"to":["%s"],"media_url":"https://cdn.example.com/a.jpg","priority":%q}`,
		strings.Join(numbers, `","`), prio)
}

// number returns a distinct valid US number for i < 10000.
func number(i int) string { return fmt.Sprintf("+1202555%04d", i) }

// sendMany sends n jobs of size recipients each, four requests at a time,
// and returns their IDs.
func (s *stack) sendMany(t *testing.T, n, size int, prio string) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		to := make([]string, size)
		for k := range to {
			to[k] = number(i*size + k)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ids[i] = s.send(t, bodyTo(prio, to...))
		})
	}
	wg.Wait()
	return ids
}

// waitBatches waits until the simulator holds n batches, and returns them
// in the order it created them.
func waitBatches(t *testing.T, sim *sinchsim.Server, n int, limit time.Duration) []sinchsim.Batch {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b := sim.Batches()
		if len(b) >= n {
			slices.SortStableFunc(b, func(x, y sinchsim.Batch) int { return x.CreatedAt.Compare(y.CreatedAt) })
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator holds %d batches after %s, want %d", len(b), limit, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSharedRateLimitAcrossWorkers runs three worker processes on one Redis
// with a plan limit of 40 recipients per second and checks, from the times
// the simulator received the batches, that together they kept to it.
func TestSharedRateLimitAcrossWorkers(t *testing.T) {
	const rate, burst = 40.0, 8.0
	s := setup(t, options{noWorker: true})
	const jobs, size = 30, 4 // 120 recipients: about 2.8 s at the limit
	s.sendMany(t, jobs, size, "normal")

	s.startWorkers(t, 3, func(c *config.Worker) {
		c.SinchRateLimit, c.SinchRateBurst = rate, burst
		c.RateWaitMax = 200 * time.Millisecond
	})
	batches := waitBatches(t, s.sim, jobs, 30*time.Second)
	require.Len(t, batches, jobs, "each job sent once")

	// In every stretch of batches, what went out fits in the burst plus
	// the rate times the stretch's length. Slack: one batch, and 50 ms of
	// scatter between when a send was let through and when the simulator
	// saw it.
	for i := range batches {
		sum := 0
		for j := i; j < len(batches); j++ {
			sum += len(batches[j].To)
			span := batches[j].CreatedAt.Sub(batches[i].CreatedAt).Seconds()
			allowed := burst + rate*(span+0.05) + size
			require.LessOrEqualf(t, float64(sum), allowed,
				"batches %d..%d: %d recipients in %.3fs exceeds the shared limit", i, j, sum, span)
		}
	}
	total := batches[len(batches)-1].CreatedAt.Sub(batches[0].CreatedAt).Seconds()
	t.Logf("%d recipients in %.2fs: %.1f/s against a limit of %.0f/s", jobs*size, total,
		float64(jobs*size)/total, rate)
}

// TestHighOvertakesBulkBacklog keeps a worker busy with a bulk backlog
// under a rate limit, then sends one high-priority job: it must go out
// after only the few bulk sends already under way, not behind the backlog.
func TestHighOvertakesBulkBacklog(t *testing.T) {
	const concurrency = 4
	s := setup(t, options{noWorker: true})
	bulk := s.sendMany(t, 120, 1, "bulk")

	s.startWorkers(t, 1, func(c *config.Worker) {
		c.SinchRateLimit, c.SinchRateBurst = 20, 1 // the backlog needs six seconds
		c.Concurrency = concurrency
	})
	waitBatches(t, s.sim, 10, 10*time.Second)

	accepted := time.Now()
	high := s.send(t, bodyTo("high", number(9999)))
	s.waitFor(t, high, mms.StatusSent)
	took := time.Since(accepted)

	batches := s.sim.Batches()
	before := 0
	for _, b := range batches {
		if b.ClientReference == high {
			break
		}
		if b.CreatedAt.After(accepted) {
			before++
		}
	}
	t.Logf("high job sent %v after acceptance, behind %d bulk sends; %d of %d bulk sent by then",
		took, before, len(batches)-1, len(bulk))
	require.Less(t, len(batches)-1, len(bulk)/2, "the bulk backlog was still queued")
	require.LessOrEqual(t, before, concurrency+2,
		"only the bulk sends already under way went before the high job")

	// And the backlog still drains in full.
	waitBatches(t, s.sim, len(bulk)+1, 20*time.Second)
	t.Logf("drained %v after acceptance", time.Since(accepted))
	for _, id := range bulk {
		require.Equal(t, 1, s.sim.CountByClientReference(id), "job %s sent once", id)
	}
}

// postCampaign posts a JSON campaign of the given numbers and returns its
// ID.
func (s *stack) postCampaign(t *testing.T, extra string, numbers ...string) string {
	t.Helper()
	body := fmt.Sprintf(`{"media_url":"https://cdn.example.com/a.jpg","recipients":["%s"]%s}`,
		strings.Join(numbers, `","`), extra)
	r := s.do(t, "POST", "/api/mms/campaigns", "application/json", body)
	require.Equal(t, 202, r.status, "%v", r.body)
	return r.body["campaign_id"].(string)
}

// TestCampaignCapWithoutPlanLimit: a campaign's rate_limit holds even when
// the worker has no plan limit of its own.
func TestCampaignCapWithoutPlanLimit(t *testing.T) {
	s := setup(t, options{batchSize: 1})
	nums := make([]string, 6)
	for i := range nums {
		nums[i] = number(100 + i)
	}
	id := s.postCampaign(t, `,"rate_limit":2`, nums...)
	s.waitCampaign(t, id, "completed")
	b := waitBatches(t, s.sim, 6, time.Second)
	span := b[5].CreatedAt.Sub(b[0].CreatedAt)
	// Two may go at once, then one every half second: at least 2 s.
	require.GreaterOrEqual(t, span, 1900*time.Millisecond, "six recipients at 2/s went out in %v", span)
}

// TestCappedCampaignDoesNotStarveOthers: the sends of a campaign held by
// its own slow cap give their worker slots back, so a campaign behind it
// goes out at once.
func TestCappedCampaignDoesNotStarveOthers(t *testing.T) {
	s := setup(t, options{batchSize: 1, noWorker: true})
	slow := make([]string, 20)
	fast := make([]string, 20)
	for i := range slow {
		slow[i], fast[i] = number(200+i), number(300+i)
	}
	slowID := s.postCampaign(t, `,"rate_limit":2`, slow...) // ten seconds of sends
	fastID := s.postCampaign(t, "", fast...)
	s.startWorkers(t, 1, func(c *config.Worker) { c.Concurrency = 2 })

	s.waitCampaign(t, fastID, "completed")
	v := s.do(t, "GET", "/api/mms/campaigns/"+slowID, "", "").body
	sent := num(v["recipients_by_status"].(map[string]any)["sent"])
	require.Less(t, sent, 10, "the capped campaign is still going: %d of 20 sent", sent)
}
