package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/app"
	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/redistest/redisproc"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	simPlan  = "bench-plan"
	simToken = "bench-token"
	// defaultFrom is the API's SINCH_MMS_NUMBER.
	defaultFrom = "+12025550100"
	// sendBody is a valid single-recipient send. Nothing fetches the media.
	sendBody = `{"to":"+12025550123","media_url":"https://example.com/a.jpg","message":"mmsgate benchmark"}`
)

// redisPersistence is how the benchmark's redis-server persists: as
// deploy/compose.yaml does (append-only file, fsync every second), so the
// figures include the cost of persistence. The automatic AOF rewrite is
// pushed out of reach so that a background rewrite does not land in the
// middle of one run and not another.
var redisPersistence = []string{"--appendonly", "yes", "--appendfsync", "everysec",
	"--auto-aof-rewrite-min-size", "4gb"}

// env is what the sections share: one Redis for the whole run, and the
// means to start the API and workers on it.
type env struct {
	opt options
	// redisURL reaches the benchmark's own Redis; embedded says it is
	// miniredis rather than redis-server.
	redisURL string
	embedded bool
	// rdb is the benchmark's own client, for FLUSHALL, INFO and checks.
	rdb     redis.UniversalClient
	machine machine
	log     zerolog.Logger
	apiKey  string
	http    *http.Client
	// common, api and worker are the production defaults, pointed at the
	// benchmark's Redis; apiConfig and workerConfig adjust copies.
	common config.Common
	api    config.API
	worker config.Worker

	closers []func()
}

func newEnv(ctx context.Context, o options) (*env, error) {
	e := &env{opt: o}
	started := false
	defer func() {
		if !started {
			e.close()
		}
	}()
	e.log = logging.New("info", &logFilter{all: o.verbose})
	redis.SetLogger(logging.Redis{L: e.log.With().Str("service", "go-redis").Logger()})

	if bin, lerr := redisproc.Binary(); lerr == nil {
		p, err := redisproc.Start(bin, redisPersistence...)
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, p.Close)
		e.redisURL = p.URL
		progress("Redis: %s on private socket %s", redisproc.Version(bin), p.URL)
	} else {
		progress("redis-server is NOT installed: falling back to the embedded miniredis.")
		progress("Figures on miniredis say little about a real Redis; " +
			"install redis-server (e.g. apt-get install redis-server) for real ones.")
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		e.closers = append(e.closers, m.Close)
		e.redisURL, e.embedded = "redis://"+m.Addr()+"/0", true
	}

	key := make([]byte, 16)
	_, _ = rand.Read(key)
	e.apiKey = hex.EncodeToString(key)
	var err error
	if e.api, e.worker, err = defaults(e.redisURL, e.apiKey); err != nil {
		return nil, err
	}
	e.common = e.api.Common

	_, e.rdb, err = redisconn.Open(ctx, e.redisURL, 10*time.Second)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = e.rdb.Close() })

	e.http = &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		MaxIdleConns:        4 * o.clients,
		MaxIdleConnsPerHost: 4 * o.clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}, Timeout: 30 * time.Second}
	e.closers = append(e.closers, e.http.CloseIdleConnections)

	e.machine = describeMachine(ctx, e)
	started = true
	return e, nil
}

// close stops everything newEnv started, last first.
func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// reset empties the Redis, so that each run starts from nothing.
func (e *env) reset(ctx context.Context) error {
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("FLUSHALL on the benchmark's redis: %w", err)
	}
	return nil
}

// mark labels a figure measured on miniredis as such.
func (e *env) mark(s string) string {
	if e.embedded {
		return s + " (miniredis)"
	}
	return s
}

// defaults loads the API's and the worker's production defaults through
// config.LoadAPI and config.LoadWorker, so that a setting added later gets
// its default here too. It first clears every variable they read from this
// process's environment, so that nothing set for another purpose (a
// REDIS_URL, a rate limit) leaks into the benchmark, then sets only what
// they require and the benchmark's Redis. Sinch's address is a loopback
// placeholder until a worker is given its simulator's.
func defaults(redisURL, apiKey string) (config.API, config.Worker, error) {
	names := append(envNames(reflect.TypeFor[config.API]()), envNames(reflect.TypeFor[config.Worker]())...)
	for _, name := range names {
		if err := os.Unsetenv(name); err != nil {
			return config.API{}, config.Worker{}, err
		}
	}
	for k, v := range map[string]string{
		"REDIS_URL":             redisURL,
		"INTERNAL_API_KEY":      apiKey,
		"SINCH_API_BASE_URL":    "http://127.0.0.1:9",
		"SINCH_SERVICE_PLAN_ID": simPlan,
		"SINCH_API_TOKEN":       simToken,
		// The bodies' media URLs are placeholders: nothing may fetch them.
		"MEDIA_CHECK": "false",
	} {
		if err := os.Setenv(k, v); err != nil {
			return config.API{}, config.Worker{}, err
		}
	}
	api, err := config.LoadAPI()
	if err != nil {
		return api, config.Worker{}, fmt.Errorf("API defaults: %w", err)
	}
	w, err := config.LoadWorker()
	if err != nil {
		return api, w, fmt.Errorf("worker defaults: %w", err)
	}
	return api, w, nil
}

