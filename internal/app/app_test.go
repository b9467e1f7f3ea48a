package app_test

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/app"
	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
	"github.com/mmsgate/mmsgate/internal/worker"
)

const (
	apiKey     = "test-key-0123456789abcdef"
	rotatedKey = "test-key-rotated-0123456789"
	simToken   = "sim-secret-token-42"
	opsPass    = "ops-password-123"
)

// stack is one whole mmsgate: its own Redis, the simulator, the API and a
// worker, all running the production code paths.
type stack struct {
	url   string // API base URL
	sim   *sinchsim.Server
	redis *redistest.Server
	rdb   redis.UniversalClient
	logs  *logging.Buffer
	// stopWorker stops the workers as SIGTERM does and waits for them to
	// exit.
	stopWorker func()

	ctx       context.Context
	log       zerolog.Logger
	workerCfg config.Worker
	workers   sync.WaitGroup
}

type options struct {
	maxAttempts int
	rateLimit   int
	ops         bool
	noWorker    bool
	simLatency  time.Duration
	metricsAddr string
	// workers is how many worker processes run (default one).
	workers int
	// batchSize is the campaigns' batch size (default 1000).
	batchSize int
	// reports turns on the delivery-report endpoint, with an HMAC secret;
	// persistent gives the stack a Redis that can be restarted.
	reports    bool
	persistent bool
	// callbacks makes the worker ask for delivery reports at the API's
	// endpoint (it turns reports on, and the simulator signs them with
	// webhookSecret): simReports are how the simulator sends them,
	// reportKind the kind asked for (default per_recipient_final).
	callbacks  bool
	simReports sinchsim.ReportSettings
	reportKind string
	// mediaAllow lets media be on these non-public addresses, comma
	// separated (the media checks, and the API's validation).
	mediaAllow string
	// clientCallbacks turns client callbacks on, signed with
	// clientCallbackSecret, to receivers on 127.0.0.1.
	clientCallbacks bool
}

func setup(t *testing.T, o options) *stack {
	t.Helper()

	rs := redistest.Start
	if o.persistent {
		rs = redistest.StartPersistent
	}
	return setupOn(t, rs(t), o)
}

const (
	reportSecret         = "report-secret-0123456789"
	webhookSecret        = "webhook-hmac-secret"
	clientCallbackSecret = "client-callback-secret-42"
)

