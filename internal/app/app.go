// Package app wires mmsgate's parts into the two processes, the API and the
// worker. cmd/api, cmd/worker and the demo all start them through here, so
// the demo runs exactly the code that production runs.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/api"
	"github.com/mmsgate/mmsgate/internal/callback"
	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/metrics"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/ratelimit"
	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/sinch"
	"github.com/mmsgate/mmsgate/internal/suppress"
	"github.com/mmsgate/mmsgate/internal/worker"
)

// RunAPI serves the API until ctx ends, then shuts down gracefully. If ready
// is not nil it is called with the listening address once requests can be
// served.
func RunAPI(ctx context.Context, cfg config.API, log zerolog.Logger, ready func(addr string)) error {
	conn, rdb, err := redisconn.Open(ctx, cfg.RedisURL, cfg.RedisTimeout)
	if err != nil {
		return err
	}
	defer rdb.Close()

	queue := asynq.NewClientFromRedisClient(rdb)
	defaultFrom := cfg.DefaultFrom
	if defaultFrom != "" {
		if defaultFrom, err = mms.NormalizeSender(defaultFrom, cfg.DefaultRegion); err != nil {
			return fmt.Errorf("SINCH_MMS_NUMBER: %w", err)
		}
	}
	keys := make([]string, len(cfg.APIKeys))
	for i, k := range cfg.APIKeys {
		keys[i] = k.Value()
	}
	acfg := api.Config{
		APIKeys: keys,
		Rules: mms.Rules{
			DefaultFrom:   defaultFrom,
			DefaultRegion: cfg.DefaultRegion,
			DefaultExpiry: cfg.DefaultExpiry,
			MaxExpiry:     cfg.MaxExpiry,
			MaxSchedule:   cfg.MaxSchedule,
		},
		MaxBodyBytes: cfg.MaxBodyBytes,
		RateLimit:    cfg.RateLimit,
		RateBurst:    cfg.RateBurst,
		RedisTimeout: cfg.RedisTimeout,
		MaxAttempts:  cfg.MaxAttempts,

		IdempotencyTTL:   cfg.IdempotencyTTL,
		MaxBulkBodyBytes: cfg.MaxBulkBodyBytes,

		CampaignBatchSize: cfg.CampaignBatchSize,
		BulkTimeout:       bulkTimeout,
	}
	if cfg.ReportSecret.Value() != "" {
		acfg.Reports = &api.ReportsConfig{Path: cfg.ReportPath, URLSecret: cfg.ReportSecret.Value(),
			WebhookSecret: cfg.WebhookSecret.Value()}
	}
	if cfg.OpsUser != "" {
		acfg.Ops = &api.OpsConfig{User: cfg.OpsUser, Password: cfg.OpsPassword.Value(),
			ReadWrite: cfg.OpsReadWrite, Redis: conn}
	}
	checker, allow, err := mediaChecker(cfg.Common, rdb, log)
	if err != nil {
		return err
	}
	if !allow.Empty() {
		acfg.Rules.MediaHostAllowed = allow.Allows
	}
	store := jobstore.New(rdb, cfg.JobRetention)
	callbackAllow, _, err := clientCallbacks(cfg.Common, store, queue, log)
	if err != nil {
		return err
	}
	m := metrics.NewAPI()
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	m.Register(metrics.NewQueues(inspector, queueNames(), queueMetricsTTL, log))
	if cfg.ClientCallbackSecret.Value() != "" {
		acfg.Rules.Callbacks = true
		if !callbackAllow.Empty() {
			acfg.Rules.CallbackHostAllowed = callbackAllow.Allows
		}
	}
	e := api.New(acfg, api.Deps{
		Redis: rdb,
		Store: store,
		Queue: queue,
		Tasks: inspector,
		Log:   log,

		Metrics: m,

		Suppress:  suppress.New(rdb),
		Campaigns: campaign.New(rdb, store, cfg.JobRetention),
		Media:     checker,
	})

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("PORT, LISTEN_HOST: cannot listen: %w", err)
	}
	e.Server.ReadHeaderTimeout = 5 * time.Second
	e.Server.ReadTimeout = 30 * time.Second
	e.Server.WriteTimeout = 30 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute

	errc := make(chan error, 1)
	go func() { errc <- e.Server.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Int("api_keys", len(keys)).Bool("ops_ui", acfg.Ops != nil).
		Msg("api listening")
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("api shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := e.Server.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// RunWorker processes send tasks until ctx ends. It then stops taking tasks
// and lets those under way finish, for up to cfg.ShutdownTimeout.
func RunWorker(ctx context.Context, cfg config.Worker, log zerolog.Logger) error {
	conn, rdb, err := redisconn.Open(ctx, cfg.RedisURL, cfg.RedisTimeout)
	if err != nil {
		return err
	}
	defer rdb.Close()

	client, err := sinch.New(sinch.Config{
		BaseURL:       cfg.SinchBaseURL,
		ServicePlanID: cfg.SinchPlanID,
		Token:         cfg.SinchToken.Value(),
		Timeout:       cfg.SinchTimeout,
	})
	if err != nil {
		return err
	}
	if err := probeSinch(ctx, client, cfg, log); err != nil {
		return err
	}

	m := metrics.NewWorker()
	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(cfg.MetricsAddr, m.Handler(), log)
		if err != nil {
			return err
		}
		defer stop()
	}

	circuit := worker.NewCircuit(cfg.CircuitThreshold, cfg.CircuitProbeInterval, client.Probe, rdb, log)
	circuit.OnChange = m.CircuitOpen
	cctx, stopCircuit := context.WithCancel(ctx)
	defer stopCircuit()
	go circuit.Run(cctx)

	backoff := worker.Backoff{Base: cfg.RetryBaseDelay, Max: cfg.RetryMaxDelay}
	var checker worker.MediaChecker
	if cfg.MediaCheck {
		c, _, err := mediaChecker(cfg.Common, rdb, log)
		if err != nil {
			return err
		}
		checker = c
	}
	store := jobstore.New(rdb, cfg.JobRetention)
	campaigns := campaign.New(rdb, store, cfg.JobRetention)
	queue := asynq.NewClientFromRedisClient(rdb)
	callbackAllow, outbox, err := clientCallbacks(cfg.Common, store, queue, log)
	if err != nil {
		return err
	}
	h := worker.NewHandler(store, client, worker.Config{
		Backoff:        backoff,
		AuthRetryDelay: cfg.AuthRetryDelay,
		WriteTimeout:   cfg.RedisTimeout,
		Circuit:        circuit,
		Metrics:        m,
		Limits:         limits(cfg, rdb, log),
		Campaigns:      campaigns,
		Suppressions:   suppress.New(rdb),
		CallbackURL:    cfg.CallbackURL,
		DeliveryReport: cfg.DeliveryReport,

		ReportFetchAfter: cfg.ReportFetchAfter,
		Queue:            queue,
		Media:            checker,
	}, log)
	srv, mux := worker.NewServer(conn, worker.ServerConfig{
		Concurrency:     cfg.Concurrency,
		ShutdownTimeout: cfg.ShutdownTimeout,
		PollInterval:    cfg.PollInterval,
		Backoff:         backoff,
	}, h, log)
	expander := campaign.NewExpander(campaigns, queue, log)
	expander.Accepted = m.Jobs().JobAccepted
	mux.Handle(campaign.TypeExpand, expander)
	fetcher := worker.NewFetcher(store, client, cfg.ReportFetchAfter, log)
	fetcher.Metrics = m
	mux.Handle(worker.TypeFetchReports, fetcher)

	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	var cbSrv *asynq.Server
	if secret := cfg.ClientCallbackSecret.Value(); secret != "" {
		d := callback.NewDeliverer(store, callback.Config{Secret: secret, Timeout: cfg.ClientCallbackTimeout,
			Allow: callbackAllow, Metrics: m}, log.With().Str("component", "callbacks").Logger())
		var cbMux *asynq.ServeMux
		cbSrv, cbMux = callback.NewServer(conn, callback.ServerConfig{
			Concurrency:     cfg.ClientCallbackConcurrency,
			ShutdownTimeout: cfg.ShutdownTimeout,
			PollInterval:    cfg.PollInterval,
			Backoff:         worker.Backoff{Base: cfg.ClientCallbackRetryBase, Max: cfg.ClientCallbackRetryMax},
		}, d, log)
		cbMux.Handle(callback.TypeFlush, callback.NewFlusher(outbox, campaigns.Jobs))
		if err := cbSrv.Start(cbMux); err != nil {
			srv.Shutdown()
			return fmt.Errorf("start callback delivery: %w", err)
		}
	} else {
		log.Info().Msg("client callbacks off: CLIENT_CALLBACK_SECRET is not set; " +
			"callback tasks wait for a worker that has it")
	}
	log.Info().Int("concurrency", cfg.Concurrency).Str("sinch", cfg.SinchBaseURL).
		Bool("client_callbacks", cbSrv != nil).Msg("worker started")
	<-ctx.Done()
	log.Info().Dur("timeout_ms", cfg.ShutdownTimeout).Msg("worker stopping: no new tasks, in-flight sends finishing")
	var stopped sync.WaitGroup
	if cbSrv != nil {
		stopped.Go(cbSrv.Shutdown)
	}
	srv.Shutdown()
	stopped.Wait()
	log.Info().Msg("worker stopped")
	return nil
}

// clientCallbacks makes the store queue the delivery of every callback
// event it records, and returns the allow-list of callback addresses.
func clientCallbacks(cfg config.Common, store *jobstore.Store, queue *asynq.Client,
	log zerolog.Logger) (media.AllowList, *callback.Outbox, error) {
	allow, err := cfg.CallbackAllow()
	if err != nil {
		return allow, nil, err
	}
	outbox := callback.NewOutbox(store, queue, cfg.ClientCallbackMaxAttempts, log)
	store.SetNotifier(outbox.Notify)
	if !allow.Empty() {
		log.Warn().Str("client_callback_allowed_hosts", allow.String()).
			Msg("callbacks may go to these non-public addresses; " +
				"leave CLIENT_CALLBACK_ALLOWED_HOSTS empty in production")
	}
	return allow, outbox, nil
}

// mediaChecker builds the media checks from the settings, with the cache
// shared by every process.
func mediaChecker(cfg config.Common, rdb redis.UniversalClient, log zerolog.Logger) (*media.Checker,
	media.AllowList, error) {
	mcfg, err := cfg.Media()
	if err != nil {
		return nil, media.AllowList{}, err
	}
	if cfg.MediaCheckTTL > 0 {
		mcfg.Cache = media.NewRedisCache(rdb, cfg.RedisTimeout)
	}
	mcfg.Log = &log
	if !mcfg.Allow.Empty() {
		log.Warn().Str("media_allowed_hosts", mcfg.Allow.String()).
			Msg("media may be on these non-public addresses; leave MEDIA_ALLOWED_HOSTS empty in production")
	}
	return media.New(mcfg), mcfg.Allow, nil
}

// queueMetricsTTL is how long the API's queue metrics are reused between
// scrapes.
const queueMetricsTTL = 5 * time.Second

// queueNames lists every asynq queue mmsgate uses.
func queueNames() []string {
	out := make([]string, 0, len(mms.Priorities)+3)
	for _, p := range mms.Priorities {
		out = append(out, p.Queue())
	}
	return append(out, campaign.Queue, worker.ReportsQueue, callback.Queue)
}

// bulkTimeout is the extra time the Redis work of a bulk request, such as
// a campaign of 100,000 recipients, may take beyond REDIS_TIMEOUT.
const bulkTimeout = 10 * time.Second

// limits builds the shared send rate limits from the settings. Campaigns'
// own caps apply even when none of these is set.
func limits(cfg config.Worker, rdb redis.UniversalClient, log zerolog.Logger) *worker.Limits {
	if cfg.SinchRateLimit == 0 {
		log.Warn().Msg("no send rate limit set (SINCH_RATE_LIMIT): Sinch queues what exceeds the plan's rate, " +
			"and high-priority messages wait behind it there")
	}
	l := &worker.Limits{
		Limiter:     ratelimit.New(rdb),
		Plan:        ratelimit.Plan(cfg.SinchRateLimit, cfg.SinchRateBurst),
		Queues:      make(map[string]ratelimit.Limit, len(cfg.QueueRateLimits)),
		SenderRate:  cfg.SenderRateLimit,
		SenderBurst: cfg.SenderRateLimit,
		MaxWait:     cfg.RateWaitMax,
	}
	for q, rate := range cfg.QueueRateLimits {
		name := mms.Priority(q).Queue()
		l.Queues[name] = ratelimit.Queue(name, rate, 0)
	}
	log.Info().Float64("plan_rate", cfg.SinchRateLimit).Interface("queue_rates", cfg.QueueRateLimits).
		Float64("sender_rate", cfg.SenderRateLimit).Msg("send rate limits on, in recipients per second")
	return l
}

// Main runs one mmsgate process: it reads the settings, builds the logger,
// and runs until SIGINT or SIGTERM. A problem at start is one line on stderr
// and exit status 1.
func Main[C interface{ Level() string }](service string, load func() (C, error),
	run func(context.Context, C, zerolog.Logger) error) {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s\n\nRuns mmsgate's %s. It takes no arguments: "+
			"every setting is an environment variable (see .env.example and the README's Configuration).\n",
			service, service)
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := mainErr(service, load, run); err != nil {
		fmt.Fprintf(os.Stderr, "mmsgate %s: %v\n", service, err)
		os.Exit(1)
	}
}

