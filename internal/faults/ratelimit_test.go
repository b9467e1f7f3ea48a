package faults_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// TestCampaignRateLimitAcrossWorkerProcesses sends a campaign through three
// worker processes that share one plan limit in Redis. From the times the
// simulator received the batches: together they kept to the limit; and
// every recipient got the message exactly once.
func TestCampaignRateLimitAcrossWorkerProcesses(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const (
		rate, burst = 100.0, 10.0
		recipients  = 300
		batch       = 10
	)
	s := setup(t, sinchsim.Config{})
	s.startAPIWith(t, map[string]string{"CAMPAIGN_BATCH_SIZE": fmt.Sprint(batch)})

	numbers := make([]string, recipients)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+1202555%04d", 2000+i)
	}
	body, err := json.Marshal(map[string]any{"media_url": "https://cdn.example.com/c.jpg",
		"message": "campaign across processes", "recipients": numbers})
	require.NoError(t, err)

	over := map[string]string{
		"SINCH_RATE_LIMIT":   fmt.Sprint(rate),
		"SINCH_RATE_BURST":   fmt.Sprint(burst),
		"WORKER_CONCURRENCY": "4",
		"RATE_WAIT_MAX":      "200ms",
	}
	for range 3 {
		s.startWorker(t, over)
	}
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/mms/campaigns", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", apiKey)
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	var accepted struct {
		CampaignID string `json:"campaign_id"`
		Jobs       int    `json:"jobs"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&accepted))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	var summary struct {
		Status   string  `json:"status"`
		Progress float64 `json:"progress"`
	}
	require.Eventually(t, func() bool {
		code, raw := s.get(s.url + "/api/mms/campaigns/" + accepted.CampaignID)
		return code == http.StatusOK && json.Unmarshal(raw, &summary) == nil && summary.Status == "completed"
	}, 60*time.Second, 50*time.Millisecond, "campaign completed")
	require.Equal(t, 1.0, summary.Progress)

	batches := s.sinch.sim.Batches()
	slices.SortStableFunc(batches, func(a, b sinchsim.Batch) int { return a.CreatedAt.Compare(b.CreatedAt) })
	require.Len(t, batches, recipients/batch, "one batch per job")
	seen := map[string]int{}
	for _, b := range batches {
		for _, n := range b.To {
			seen[n]++
		}
	}
	require.Len(t, seen, recipients)
	for n, c := range seen {
		require.Equal(t, 1, c, "%s got the message %d times", n, c)
	}

	// Every stretch of batches fits in the burst plus the rate times its
	// length, with one batch and 50 ms of scatter as slack.
	for i := range batches {
		sum := 0
		for j := i; j < len(batches); j++ {
			sum += len(batches[j].To)
			span := batches[j].CreatedAt.Sub(batches[i].CreatedAt).Seconds()
			require.LessOrEqualf(t, float64(sum), burst+rate*(span+0.05)+batch,
				"batches %d..%d: %d recipients in %.3fs", i, j, sum, span)
		}
	}
	span := batches[len(batches)-1].CreatedAt.Sub(batches[0].CreatedAt).Seconds()
	t.Logf("%d recipients in %.2fs through three processes: %.1f/s against %.0f/s", recipients, span,
		(recipients-burst)/span, rate)
}
