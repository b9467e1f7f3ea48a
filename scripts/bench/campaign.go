package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/mms"
)

const (
	// campaignSize is the number of recipients of the timed campaigns.
	campaignSize = 100_000
	// campaignTarget is the longest the API may take to accept one.
	campaignTarget = 2 * time.Second
	// campaignRuns is how many times each form is timed.
	campaignRuns = 3
	// campaignPoll is how often the campaign is read while its jobs are
	// created.
	campaignPoll = 10 * time.Millisecond
)

// campaignAnswer is the part of a campaign's 202 the benchmark reads.
type campaignAnswer struct {
	CampaignID string `json:"campaign_id"`
	Jobs       int    `json:"jobs"`
	Recipients struct {
		Listed     int `json:"listed"`
		Accepted   int `json:"accepted"`
		Invalid    int `json:"invalid"`
		Duplicates int `json:"duplicates"`
		Suppressed int `json:"suppressed"`
	} `json:"recipients"`
}

// campaignView is the part of GET /api/mms/campaigns/{id} it reads.
type campaignView struct {
	Status             string         `json:"status"`
	RecipientsByStatus map[string]int `json:"recipients_by_status"`
	Jobs               struct {
		Total   int `json:"total"`
		Created int `json:"created"`
	} `json:"jobs"`
}

// accept is one timed POST /api/mms/campaigns.
type accept struct {
	took   time.Duration
	answer campaignAnswer
}