func setupOn(t *testing.T, rs *redistest.Server, o options) *stack {
	t.Helper()
	if o.callbacks {
		o.reports = true
		o.simReports.WebhookSecret = cmp.Or(o.simReports.WebhookSecret, webhookSecret)
	}
	sim := sinchsim.New(sinchsim.Config{ServicePlanID: "plan-1", Token: simToken, Latency: o.simLatency,
		Reports: o.simReports})
	t.Cleanup(sim.Close)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)

	logs := &logging.Buffer{}
	log := logging.New("debug", logs)
	common := config.Common{
		RedisURL:     rs.URL,
		RedisTimeout: 500 * time.Millisecond,
		LogLevel:     "debug",
		JobRetention: time.Hour,
		MaxAttempts:  max(o.maxAttempts, 1),
	}
	if o.maxAttempts == 0 {
		common.MaxAttempts = 5
	}
	if o.mediaAllow != "" {
		common.MediaAllowedHosts = strings.Split(o.mediaAllow, ",")
		common.MediaCheckTimeout, common.MediaMaxBytes, common.MediaWarnBytes = 2*time.Second, 5<<20, 1_000_000
		common.MediaCheckTTL = time.Minute
	}
	if o.clientCallbacks {
		common.ClientCallbackSecret = clientCallbackSecret
		common.ClientCallbackAllowedHosts = []string{"127.0.0.1"}
		common.ClientCallbackMaxAttempts = 6
	}
	apiCfg := config.API{
		Common:        common,
		ListenHost:    "127.0.0.1",
		APIKeys:       []config.Secret{apiKey, rotatedKey},
		DefaultFrom:   "+12025550100",
		DefaultRegion: "US",
		MaxBodyBytes:  64 << 10,
		RateLimit:     o.rateLimit,
		RateBurst:     o.rateLimit,
		// Longer than the 5 s net/http gives a new connection that has sent
		// nothing yet, which the simulator's report callbacks can leave.
		ShutdownTimeout: 6 * time.Second,
		IdempotencyTTL:  24 * time.Hour,

		CampaignBatchSize: cmp.Or(o.batchSize, 1000),
	}
	if o.reports {
		apiCfg.ReportPath, apiCfg.ReportSecret, apiCfg.WebhookSecret = "/sinch/reports", reportSecret, webhookSecret
	}
	if o.ops {
		apiCfg.OpsUser, apiCfg.OpsPassword = "operator", opsPass
	}
	workerCfg := config.Worker{
		Common:          common,
		SinchBaseURL:    simSrv.URL,
		SinchPlanID:     "plan-1",
		SinchToken:      simToken,
		SinchTimeout:    time.Second,
		Concurrency:     4,
		RetryBaseDelay:  50 * time.Millisecond,
		RetryMaxDelay:   200 * time.Millisecond,
		AuthRetryDelay:  100 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second,
		PollInterval:    100 * time.Millisecond,
		RateWaitMax:     time.Second,

		CircuitThreshold:     50,
		CircuitProbeInterval: 200 * time.Millisecond,
		MetricsAddr:          o.metricsAddr,

		ClientCallbackConcurrency: 4,
		ClientCallbackTimeout:     time.Second,
		ClientCallbackRetryBase:   50 * time.Millisecond,
		ClientCallbackRetryMax:    200 * time.Millisecond,
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	addr := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := app.RunAPI(ctx, apiCfg, log.With().Str("service", "api").Logger(),
			func(a string) { addr <- a }); err != nil {
			t.Errorf("api: %v", err)
			close(addr)
		}
	}()
	st := &stack{sim: sim, redis: rs, rdb: rs.UniversalClient(t), logs: logs, ctx: ctx, workerCfg: workerCfg,
		log: log}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.workers.Wait()
	})
	a, ok := <-addr
	require.True(t, ok, "api did not start")
	st.url = "http://" + a
	if o.callbacks {
		// Batches ask Sinch to report delivery to this API.
		st.workerCfg.CallbackURL = st.url + reportsPath
		st.workerCfg.DeliveryReport = cmp.Or(o.reportKind, "per_recipient_final")
	}
	if !o.noWorker {
		st.startWorkers(t, max(o.workers, 1), nil)
	}
	return st
}

