// Command demo runs the whole send path on one machine with nothing but Go:
// an embedded Redis, the Sinch simulator, a media server, the API and a
// worker. It sends one MMS through the public API and polls the job: the
// worker checks the media, Sinch (the simulator) accepts the batch and then
// reports delivery to the API's report endpoint, and every status change is
// posted, signed, to the client's callback URL. Once the job is delivered
// and its callbacks have come, it prints the job and exits 0; any other end
// exits 1.
//
// The embedded Redis exists for this trial run only. cmd/api and cmd/worker
// never fall back to it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/app"
	"github.com/mmsgate/mmsgate/internal/callback"
	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	demoKey    = "demo-api-key-not-for-production"
	demoToken  = "demo-sinch-token"
	demoPlan   = "demo-plan"
	demoReport = "demo-report-secret-0123456789"
	demoHooks  = "demo-callback-secret-0123456789"
)

// demoImage stands in for a picture: the media checks read only the
// answer's headers, as Sinch's own fetch would start.
var demoImage = append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0}, 2048)...)

func main() {
	verbose := flag.Bool("v", false, "show the services' JSON logs")
	timeout := flag.Duration("timeout", 30*time.Second, "give up if the job is not delivered by then")
	flag.Parse()

	if err := run(*verbose, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(verbose bool, timeout time.Duration) error {
	level := "warn"
	if verbose {
		level = "info"
	}
	log := logging.New(level, os.Stderr)

	// 1. An embedded Redis, for this run only.
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("embedded redis: %w", err)
	}
	defer mr.Close()
	say("embedded Redis on %s", mr.Addr())

	// 2. The Sinch simulator, with a little latency to look like the real API,
	// reporting delivery half a second after a batch.
	sim := sinchsim.New(sinchsim.Config{ServicePlanID: demoPlan, Token: demoToken, Latency: 40 * time.Millisecond,
		Reports: sinchsim.ReportSettings{Delay: 500 * time.Millisecond}})
	defer sim.Close()
	simURL, stopSim, err := serveLoopback(sim)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer stopSim()
	say("Sinch simulator on %s", simURL)

	// A media server for the picture, on loopback: the settings below allow
	// the API and the media checks to use it, as production would not.
	mediaBase, stopMedia, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		http.ServeContent(w, r, "winter-sale.jpg", time.Time{}, bytes.NewReader(demoImage))
	}))
	if err != nil {
		return fmt.Errorf("media server: %w", err)
	}
	defer stopMedia()
	mediaURL := mediaBase + "/mms/winter-sale.jpg"
	say("media server on %s", mediaURL)

	// The client's own endpoint for status callbacks, checking each
	// signature as the README tells clients to.
	hooks := &hookLog{delivered: make(chan struct{})}
	hookBase, stopHooks, err := serveLoopback(hooks)
	if err != nil {
		return fmt.Errorf("callback receiver: %w", err)
	}
	defer stopHooks()
	hookURL := hookBase + "/mms-status"
	say("client callback receiver on %s", hookURL)

	// 3. The API and a worker, configured as production would be.
	common := config.Common{
		RedisURL:     "redis://" + mr.Addr() + "/0",
		RedisTimeout: 2 * time.Second,
		LogLevel:     level,
		JobRetention: 24 * time.Hour,
		MaxAttempts:  10,

		MediaAllowedHosts: []string{"127.0.0.1"},
		MediaCheckTimeout: 5 * time.Second,
		MediaMaxBytes:     5 << 20,
		MediaWarnBytes:    1_000_000,

		ClientCallbackSecret:       demoHooks,
		ClientCallbackAllowedHosts: []string{"127.0.0.1"},
		ClientCallbackMaxAttempts:  5,
	}
	apiCfg := config.API{
		Common: common, ListenHost: "127.0.0.1", Port: 0,
		APIKeys:       []config.Secret{demoKey},
		DefaultFrom:   "+12025550100",
		DefaultRegion: "US", MaxBodyBytes: 1 << 20,
		RateLimit: 100, RateBurst: 200, ShutdownTimeout: 5 * time.Second, IdempotencyTTL: 24 * time.Hour,
		CampaignBatchSize: 1000,
		ReportPath:        "/sinch/reports", ReportSecret: demoReport,
	}
	workerCfg := config.Worker{
		Common:       common,
		SinchBaseURL: simURL, SinchPlanID: demoPlan, SinchToken: demoToken,
		SinchTimeout: 5 * time.Second, Concurrency: 4,
		RetryBaseDelay: 200 * time.Millisecond, RetryMaxDelay: 2 * time.Second,
		AuthRetryDelay: time.Second, ShutdownTimeout: 10 * time.Second, PollInterval: 200 * time.Millisecond,
		CircuitThreshold: 10, CircuitProbeInterval: 5 * time.Second,
		SinchRateLimit: 30, RateWaitMax: time.Second,
		DeliveryReport: "per_recipient_final", ReportFetchAfter: time.Minute,
		MediaCheck: true,

		ClientCallbackConcurrency: 2, ClientCallbackTimeout: 5 * time.Second,
		ClientCallbackRetryBase: 200 * time.Millisecond, ClientCallbackRetryMax: 2 * time.Second,
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	addr := make(chan string, 1)
	start := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("api", func() error {
		return app.RunAPI(ctx, apiCfg, with(log, "api"), func(a string) { addr <- a })
	})
	defer wg.Wait()
	defer cancel()

	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("api did not start within 10s")
	}
	// Sinch reports delivery to the API, at the address the worker gives
	// with each batch.
	workerCfg.CallbackURL = base + apiCfg.ReportPath + "/" + demoReport
	if err := workerCfg.Validate(); err != nil {
		return fmt.Errorf("demo settings: %w", err)
	}
	start("worker", func() error { return app.RunWorker(ctx, workerCfg, with(log, "worker")) })
	say("API on %s, worker running", base)

	// 4. A client sends an MMS, as a web app would.
	body := `{
  "to": ["+1 (202) 555-0123", "415-555-2671"],
  "media_url": "` + mediaURL + `",
  "message": "Hi ${name}, our winter sale starts today: 20% off everything.",
  "subject": "Winter sale",
  "parameters": {"name": {"+12025550123": "Ada", "default": "there"}},
  "reference": "demo-order-1001",
  "priority": "high",
  "callback_url": "` + hookURL + `"
}`
	say("POST %s/api/mms/send\n%s", base, body)
	status, hdr, reply, err := call(ctx, http.MethodPost, base+"/api/mms/send", body)
	if err != nil {
		return err
	}
	say("-> %d %s, Location: %s\n%s", status, http.StatusText(status), hdr.Get("Location"), indent(reply))
	if status != http.StatusAccepted {
		return fmt.Errorf("send answered %d", status)
	}
	var acc struct {
		JobID     string `json:"job_id"`
		StatusURL string `json:"status_url"`
	}
	if err := json.Unmarshal(reply, &acc); err != nil {
		return fmt.Errorf("send answer: %w", err)
	}

	// 5. Poll the job until Sinch has reported its delivery.
	deadline := time.Now().Add(timeout)
	seen := ""
	for {
		_, _, reply, err = call(ctx, http.MethodGet, base+acc.StatusURL, "")
		if err != nil {
			return err
		}
		var job struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(reply, &job); err != nil {
			return fmt.Errorf("job answer: %w", err)
		}
		if job.Status != seen {
			say("job %s is %s", acc.JobID, job.Status)
			seen = job.Status
		}
		switch job.Status {
		case "delivered":
			select {
			case <-hooks.delivered:
			case <-time.After(time.Until(deadline)):
				return errors.New("the client callback for delivered did not come")
			}
			if bad := hooks.refused(); bad > 0 {
				return fmt.Errorf("%d client callbacks had a bad signature", bad)
			}
			// The worker notes each callback as taken just after the
			// receiver's answer: wait for the job to say so.
			if reply, err = settled(ctx, base+acc.StatusURL, deadline); err != nil {
				return err
			}
			say("GET %s\n%s", acc.StatusURL, indent(reply))
			for _, b := range sim.Batches() {
				say("the simulator holds batch %s (type %s, %d recipients, client_reference %s)",
					b.ID, b.Type, len(b.To), b.ClientReference)
			}
			say("done: the MMS travelled API -> Redis -> worker -> Sinch simulator, " +
				"its delivery reports came back to the API, and each status change reached the client's callback URL")
			return nil
		case "failed", "canceled", "expired", "partially_delivered":
			return fmt.Errorf("job ended %s:\n%s", job.Status, indent(reply))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job not delivered within %s; last status %s", timeout, job.Status)
		}
		select {
		case err := <-errc:
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settled polls the job until no client callback of it is pending, and
// returns its last answer.
func settled(ctx context.Context, url string, deadline time.Time) ([]byte, error) {
	for {
		_, _, reply, err := call(ctx, http.MethodGet, url, "")
		if err != nil {
			return nil, err
		}
		var job struct {
			Callbacks struct {
				Pending int `json:"pending"`
			} `json:"callbacks"`
		}
		if err := json.Unmarshal(reply, &job); err != nil {
			return nil, fmt.Errorf("job answer: %w", err)
		}
		if job.Callbacks.Pending == 0 {
			return reply, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d client callbacks still pending:\n%s", job.Callbacks.Pending, indent(reply))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func call(ctx context.Context, method, url, body string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("X-API-Key", demoKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func with(log zerolog.Logger, service string) zerolog.Logger {
	return log.With().Str("service", service).Logger()
}

func say(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }

func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// hookLog is the demo client's callback endpoint: it checks each callback's
// signature, prints the change, and says when the job is delivered.
type hookLog struct {
	mu        sync.Mutex
	bad       int
	once      sync.Once
	delivered chan struct{}
}

func (h *hookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	err = callback.Verify(demoHooks, r.Header.Get(callback.HeaderTimestamp), r.Header.Get(callback.HeaderSignature),
		body, time.Now(), 5*time.Minute)
	if err != nil {
		h.mu.Lock()
		h.bad++
		h.mu.Unlock()
		say("client callback refused: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev callback.Body
	if err := json.Unmarshal(body, &ev); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	say("client callback %s (signature checked): #%d %s -> %s", ev.EventID, ev.Sequence, ev.Job.PreviousStatus,
		ev.Job.Status)
	if ev.Job.Status == "delivered" {
		h.once.Do(func() { close(h.delivered) })
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookLog) refused() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}

// serveLoopback serves h on a free port of 127.0.0.1 and returns its base
// URL and a function that stops it.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