// benchCampaign times POST /api/mms/campaigns of 100,000 distinct valid
// numbers from the start of the request to the 202, as JSON and as
// text/csv, with no worker running and Redis emptied before each; then,
// with a worker running, the time until the campaign's jobs all exist and
// until they are all sent.
func benchCampaign(ctx context.Context, e *env) (result, error) {
	numbers := campaignNumbers()
	if err := checkNumbers(numbers); err != nil {
		return result{}, err
	}
	content := map[string]string{"name": "mmsgate benchmark", "media_url": "https://cdn.example.com/a.jpg",
		"message": "mmsgate campaign benchmark"}
	jsonBody, err := json.Marshal(map[string]any{"name": content["name"], "media_url": content["media_url"],
		"message": content["message"], "recipients": numbers})
	if err != nil {
		return result{}, err
	}
	csvBody := []byte(strings.Join(numbers, "\n") + "\n")
	q := url.Values{}
	for k, v := range content {
		q.Set(k, v)
	}
	csvQuery := "?" + q.Encode()

	api, err := e.startAPI(ctx, nil)
	if err != nil {
		return result{}, err
	}
	defer api.stop()

	var jsonRuns, csvRuns []accept
	var cost string
	for i := range campaignRuns {
		if err := e.reset(ctx); err != nil {
			return result{}, err
		}
		progress("campaign: POST %d recipients as JSON (%.1f MB), run %d of %d", campaignSize,
			float64(len(jsonBody))/1e6, i+1, campaignRuns)
		u0 := e.usage(ctx)
		a, err := e.postCampaign(ctx, api.base, "", "application/json", jsonBody, campaignSize)
		if err != nil {
			return result{}, fmt.Errorf("JSON: %w", err)
		}
		cost = costPer(u0, e.usage(ctx), 1, a.took)
		jsonRuns = append(jsonRuns, a)
	}
	for i := range campaignRuns {
		if err := e.reset(ctx); err != nil {
			return result{}, err
		}
		progress("campaign: POST %d recipients as text/csv (%.1f MB), run %d of %d", campaignSize,
			float64(len(csvBody))/1e6, i+1, campaignRuns)
		a, err := e.postCampaign(ctx, api.base, csvQuery, "text/csv", csvBody, campaignSize)
		if err != nil {
			return result{}, fmt.Errorf("CSV: %w", err)
		}
		csvRuns = append(csvRuns, a)
	}

	if err := e.reset(ctx); err != nil {
		return result{}, err
	}
	progress("campaign: POST as JSON with a worker running, until its jobs exist and are sent")
	made, err := e.campaignWithWorker(ctx, api.base, jsonBody)
	if err != nil {
		return result{}, err
	}

	jb, jm := bestMedian(jsonRuns)
	cb, cm := bestMedian(csvRuns)
	a := jsonRuns[0].answer
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("`POST /api/mms/campaigns` of %s distinct valid numbers (JSON, %.1f MB) → 202, "+
				"no worker running; %d runs, the result on the median",
				grouped(campaignSize), float64(len(jsonBody))/1e6, campaignRuns),
				measured: e.mark(fmt.Sprintf("median %s (best %s)", secs(jm), secs(jb))),
				target:   fmt.Sprintf("≤ %g s", campaignTarget.Seconds()),
				verdict:  e.mark(verdict(jm <= campaignTarget))},
			{figure: fmt.Sprintf("the same as `text/csv` (%.1f MB)", float64(len(csvBody))/1e6),
				measured: e.mark(fmt.Sprintf("median %s (best %s)", secs(cm), secs(cb)))},
			{figure: "JSON with a worker running: from the request to every job created (`jobs.created == jobs.total`)",
				measured: e.mark(fmt.Sprintf("%s (202 after %s, first job after %s)", secs(made.jobs),
					secs(made.accept), secs(made.firstJob)))},
		},
		raw: []string{
			fmt.Sprintf("%s numbers +1 201…210 555 0000…9999, all valid and distinct by mms.NormalizeNumber; "+
				"JSON body %d B, CSV body %d B (one number a line, the other fields in the query)",
				grouped(campaignSize), len(jsonBody), len(csvBody)),
			fmt.Sprintf("answer: %d listed, %d accepted, %d invalid, %d duplicates, %d suppressed; %d jobs "+
				"(CAMPAIGN_BATCH_SIZE default)", a.Recipients.Listed, a.Recipients.Accepted, a.Recipients.Invalid,
				a.Recipients.Duplicates, a.Recipients.Suppressed, a.Jobs),
			"JSON, request start to 202 read, Redis emptied before each: " + runTimes(jsonRuns),
			"  cost of the last: " + cost,
			"text/csv, the same way: " + runTimes(csvRuns),
			fmt.Sprintf("with a worker running (in this process, concurrency %d, simulator without latency), "+
				"from the request's start: 202 after %s, the first job created after %s, all %d after %s "+
				"(the campaign read every %s), all sent after %s; the simulator holds %d batches, one for each job, "+
				"%d recipients, each once",
				e.opt.concurrency, secs(made.accept), secs(made.firstJob), made.total, secs(made.jobs), campaignPoll,
				secs(made.sent), made.batches, made.recipients),
			fmt.Sprintf("  from the 202 to the first job: %s; an idle worker sees a new task only at its next look: "+
				"asynq, finding its queues empty, looks again after 0.5 to 1.5 × TaskCheckInterval, which the worker "+
				"sets to WORKER_POLL_INTERVAL capped at 1s (default 1s); creating the %d jobs then took %s",
				secs(made.firstJob-made.accept), made.total, secs(made.jobs-made.firstJob)),
		},
	}
	return res, nil
}

// campaignNumbers are campaignSize distinct numbers in E.164:
// +1 201…210 555 0000…9999.
func campaignNumbers() []string {
	out := make([]string, 0, campaignSize)
	for i := range campaignSize {
		out = append(out, fmt.Sprintf("+1%d555%04d", 201+i/10000, i%10000))
	}
	return out
}

// checkNumbers makes sure the numbers are what the benchmark claims: valid
// and distinct once normalised.
func checkNumbers(numbers []string) error {
	seen := make(map[string]bool, len(numbers))
	for _, n := range numbers {
		e164, err := mms.NormalizeNumber(n, "US")
		if err != nil {
			return fmt.Errorf("benchmark number %s: %v", n, err)
		}
		if seen[e164] {
			return fmt.Errorf("benchmark number %s listed twice", n)
		}
		seen[e164] = true
	}
	return nil
}