// startWorkers starts n worker processes, with tune applied to their
// settings, until the test ends or stopWorker is called.
func (s *stack) startWorkers(t *testing.T, n int, tune func(*config.Worker)) {
	t.Helper()
	cfg := s.workerCfg
	if tune != nil {
		tune(&cfg)
	}
	ctx, stop := context.WithCancel(s.ctx)
	for i := range n {
		wlog := s.log.With().Str("service", "worker").Int("worker", i).Logger()
		s.workers.Go(func() {
			// A test may end while a worker still starts: its canceled
			// start is no failure.
			if err := app.RunWorker(ctx, cfg, wlog); err != nil && ctx.Err() == nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	s.stopWorker = func() { stop(); s.workers.Wait() }
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (s *stack) do(t *testing.T, method, path, contentType, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-API-Key", apiKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	out := response{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &out.body), string(raw))
	}
	return out
}

const goodBody = `{"to":["+1 (202) 555-0123","415-555-2671"],"media_url":"https://cdn.example.com/mms/sale.jpg",` +
	`"message":"Winter sale starts now","subject":"Sale","reference":"campaign-7"}`

func (s *stack) send(t *testing.T, body string) string {
	t.Helper()
	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	id, _ := r.body["job_id"].(string)
	require.True(t, mms.ValidJobID(id))
	return id
}

// waitFor polls the job until its status is want, and returns it.
func (s *stack) waitFor(t *testing.T, id string, want mms.Status) map[string]any {
	t.Helper()
	var last map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "")
		require.Equal(t, http.StatusOK, r.status)
		last = r.body
		if last["status"] == string(want) {
			return last
		}
		if st := mms.Status(last["status"].(string)); st.Final() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not reach %s; last seen: %v", id, want, last)
	return nil
}

func (s *stack) inspector(t *testing.T) *asynq.Inspector {
	t.Helper()
	return asynq.NewInspectorFromRedisClient(s.rdb)
}

func TestSendReachesSent(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})

	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody)
	require.Equal(t, http.StatusAccepted, r.status)
	id := r.body["job_id"].(string)
	require.Equal(t, "queued", r.body["status"])
	require.Equal(t, "/api/mms/jobs/"+id, r.body["status_url"])
	require.Equal(t, "/api/mms/jobs/"+id, r.header.Get("Location"))
	require.Equal(t, "campaign-7", r.body["reference"])
	require.NotEmpty(t, r.header.Get("X-Request-ID"))

	job := s.waitFor(t, id, mms.StatusSent)
	require.Equal(t, []any{"+12025550123", "+14155552671"}, job["recipients"])
	require.Equal(t, "campaign-7", job["reference"])
	require.EqualValues(t, 1, job["attempts"])
	require.EqualValues(t, 5, job["max_attempts"])
	require.Nil(t, job["last_error"])
	require.Nil(t, job["next_attempt_at"])

	batches := s.sim.Batches()
	require.Len(t, batches, 1)
	b := batches[0]
	require.Equal(t, job["sinch_batch_id"], b.ID)
	require.Equal(t, id, b.ClientReference)
	require.Equal(t, "mt_media", b.Type)
	require.Equal(t, []string{"+12025550123", "+14155552671"}, b.To)
	require.Equal(t, "+12025550100", b.From)
	require.Equal(t, "https://cdn.example.com/mms/sale.jpg", b.Body.URL)
	require.Equal(t, "Winter sale starts now", b.Body.Message)
	require.Equal(t, "Sale", b.Body.Subject)
	require.Equal(t, 1, s.sim.Posts())

	// Nothing personal or secret reaches the logs.
	logs := s.logs.String()
	require.Contains(t, logs, id, "logs carry the job ID")
	for _, secret := range []string{"2025550123", "4155552671", "Winter sale", apiKey, simToken, "sale.jpg"} {
		require.NotContains(t, logs, secret)
	}
}

func TestPermanentErrorFailsAfterOneCall(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	s.sim.Inject(sinchsim.Fault{Status: 400, Code: "syntax_invalid_parameter_format", Text: "bad number"})

	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusFailed)
	lastErr := job["last_error"].(map[string]any)
	require.Equal(t, "syntax_invalid_parameter_format", lastErr["code"])
	require.Equal(t, "bad number", lastErr["message"])
	require.NotEmpty(t, lastErr["at"])
	require.EqualValues(t, 1, job["attempts"])
	require.Contains(t, job, "sinch_batch_id")
	require.Nil(t, job["sinch_batch_id"])

	// The task is dead-lettered at once, and never retried.
	require.Eventually(t, func() bool {
		tasks, err := s.inspector(t).ListArchivedTasks(mms.PriorityNormal.Queue())
		return err == nil && len(tasks) == 1 && tasks[0].ID == id
	}, 5*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // three poll intervals: a retry would have run
	require.Equal(t, 1, s.sim.Posts())
	require.NotContains(t, s.logs.String(), "bad number", "Sinch's text may quote the message: not logged")
}

func TestTransientErrorsRetryThenSend(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	s.sim.Inject(sinchsim.Fault{Status: 503}, sinchsim.Fault{Status: 503})

	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusSent)
	require.Equal(t, 3, s.sim.Posts())
	require.Len(t, s.sim.Batches(), 1)
	require.EqualValues(t, 3, job["attempts"])
	require.Equal(t, "service_unavailable", job["last_error"].(map[string]any)["code"],
		"the last error stays on record")
}

func TestRetriesEndInFailure(t *testing.T) {
	t.Parallel()
	s := setup(t, options{maxAttempts: 3})
	s.sim.Inject(sinchsim.Fault{Status: 500}, sinchsim.Fault{Status: 502}, sinchsim.Fault{Status: 503},
		sinchsim.Fault{Status: 503})

	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusFailed)
	require.EqualValues(t, 3, job["attempts"])
	require.Contains(t, job["last_error"].(map[string]any)["message"], "gave up after 3 attempts")
	require.Eventually(t, func() bool {
		tasks, err := s.inspector(t).ListArchivedTasks(mms.PriorityNormal.Queue())
		return err == nil && len(tasks) == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 3, s.sim.Posts())
}

