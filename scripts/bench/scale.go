package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mmsgate/mmsgate/internal/redistest/redisproc"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	// scAPIs API and scWorkers worker processes share one Redis Cluster of
	// scPrimaries primaries.
	scAPIs      = 2
	scWorkers   = 3
	scPrimaries = 3
	// scRate and scBurst are the workers' shared SINCH_RATE_LIMIT and
	// SINCH_RATE_BURST; scBatch the APIs' CAMPAIGN_BATCH_SIZE.
	scRate        = 300
	scBurst       = 30
	scBatch       = 50
	scConcurrency = 8
)

// benchScale runs mmsgate scaled out as in production, each part its own
// process: two APIs and three workers on a three-primary Redis Cluster
// started here, all sending to one simulator. One campaign goes in through
// each API and is followed through the other; then every recipient must
// have gone to Sinch exactly once, in one batch per job, at the shared
// rate.
func benchScale(ctx context.Context, e *env) (result, error) {
	length := 10 * time.Second
	if e.opt.quick {
		length = 5 * time.Second
	}
	redisBin, err := redisproc.Binary()
	if err != nil {
		return result{}, errors.New("the scale-out run needs redis-server on the PATH for its Redis Cluster")
	}
	tmp, err := os.MkdirTemp("", "mmsbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	progress("scale-out: building ./cmd/api and ./cmd/worker")
	apiBin, apiBuild, err := buildCmd(ctx, tmp, "api")
	if err != nil {
		return result{}, err
	}
	workerBin, workerBuild, err := buildCmd(ctx, tmp, "worker")
	if err != nil {
		return result{}, err
	}

	progress("scale-out: starting a Redis Cluster of %d primaries", scPrimaries)
	cluster, err := redisproc.StartCluster(redisBin, scPrimaries)
	if err != nil {
		return result{}, err
	}
	defer cluster.Close()
	sim, simURL, stopSim, err := startSim(0)
	if err != nil {
		return result{}, err
	}
	var procs []*proc
	defer func() { // the processes first, then the simulator
		for _, p := range procs {
			_ = p.stop(rlStopTimeout)
		}
		stopSim()
	}()
	with := func(set map[string]string) []string {
		set["REDIS_URL"] = cluster.URL
		return e.childEnv(set)
	}

	var bases []string
	for i := range scAPIs {
		port, err := freeTCPPort()
		if err != nil {
			return result{}, err
		}
		p, err := startProc(fmt.Sprintf("api-%d", i+1), apiBin, with(map[string]string{
			"INTERNAL_API_KEY": e.apiKey, "LISTEN_HOST": "127.0.0.1", "PORT": strconv.Itoa(port),
			"CAMPAIGN_BATCH_SIZE": strconv.Itoa(scBatch), "API_RATE_LIMIT": "0", "SINCH_MMS_NUMBER": defaultFrom,
		}))
		if err != nil {
			return result{}, err
		}
		procs = append(procs, p)
		bases = append(bases, "http://127.0.0.1:"+strconv.Itoa(port))
	}
	for _, b := range bases {
		if err := waitReady(ctx, e, b+"/readyz", 30*time.Second); err != nil {
			return result{}, err
		}
	}

	// Recipients for the burst and then length at the rate, half a
	// campaign each.
	perCampaign := int(math.Ceil((scRate*length.Seconds() + scBurst) / scAPIs))
	perCampaign = (perCampaign + scBatch - 1) / scBatch * scBatch
	var ids []string
	var accepted []string
	t0 := time.Now()
	for i, base := range bases {
		numbers := make([]string, perCampaign)
		for k := range numbers {
			numbers[k] = fmt.Sprintf(`"+1%d555%04d"`, 201+i, k)
		}
		body := []byte(`{"name":"scale-out ` + strconv.Itoa(i+1) + `","media_url":"https://cdn.example.com/a.jpg",` +
			`"message":"mmsgate scale-out run","recipients":[` + strings.Join(numbers, ",") + `]}`)
		a, err := e.postCampaign(ctx, base, "", "application/json", body, perCampaign)
		if err != nil {
			return result{}, fmt.Errorf("api-%d: %w", i+1, err)
		}
		ids = append(ids, a.answer.CampaignID)
		accepted = append(accepted, fmt.Sprintf("api-%d took %d recipients in %s", i+1, perCampaign, ms(a.took)))
	}

	progress("scale-out: %d worker processes, SINCH_RATE_LIMIT=%d SINCH_RATE_BURST=%d WORKER_CONCURRENCY=%d",
		scWorkers, scRate, scBurst, scConcurrency)
	for i := range scWorkers {
		p, err := startProc(fmt.Sprintf("worker-%d", i+1), workerBin, with(map[string]string{
			"SINCH_API_BASE_URL": simURL, "SINCH_SERVICE_PLAN_ID": simPlan, "SINCH_API_TOKEN": simToken,
			"SINCH_RATE_LIMIT": strconv.Itoa(scRate), "SINCH_RATE_BURST": strconv.Itoa(scBurst),
			"WORKER_CONCURRENCY": strconv.Itoa(scConcurrency), "WORKER_POLL_INTERVAL": "100ms",
		}))
		if err != nil {
			return result{}, err
		}
		procs = append(procs, p)
	}

	// Each campaign is followed through the API that did not take it.
	total := perCampaign * scAPIs
	deadline := time.Now().Add(3*length + time.Minute)
	for {
		done := 0
		for i, id := range ids {
			v, err := e.getCampaign(ctx, bases[(i+1)%len(bases)], id)
			if err != nil {
				return result{}, err
			}
			done += v.RecipientsByStatus["sent"]
			if n := v.RecipientsByStatus["failed"]; n > 0 {
				return result{}, fmt.Errorf("campaign %s: %d recipients failed; see the workers' logs", id, n)
			}
		}
		if done == total {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("after %s, %d of %d recipients sent", time.Since(t0).Round(time.Second),
				done, total)
		}
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	took := time.Since(t0)

	batches := sim.Batches()
	once := checkEachOnce(batches, total, total/scBatch)
	m := measureRate(batches, scBurst)
	dev := m.rate/scRate - 1
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("send rate, %d APIs and %d workers on a %d-primary Redis Cluster, "+
				"SINCH_RATE_LIMIT=%d/s, burst %d; (recipients − burst) / time from first to last batch",
				scAPIs, scWorkers, scPrimaries, scRate, scBurst),
				measured: e.mark(fmt.Sprintf("%.1f recipients/s (%+.2f%%)", m.rate, 100*dev)),
				target: fmt.Sprintf("%d/s ± %.0f%% (%.0f–%.0f)", scRate, 100*rlTolerance,
					scRate*(1-rlTolerance), scRate*(1+rlTolerance)),
				verdict: e.mark(verdict(math.Abs(dev) <= rlTolerance))},
			{figure: fmt.Sprintf("every recipient sent exactly once (%d campaigns through %d APIs, %d recipients)",
				len(ids), scAPIs, total),
				measured: e.mark(onceCell(len(batches), total/scBatch, once)),
				target:   "each once",
				verdict:  e.mark(verdict(once == nil))},
		},
		raw: []string{
			fmt.Sprintf("./cmd/api built in %.1f s, ./cmd/worker in %.1f s; Redis Cluster of %d primaries "+
				"(redis-server, 127.0.0.1, no replicas) at %s", apiBuild.Seconds(), workerBuild.Seconds(),
				scPrimaries, cluster.URL),
			fmt.Sprintf("%d API processes with CAMPAIGN_BATCH_SIZE=%d; %s", scAPIs, scBatch,
				strings.Join(accepted, "; ")),
			fmt.Sprintf("%d worker processes with SINCH_RATE_LIMIT=%d SINCH_RATE_BURST=%d WORKER_CONCURRENCY=%d, "+
				"one simulator (no latency) in the benchmark's process", scWorkers, scRate, scBurst, scConcurrency),
			fmt.Sprintf("every recipient sent %.3f s after the first campaign was posted; each campaign "+
				"followed through the other API", took.Seconds()),
			fmt.Sprintf("batches: %d recipients from the first to the last batch in %.3f s: %.2f recipients/s "+
				"(%+.2f%%); middle 80%%: %.2f/s; busiest second %d (at most %d + burst %d)",
				m.recipients, m.span.Seconds(), m.rate, 100*dev, m.middle, m.busiest, scRate, scBurst),
			"exactly once: " + scaleOnce(len(batches), total, once),
		},
	}
	return res, nil
}

func scaleOnce(batches, recipients int, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d batches with distinct client references (one per job), each of the %d numbers in one "+
		"of them", batches, recipients)
}

// checkEachOnce checks that the batches hold every one of recipients
// numbers once, in jobs batches with distinct client references.
func checkEachOnce(batches []sinchsim.Batch, recipients, jobs int) error {
	refs := map[string]int{}
	seen := map[string]int{}
	for _, b := range batches {
		refs[b.ClientReference]++
		for _, n := range b.To {
			seen[n]++
		}
	}
	for ref, n := range refs {
		if n != 1 {
			return fmt.Errorf("job %s has %d batches at the simulator, want 1", ref, n)
		}
	}
	for n, c := range seen {
		if c != 1 {
			return fmt.Errorf("%s got %d messages, want 1", n, c)
		}
	}
	if len(refs) != jobs || len(seen) != recipients {
		return fmt.Errorf("%d batches to %d numbers, want %d to %d", len(refs), len(seen), jobs, recipients)
	}
	return nil
}

// freeTCPPort returns a port on 127.0.0.1 that nothing listens on.
func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, e *env, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := e.http.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