// envNames lists the environment variables a config struct reads.
func envNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, envNames(f.Type)...)
		} else if n := f.Tag.Get("envconfig"); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// apiConfig is the API's configuration for the benchmark: production
// defaults, on 127.0.0.1 and a free port, with the per-key rate limit off
// (API_RATE_LIMIT=0).
func (e *env) apiConfig() config.API {
	c := e.api
	c.ListenHost, c.Port = "127.0.0.1", 0
	c.DefaultFrom = defaultFrom
	c.RateLimit = 0
	return c
}

// running is an API or worker started by the benchmark.
type running struct {
	// base is the API's URL (APIs only).
	base string
	// sim is the worker's Sinch simulator (workers only).
	sim    *sinchsim.Server
	cancel context.CancelFunc
	// exited is closed when it has returned, with err.
	exited chan struct{}
	err    error
}

func newRunning(cancel context.CancelFunc) *running {
	return &running{cancel: cancel, exited: make(chan struct{})}
}

// finish records how it ended.
func (r *running) finish(err error) {
	r.err = err
	close(r.exited)
}

// stop ends it and waits for it, returning the error it ended with.
func (r *running) stop() error {
	r.cancel()
	<-r.exited
	return r.err
}

// startAPI runs the real API (app.RunAPI) in this process. change, if not
// nil, adjusts the configuration first.
func (e *env) startAPI(ctx context.Context, change func(*config.API)) (*running, error) {
	cfg := e.apiConfig()
	if change != nil {
		change(&cfg)
	}
	// Validate refuses port 0, which asks the kernel for a free port.
	check := cfg
	check.Port = 8080
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("benchmark API settings: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := newRunning(cancel)
	addr := make(chan string, 1)
	go func() {
		r.finish(app.RunAPI(rctx, cfg, e.log.With().Str("service", "api").Logger(),
			func(a string) { addr <- a }))
	}()
	select {
	case a := <-addr:
		r.base = "http://" + a
		return r, nil
	case <-r.exited:
		cancel()
		return nil, fmt.Errorf("api: %w", r.err)
	case <-time.After(10 * time.Second):
		_ = r.stop()
		return nil, errors.New("api did not start within 10s")
	}
}

// startSim serves a Sinch simulator with the given latency on 127.0.0.1.
func startSim(latency time.Duration) (*sinchsim.Server, string, func(), error) {
	sim := sinchsim.New(sinchsim.Config{ServicePlanID: simPlan, Token: simToken, Latency: latency})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return sim, "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// workerConfig is the worker's configuration for the benchmark: production
// defaults (no send rate limit among them), with the given concurrency,
// sending to simURL.
func (e *env) workerConfig(simURL string, concurrency int) config.Worker {
	c := e.worker
	c.SinchBaseURL = simURL
	c.Concurrency = concurrency
	return c
}

// startWorker runs the real worker (app.RunWorker) in this process, sending
// to a new simulator with the given latency.
func (e *env) startWorker(ctx context.Context, latency time.Duration, concurrency int) (*running, error) {
	sim, simURL, stopSim, err := startSim(latency)
	if err != nil {
		return nil, err
	}
	cfg := e.workerConfig(simURL, concurrency)
	if err := cfg.Validate(); err != nil {
		stopSim()
		return nil, fmt.Errorf("benchmark worker settings: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := newRunning(cancel)
	r.sim = sim
	go func() {
		err := app.RunWorker(rctx, cfg, e.log.With().Str("service", "worker").Logger())
		stopSim()
		r.finish(err)
	}()
	return r, nil
}

// acceptedBody is the part of a 202 the benchmark reads.
type acceptedBody struct {
	JobID string `json:"job_id"`
}

// postSend makes one POST /api/mms/send of sendBody and returns the job ID
// if the API answered 202; wantID decodes the answer for it.
func (e *env) postSend(ctx context.Context, base string, wantID bool) (string, error) {
	return e.postSendBody(ctx, base, []byte(sendBody), wantID)
}

// get calls url and wants a 200.
func (e *env) get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// postSendBody is postSend with another body.
func (e *env) postSendBody(ctx context.Context, base string, body []byte, wantID bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/mms/send",
		bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-API-Key", e.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("POST /api/mms/send answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if !wantID {
		_, err = io.Copy(io.Discard, resp.Body)
		return "", err
	}
	var a acceptedBody
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return "", fmt.Errorf("202 answer: %w", err)
	}
	return a.JobID, nil
}

// createJobs has n single-recipient jobs accepted through the API, by
// e.opt.clients concurrent clients, and returns their IDs. Any refusal is
// an error: the runs that use these jobs need all of them.
func (e *env) createJobs(ctx context.Context, base string, n int) ([]string, error) {
	return e.createJobsWith(ctx, base, n, nil)
}

// createJobsWith is createJobs with body(i) as the body of job i's request;
// a nil body means sendBody for every job.
func (e *env) createJobsWith(ctx context.Context, base string, n int, body func(i int) []byte) ([]string, error) {
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(e.opt.clients, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || cctx.Err() != nil {
					return
				}
				b := []byte(sendBody)
				if body != nil {
					b = body(i)
				}
				id, err := e.postSendBody(cctx, base, b, true)
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("creating %d jobs: %w", n, first)
	}
	return ids, ctx.Err()
}

// queueState sums asynq's queues.
type queueState struct {
	waiting  int // pending, active, scheduled or retrying
	archived int // given up on
}

func (e *env) queues() (queueState, error) {
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	names, err := insp.Queues()
	if err != nil {
		return queueState{}, fmt.Errorf("asynq queues: %w", err)
	}
	var s queueState
	for _, q := range names {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return queueState{}, fmt.Errorf("asynq queue %s: %w", q, err)
		}
		s.waiting += info.Pending + info.Active + info.Scheduled + info.Retry
		s.archived += info.Archived
	}
	return s, nil
}

// waitDone waits until count() reaches n and then until asynq holds no
// task that is pending, active, scheduled or retrying. It returns when it
// first saw count() above 0 (the first task reached the handler) and when
// it saw everything done, to within 1 and 5 ms. Until count() reaches n it
// only polls the counter, so that the wait itself adds no load to Redis;
// then it asks asynq every 5 ms. A worker (w, if not nil) that stops ends
// the wait.
func (e *env) waitDone(ctx context.Context, n int, count func() int, w *running,
	limit time.Duration) (first, end time.Time, err error) {
	var exited <-chan struct{}
	if w != nil {
		exited = w.exited
	}
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	counted := false
	var asked time.Time
	for {
		select {
		case <-ctx.Done():
			return first, end, ctx.Err()
		case <-exited:
			return first, end, fmt.Errorf("worker stopped: %v", w.err)
		case <-tick.C:
		}
		if !counted {
			c := count()
			if c > 0 && first.IsZero() {
				first = time.Now()
			}
			counted = c >= n
		}
		if counted && time.Since(asked) >= 5*time.Millisecond {
			asked = time.Now()
			s, err := e.queues()
			if err != nil {
				return first, end, err
			}
			if s.archived > 0 {
				return first, end, fmt.Errorf("%d task(s) archived: some jobs failed", s.archived)
			}
			if s.waiting == 0 {
				return first, time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return first, end, fmt.Errorf("not done within %s: %d of %d processed", limit, count(), n)
		}
	}
}

// pending counts the tasks waiting in asynq's queues, to check that a load
// run queued what it was told it did.
func (e *env) pending() (int, error) {
	s, err := e.queues()
	return s.waiting, err
}

// logFilter passes the services' warnings and errors to stderr and drops
// the rest, unless all is set. The loggers still log at info level, as in
// production, so the cost of logging is part of the figures.
type logFilter struct{ all bool }

func (f *logFilter) Write(p []byte) (int, error) {
	if f.all || bytes.Contains(p, []byte(`"level":"warn"`)) || bytes.Contains(p, []byte(`"level":"error"`)) ||
		bytes.Contains(p, []byte(`"level":"fatal"`)) {
		_, _ = os.Stderr.Write(p)
	}
	return len(p), nil
}