func TestRetryingShowsNextAttempt(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	s.sim.Inject(sinchsim.Fault{Status: 429, RetryAfter: 2 * time.Second})

	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusRetrying)
	next, err := time.Parse(time.RFC3339Nano, job["next_attempt_at"].(string))
	require.NoError(t, err)
	updated, err := time.Parse(time.RFC3339Nano, job["updated_at"].(string))
	require.NoError(t, err)
	require.GreaterOrEqual(t, next.Sub(updated), 1900*time.Millisecond, "Retry-After is honoured")
	require.EqualValues(t, 0, job["attempts"], "a 429 does not spend the message's attempts")

	job = s.waitFor(t, id, mms.StatusSent)
	require.EqualValues(t, 1, job["attempts"])
	require.Equal(t, 2, s.sim.Posts())
}

func TestUnauthorizedKeepsJobsWaiting(t *testing.T) {
	t.Parallel()
	s := setup(t, options{maxAttempts: 2})
	// More 401s than the job has attempts: none of them may fail it.
	s.sim.Inject(sinchsim.Fault{Status: 401}, sinchsim.Fault{Status: 401}, sinchsim.Fault{Status: 401})

	id := s.send(t, goodBody)
	job := s.waitFor(t, id, mms.StatusSent)
	require.EqualValues(t, 1, job["attempts"])
	require.Equal(t, 4, s.sim.Posts())
	require.Contains(t, s.logs.String(), `"level":"error"`)
	require.Contains(t, s.logs.String(), "sinch refused our credentials")
}