// postCampaign makes one POST /api/mms/campaigns of want recipients and
// times it from before the request is sent until its 202 answer is read.
func (e *env) postCampaign(ctx context.Context, base, query, contentType string, body []byte,
	want int) (accept, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/mms/campaigns"+query,
		bytes.NewReader(body))
	if err != nil {
		return accept{}, err
	}
	req.Header.Set("X-API-Key", e.apiKey)
	req.Header.Set("Content-Type", contentType)
	t0 := time.Now()
	resp, err := e.http.Do(req)
	if err != nil {
		return accept{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(t0)
	if err != nil {
		return accept{}, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return accept{}, fmt.Errorf("POST /api/mms/campaigns answered %d: %.300s", resp.StatusCode, bytes.TrimSpace(b))
	}
	a := accept{took: took}
	if err := json.Unmarshal(b, &a.answer); err != nil {
		return accept{}, fmt.Errorf("202 answer: %w", err)
	}
	if a.answer.Recipients.Accepted != want {
		return a, fmt.Errorf("the API accepted %d of %d recipients", a.answer.Recipients.Accepted, want)
	}
	return a, nil
}

// getCampaign reads GET /api/mms/campaigns/{id}.
func (e *env) getCampaign(ctx context.Context, base, id string) (campaignView, error) {
	var v campaignView
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/mms/campaigns/"+id, nil)
	if err != nil {
		return v, err
	}
	req.Header.Set("X-API-Key", e.apiKey)
	resp, err := e.http.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET campaign answered %d: %.300s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return v, json.Unmarshal(b, &v)
}

// withWorker is what campaignWithWorker measured, from the request's start.
type withWorker struct {
	accept, firstJob, jobs, sent time.Duration
	total                        int
	batches, recipients          int
}

// campaignWithWorker posts the campaign with a worker running and times
// its 202, the moment the campaign says every job exists, and the moment
// every job is sent; then checks that the simulator got every recipient
// once, in one batch per job.
func (e *env) campaignWithWorker(ctx context.Context, base string, body []byte) (withWorker, error) {
	var out withWorker
	w, err := e.startWorker(ctx, 0, e.opt.concurrency)
	if err != nil {
		return out, err
	}
	defer w.stop()
	t0 := time.Now()
	a, err := e.postCampaign(ctx, base, "", "application/json", body, campaignSize)
	if err != nil {
		return out, err
	}
	out.accept, out.total = a.took, a.answer.Jobs
	deadline := t0.Add(drainLimit)
	for {
		v, err := e.getCampaign(ctx, base, a.answer.CampaignID)
		if err != nil {
			return out, err
		}
		if v.Jobs.Total != a.answer.Jobs {
			return out, fmt.Errorf("the campaign says %d jobs, its 202 said %d", v.Jobs.Total, a.answer.Jobs)
		}
		if v.Jobs.Created > 0 && out.firstJob == 0 {
			out.firstJob = time.Since(t0)
		}
		if v.Jobs.Created == v.Jobs.Total {
			out.jobs = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%d of %d jobs created after %s", v.Jobs.Created, v.Jobs.Total, drainLimit)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-w.exited:
			return out, fmt.Errorf("worker stopped: %v", w.err)
		case <-time.After(campaignPoll):
		}
	}
	if _, _, err := e.waitDone(ctx, out.total, w.sim.Posts, w, time.Until(deadline)); err != nil {
		return out, err
	}
	out.sent = time.Since(t0)
	if err := w.stop(); err != nil && !errors.Is(err, context.Canceled) {
		return out, fmt.Errorf("worker: %w", err)
	}

	batches := w.sim.Batches()
	out.batches, _, err = checkSent(ctx, e, batches, campaign.JobIDs(a.answer.CampaignID, 0, out.total))
	if err != nil {
		return out, err
	}
	seen := make(map[string]bool, campaignSize)
	for _, b := range batches {
		for _, to := range b.To {
			if seen[to] {
				return out, fmt.Errorf("%s was sent twice", to)
			}
			seen[to] = true
		}
	}
	out.recipients = len(seen)
	if out.recipients != campaignSize {
		return out, fmt.Errorf("the simulator got %d recipients, want %d", out.recipients, campaignSize)
	}
	return out, nil
}

// bestMedian returns the shortest and the median time of runs.
func bestMedian(runs []accept) (best, median time.Duration) {
	t := make([]time.Duration, len(runs))
	for i, r := range runs {
		t[i] = r.took
	}
	slices.Sort(t)
	return t[0], t[len(t)/2]
}

func runTimes(runs []accept) string {
	s := make([]string, len(runs))
	for i, r := range runs {
		s[i] = secs(r.took)
	}
	return strings.Join(s, ", ")
}

// grouped writes n with a comma between groups of three digits.
func grouped(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// secs formats a duration in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