func mainErr[C interface{ Level() string }](service string, load func() (C, error),
	run func(context.Context, C, zerolog.Logger) error) error {
	cfg, err := load()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(cfg.Level(), os.Stderr).With().Str("service", service).Logger()
	redis.SetLogger(logging.Redis{L: log})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, log)
}

// probeSinch refuses to start a worker whose Sinch settings are wrong: with
// a bad token or plan ID every job would wait or fail. Any other problem
// (Sinch down, a timeout) is only logged: jobs wait and retry.
func probeSinch(ctx context.Context, c *sinch.Client, cfg config.Worker, log zerolog.Logger) error {
	pctx, cancel := context.WithTimeout(ctx, cfg.SinchTimeout)
	defer cancel()
	err := c.Probe(pctx)
	var se *sinch.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("SINCH_API_TOKEN: Sinch refused it (401) for plan %s at %s",
			cfg.SinchPlanID, cfg.SinchBaseURL)
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return fmt.Errorf("SINCH_SERVICE_PLAN_ID, SINCH_API_BASE_URL: Sinch knows no plan %s at %s (404)",
			cfg.SinchPlanID, cfg.SinchBaseURL)
	}
	log.Warn().Err(err).Msg("sinch not reachable at start; jobs will wait and retry")
	return nil
}

// serveMetrics serves the worker's /metrics and /healthz on addr until the
// returned stop is called.
func serveMetrics(addr string, h http.Handler, log zerolog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: cannot listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("worker metrics listening")
	return func() { _ = srv.Close() }, nil
}