func TestBadRequestsEnqueueNothing(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})

	big := `{"to":"+12025550123","media_url":"https://x.io/a.jpg","message":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name, contentType, body string
		status                  int
		code, field             string
	}{
		{"malformed json", "application/json", `{"to":`, 400, "invalid_json", "body"},
		{"unknown field", "application/json",
			`{"to":"+12025550123","media_url":"https://x.io/a.jpg","fallback_sms_text":"x"}`,
			400, "invalid_json", "fallback_sms_text"},
		{"wrong type", "application/json", `{"to":"+12025550123","media_url":["https://x.io/a.jpg"]}`, 400,
			"invalid_json",
			"media_url"},
		{"wrong content type", "text/plain", goodBody, 415, "unsupported_media_type", ""},
		{"no content type", "", goodBody, 415, "unsupported_media_type", ""},
		{"oversized", "application/json", big, 413, "body_too_large", ""},
		{"invalid number", "application/json", `{"to":["+12025550123","call me"],"media_url":"https://x.io/a.jpg"}`,
			422, "validation_failed", "to[1]"},
		{"missing media", "application/json", `{"to":"+12025550123"}`, 422, "validation_failed", "media_url"},
		{"javascript url", "application/json", `{"to":"+12025550123","media_url":"javascript:alert(1)"}`, 422,
			"validation_failed", "media_url"},
		{"bad priority", "application/json", `{"to":"+12025550123","media_url":"https://x.io/a.jpg","priority":"now"}`,
			422, "validation_failed", "priority"},
		{"null body", "application/json", `null`, 400, "invalid_json", "body"},
		{"utf-16 charset", "application/json; charset=utf-16", goodBody, 415, "unsupported_media_type", ""},
		{"invalid utf-8", "application/json", "{\"to\":\"+12025550123\",\"media_url\":\"https://x.io/a.jpg\"," +
			"\"message\":\"\xff\"}", 400, "invalid_json", "body"},
		{"upper-case field", "application/json", `{"TO":"+12025550123","media_url":"https://x.io/a.jpg"}`, 400,
			"invalid_json", "TO"},
		{"private media host", "application/json", `{"to":"+12025550123","media_url":"http://169.254.169.254/x"}`, 422,
			"validation_failed", "media_url"},
	}
	for _, tt := range tests {
		r := s.do(t, http.MethodPost, "/api/mms/send", tt.contentType, tt.body)
		require.Equal(t, tt.status, r.status, tt.name)
		e, ok := r.body["error"].(map[string]any)
		require.True(t, ok, "%s: JSON error body: %v", tt.name, r.body)
		require.Equal(t, tt.code, e["code"], tt.name)
		require.NotEmpty(t, e["message"], tt.name)
		if tt.field != "" {
			fields := e["fields"].([]any)
			require.Equal(t, tt.field, fields[0].(map[string]any)["field"], tt.name)
			require.NotEmpty(t, fields[0].(map[string]any)["message"], tt.name)
		}
	}

	// Nothing was recorded, queued or sent.
	keys, err := s.rdb.Keys(context.Background(), "mmsgate:job:*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
	for _, p := range mms.Priorities {
		info, err := s.inspector(t).GetQueueInfo(p.Queue())
		if err == nil {
			require.Zero(t, info.Size, p)
		}
	}
	require.Zero(t, s.sim.Posts())
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody, "X-API-Key", "")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "unauthorized", r.body["error"].(map[string]any)["code"])

	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody, "X-API-Key", apiKey+"x")
	require.Equal(t, http.StatusUnauthorized, r.status)

	r = s.do(t, http.MethodGet, "/api/mms/jobs/"+mms.NewJobID(), "", "", "X-API-Key", "")
	require.Equal(t, http.StatusUnauthorized, r.status, "reading jobs needs a key too")

	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody,
		"X-API-Key", "", "Authorization", "Bearer "+rotatedKey)
	require.Equal(t, http.StatusAccepted, r.status, "Bearer and the second key work")

	r = s.do(t, http.MethodGet, "/api/mms/jobs/"+mms.NewJobID(), "", "")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", r.body["error"].(map[string]any)["code"])
	r = s.do(t, http.MethodGet, "/api/mms/jobs/not-an-id", "", "")
	require.Equal(t, http.StatusNotFound, r.status)

	r = s.do(t, http.MethodGet, "/healthz", "", "", "X-API-Key", "")
	require.Equal(t, http.StatusOK, r.status)
	r = s.do(t, http.MethodGet, "/readyz", "", "", "X-API-Key", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	require.Equal(t, "ok", r.body["checks"].(map[string]any)["sinch"])

	// A worker that paused sending says so, and /readyz passes it on.
	require.NoError(t, s.rdb.Set(context.Background(), worker.CircuitKey, time.Now().UnixMilli(), time.Minute).Err())
	r = s.do(t, http.MethodGet, "/readyz", "", "", "X-API-Key", "")
	require.Equal(t, http.StatusOK, r.status, "the API still takes jobs")
	require.Contains(t, r.body["checks"].(map[string]any)["sinch"], "paused since")

	r = s.do(t, http.MethodHead, "/healthz", "", "", "X-API-Key", "")
	require.Equal(t, http.StatusOK, r.status, "HEAD works where GET does")

	r = s.do(t, http.MethodGet, "/healthz", "", "", "X-Request-ID", "abc-123")
	require.Equal(t, "abc-123", r.header.Get("X-Request-ID"))
	r = s.do(t, http.MethodGet, "/healthz", "", "", "X-Request-ID", "bad id\twith junk")
	require.NotEqual(t, "bad id\twith junk", r.header.Get("X-Request-ID"))

	r = s.do(t, http.MethodGet, "/ops/", "", "")
	require.Equal(t, http.StatusNotFound, r.status, "queue UI is off without credentials")
	r = s.do(t, http.MethodDelete, "/api/mms/send", "", "")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "method_not_allowed", r.body["error"].(map[string]any)["code"])
}

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	s := setup(t, options{rateLimit: 2, noWorker: true})

	path := "/api/mms/jobs/" + mms.NewJobID()
	var limited response
	for range 5 {
		r := s.do(t, http.MethodGet, path, "", "")
		if r.status == http.StatusTooManyRequests {
			limited = r
			break
		}
		require.Equal(t, http.StatusNotFound, r.status)
	}
	require.Equal(t, http.StatusTooManyRequests, limited.status)
	require.Equal(t, "rate_limited", limited.body["error"].(map[string]any)["code"])
	require.NotEmpty(t, limited.header.Get("Retry-After"))

	// Another key has its own budget.
	r := s.do(t, http.MethodGet, path, "", "", "X-API-Key", rotatedKey)
	require.Equal(t, http.StatusNotFound, r.status)
}

func TestOpsUI(t *testing.T) {
	t.Parallel()
	s := setup(t, options{ops: true, noWorker: true})
	id := s.send(t, goodBody)

	r := s.do(t, http.MethodGet, "/ops/", "", "")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, r.header.Get("WWW-Authenticate"), "Basic")

	get := func(path string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
		require.NoError(t, err)
		req.SetBasicAuth("operator", opsPass)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/ops/")
	require.Equal(t, http.StatusOK, code)

	code, body := get("/ops/api/queues/" + mms.PriorityNormal.Queue() + "/pending_tasks")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, id)
	require.NotContains(t, body, "2025550123", "payloads hold no phone numbers")

	// Read-only: the UI cannot delete tasks.
	req, err := http.NewRequest(http.MethodDelete, s.url+"/ops/api/queues/"+mms.PriorityNormal.Queue()+
		"/pending_tasks/"+id, nil)
	require.NoError(t, err)
	req.SetBasicAuth("operator", opsPass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.GreaterOrEqual(t, resp.StatusCode, 400)
	info, err := s.inspector(t).GetTaskInfo(mms.PriorityNormal.Queue(), id)
	require.NoError(t, err)
	require.Equal(t, id, info.ID)
}

func TestRedisDownAnswers503Quickly(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	s.redis.Stop()

	start := time.Now()
	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "unavailable", r.body["error"].(map[string]any)["code"])
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Less(t, time.Since(start), 5*time.Second, "bounded by the Redis timeout")

	r = s.do(t, http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	r = s.do(t, http.MethodGet, "/healthz", "", "")
	require.Equal(t, http.StatusOK, r.status)
}

func TestShutdownLetsInFlightSendsFinish(t *testing.T) {
	t.Parallel()
	s := setup(t, options{simLatency: 700 * time.Millisecond})

	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusSending)
	s.stopWorker() // what SIGTERM does in cmd/worker

	// The worker waited for the call under way instead of cutting it off:
	// by the time it has exited, the job is sent.
	r := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "")
	require.Equal(t, "sent", r.body["status"])
	require.Equal(t, 1, s.sim.Posts())

	// Stopped workers take no new tasks.
	id2 := s.send(t, goodBody)
	time.Sleep(300 * time.Millisecond)
	r = s.do(t, http.MethodGet, "/api/mms/jobs/"+id2, "", "")
	require.Equal(t, "queued", r.body["status"])
	require.Equal(t, 1, s.sim.Posts())
}

func TestChunkedOversizedBody(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	// No Content-Length: the limit must hold while reading, too.
	body := io.MultiReader(strings.NewReader(`{"to":"+12025550123","media_url":"https://x.io/a.jpg","message":"`),
		strings.NewReader(strings.Repeat("a", 100<<10)), strings.NewReader(`"}`))
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/mms/send", body)
	require.NoError(t, err)
	require.Zero(t, req.ContentLength, "length unknown: sent chunked")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	var out map[string]map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, "body_too_large", out["error"]["code"])
}

func TestWorkerRefusesWrongSinchSettings(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	sim := httptest.NewServer(sinchsim.New(sinchsim.Config{ServicePlanID: "plan-1", Token: simToken}))
	t.Cleanup(sim.Close)

	cfg := config.Worker{
		Common: config.Common{RedisURL: rs.URL, RedisTimeout: time.Second, LogLevel: "info",
			JobRetention: time.Hour, MaxAttempts: 3},
		SinchBaseURL: sim.URL, SinchPlanID: "plan-1", SinchToken: "wrong-token", SinchTimeout: time.Second,
		Concurrency: 1, RetryBaseDelay: time.Second, RetryMaxDelay: time.Second, AuthRetryDelay: time.Second,
		ShutdownTimeout: 2 * time.Second, PollInterval: time.Second,
		CircuitThreshold: 5, CircuitProbeInterval: time.Second,
	}
	err := app.RunWorker(context.Background(), cfg, logging.New("error", io.Discard))
	require.ErrorContains(t, err, "SINCH_API_TOKEN")

	cfg.SinchToken, cfg.SinchPlanID = simToken, "no-such-plan"
	err = app.RunWorker(context.Background(), cfg, logging.New("error", io.Discard))
	require.ErrorContains(t, err, "SINCH_SERVICE_PLAN_ID")
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	send := func(key, body string, hdr ...string) response {
		return s.do(t, http.MethodPost, "/api/mms/send", "application/json", body,
			append([]string{"Idempotency-Key", key}, hdr...)...)
	}

	first := send("order-1001", goodBody)
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.body["job_id"].(string)

	// The same request again, written differently: the original answer,
	// and no second job.
	same := strings.Replace(goodBody, `"+1 (202) 555-0123"`, `"202-555-0123"`, 1)
	again := send("order-1001", " "+same)
	require.Equal(t, http.StatusAccepted, again.status)
	require.Equal(t, first.body, again.body)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, "/api/mms/jobs/"+id, again.header.Get("Location"))

	// Another body under the same key is refused.
	other := send("order-1001", strings.Replace(goodBody, "Winter", "Summer", 1))
	require.Equal(t, http.StatusUnprocessableEntity, other.status)
	require.Equal(t, "idempotency_key_reused", other.body["error"].(map[string]any)["code"])

	// Keys belong to the API key that used them.
	mine := send("order-1001", goodBody, "X-API-Key", rotatedKey)
	require.Equal(t, http.StatusAccepted, mine.status)
	require.NotEqual(t, id, mine.body["job_id"])

	bad := send(strings.Repeat("k", 256), goodBody)
	require.Equal(t, http.StatusBadRequest, bad.status)
	require.Equal(t, "invalid_header", bad.body["error"].(map[string]any)["code"])

	// Many concurrent requests with one key create one job.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := send("burst-1", goodBody)
			if r.status == http.StatusAccepted {
				ids <- r.body["job_id"].(string)
			} else if r.status != http.StatusConflict {
				t.Errorf("status %d: %v", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	require.Len(t, seen, 1, "one job for one key")

	keys, err := s.rdb.Keys(context.Background(), "mmsgate:job:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 3, "order-1001 twice (two API keys) and burst-1")
	info, err := s.inspector(t).GetQueueInfo(mms.PriorityNormal.Queue())
	require.NoError(t, err)
	require.Equal(t, 3, info.Size)
}

func TestCancelJob(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	id := s.send(t, goodBody)

	r := s.do(t, http.MethodDelete, "/api/mms/jobs/"+id, "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "canceled", r.body["status"])
	_, err := s.inspector(t).GetTaskInfo(mms.PriorityNormal.Queue(), id)
	require.ErrorIs(t, err, asynq.ErrTaskNotFound, "its task is gone")

	r = s.do(t, http.MethodDelete, "/api/mms/jobs/"+id, "", "")
	require.Equal(t, http.StatusConflict, r.status, "canceled once is enough")
	require.Equal(t, "not_cancelable", r.body["error"].(map[string]any)["code"])

	r = s.do(t, http.MethodDelete, "/api/mms/jobs/"+mms.NewJobID(), "", "")
	require.Equal(t, http.StatusNotFound, r.status)
	r = s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusConflict, r.status, "a canceled job is not retried")
}

func TestCancelRefusesSentJob(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusSent)

	r := s.do(t, http.MethodDelete, "/api/mms/jobs/"+id, "", "")
	require.Equal(t, http.StatusConflict, r.status)
	require.Contains(t, r.body["error"].(map[string]any)["message"], "sent")
	r = s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusConflict, r.status, "a sent job is never sent again")
	require.Equal(t, "not_retryable", r.body["error"].(map[string]any)["code"])
	require.Equal(t, 1, s.sim.Posts())
}

func TestRetryFailedJob(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	s.sim.Inject(sinchsim.Fault{Status: 403, Code: "unknown_campaign"}, sinchsim.Fault{Status: 400})

	// Retried from the archive, where asynq keeps the failed task.
	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusFailed)
	require.Eventually(t, func() bool {
		info, err := s.inspector(t).GetTaskInfo(mms.PriorityNormal.Queue(), id)
		return err == nil && info.State == asynq.TaskStateArchived
	}, 5*time.Second, 20*time.Millisecond)
	r := s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusAccepted, r.status)
	require.Equal(t, id, r.body["job_id"])
	require.EqualValues(t, 0, r.body["attempts"], "a fresh budget")
	s.waitFor(t, id, mms.StatusFailed) // the second fault

	// Retried after asynq forgot the task: a new one, same job ID.
	require.Eventually(t, func() bool {
		return s.inspector(t).DeleteTask(mms.PriorityNormal.Queue(), id) == nil
	}, 5*time.Second, 20*time.Millisecond)
	r = s.do(t, http.MethodPost, "/api/mms/jobs/"+id+"/retry", "", "")
	require.Equal(t, http.StatusAccepted, r.status)
	job := s.waitFor(t, id, mms.StatusSent)
	require.EqualValues(t, 1, job["attempts"])
	require.Equal(t, 3, s.sim.Posts())
	require.Equal(t, 1, s.sim.CountByClientReference(id))
}

func TestWorkerMetrics(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	s := setup(t, options{metricsAddr: addr})
	s.sim.Inject(sinchsim.Fault{Status: 503})
	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusSent)

	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(body)
	require.Contains(t, text, `mmsgate_sinch_requests_total{outcome="ok"} 1`)
	require.Contains(t, text, `mmsgate_sinch_requests_total{outcome="transient"} 1`)
	require.Contains(t, text, "mmsgate_sinch_circuit_open 0")
	require.Contains(t, text, "mmsgate_sinch_request_duration_seconds_count 2")
	require.NotContains(t, text, "2025550123", "no phone number becomes a label")
}

// TestIdempotencyKeyAfterOrphan: a request reserved its key and recorded its
// job, then failed before the task was enqueued and could not clean up (Redis
// went away). Retrying with the key must not replay a 202 for a job that
// will never run.
func TestIdempotencyKeyAfterOrphan(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	ctx := context.Background()

	first := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.body["job_id"].(string)

	// Make it the orphan such a failure leaves: no task, a while ago.
	require.NoError(t, s.inspector(t).DeleteTask(mms.PriorityNormal.Queue(), id))
	old := time.Now().Add(-time.Minute).UnixMilli()
	require.NoError(t, s.rdb.HSet(ctx, "mmsgate:job:{"+id+"}", "c", old).Err())

	again := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusAccepted, again.status)
	require.NotEqual(t, id, again.body["job_id"], "a new job, with a task")
	require.Empty(t, again.header.Get("Idempotent-Replayed"))
	info, err := s.inspector(t).GetTaskInfo(mms.PriorityNormal.Queue(), again.body["job_id"].(string))
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)

	r := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "")
	require.Equal(t, http.StatusNotFound, r.status, "the orphan is gone")
}

func TestScheduledSend(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	at := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	body := strings.Replace(goodBody, `"reference"`, `"send_at":"`+at+`","reference"`, 1)

	r := s.do(t, http.MethodPost, "/api/mms/send", "application/json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, "scheduled", r.body["status"])
	id := r.body["job_id"].(string)
	info, err := s.inspector(t).GetTaskInfo(mms.PriorityNormal.Queue(), id)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateScheduled, info.State)

	job := s.do(t, http.MethodGet, "/api/mms/jobs/"+id, "", "").body
	require.Equal(t, "scheduled", job["status"])
	require.NotEmpty(t, job["send_at"])
	require.Zero(t, s.sim.Posts(), "not before its time")

	// Another, canceled before its time, is never sent.
	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json", body)
	other := r.body["job_id"].(string)
	r = s.do(t, http.MethodDelete, "/api/mms/jobs/"+other, "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "canceled", r.body["status"])

	sent := s.waitFor(t, id, mms.StatusSent)
	sentAt, err := time.Parse(time.RFC3339Nano, sent["updated_at"].(string))
	require.NoError(t, err)
	want, err := time.Parse(time.RFC3339Nano, at)
	require.NoError(t, err)
	require.False(t, sentAt.Before(want), "sent at %s, scheduled for %s", sentAt, want)
	require.Equal(t, 1, s.sim.Posts())
	require.Zero(t, s.sim.CountByClientReference(other))
}
