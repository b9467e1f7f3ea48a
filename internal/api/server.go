// Package api is mmsgate's HTTP API: it authenticates and validates
// requests, records jobs, enqueues their tasks and reports job status. It
// never calls Sinch.
package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/metrics"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/suppress"
	"github.com/mmsgate/mmsgate/internal/worker"
)

// Enqueuer puts tasks on the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config holds the API's settings.
type Config struct {
	APIKeys      []string
	Rules        mms.Rules
	MaxBodyBytes int64
	// MaxBulkBodyBytes caps the body of bulk endpoints, such as the import
	// of suppressions; zero means DefaultMaxBulkBodyBytes, or MaxBodyBytes
	// if that is larger.
	MaxBulkBodyBytes int64
	// CampaignBatchSize is how many recipients go in one batch of a
	// campaign, one job each.
	CampaignBatchSize int
	// BulkTimeout is the extra time the Redis work of a bulk request (a
	// campaign, an import) may take beyond RedisTimeout.
	BulkTimeout time.Duration
	// RateLimit is requests per second per API key; 0 turns it off.
	RateLimit int
	RateBurst int
	// RedisTimeout bounds the Redis work of one request.
	RedisTimeout time.Duration
	// MaxAttempts is the attempt budget given to each new job.
	MaxAttempts int
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration
	// Reports, when not nil, serves the endpoint that takes Sinch's
	// delivery reports.
	Reports *ReportsConfig
	// Ops, when not nil, serves the queue UI under /ops/.
	Ops *OpsConfig
}

// Tasks changes queued tasks; *asynq.Inspector is one.
type Tasks interface {
	DeleteTask(queue, id string) error
	RunTask(queue, id string) error
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// Deps are the parts the API talks to.
type Deps struct {
	Redis redis.UniversalClient
	Store *jobstore.Store
	Queue Enqueuer
	Tasks Tasks
	Log   zerolog.Logger
	// Suppress is the suppression list.
	Suppress *suppress.Store
	// Campaigns keeps campaigns.
	Campaigns *campaign.Store
	// Media checks media URLs for POST /api/mms/media/check.
	Media MediaChecker
	// Metrics counts requests and jobs, served at /metrics; nil makes a
	// set of its own.
	Metrics *metrics.API
}

type server struct {
	cfg  Config
	deps Deps
}

// New returns the API's HTTP handler.
func New(cfg Config, deps Deps) *echo.Echo {
	if cfg.CampaignBatchSize <= 0 || cfg.CampaignBatchSize > mms.MaxRecipients {
		cfg.CampaignBatchSize = mms.MaxRecipients
	}
	if deps.Metrics == nil {
		deps.Metrics = metrics.NewAPI()
	}
	s := &server{cfg: cfg, deps: deps}
	log := deps.Log

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(
		requestID(log),
		accessLog(log, deps.Metrics),
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			DisablePrintStack: true,
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				reqLog(c, log).Error().Err(err).Bytes("stack", stack).Msg("handler panicked")
				return err
			},
		}),
		securityHeaders,
		bodyLimit(cfg.MaxBodyBytes), // a route may set its own: see withBodyLimit
	)

	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.GET(path, h, m...)
		e.HEAD(path, h, m...) // net/http drops the body of a HEAD answer
	}
	get("/healthz", s.healthz)
	get("/readyz", s.readyz)
	get("/openapi.yaml", serveOpenAPI)
	get("/metrics", echo.WrapHandler(deps.Metrics.Handler()))

	mw := []echo.MiddlewareFunc{authenticate(newKeyring(cfg.APIKeys))}
	if cfg.RateLimit > 0 {
		limit := redis_rate.Limit{Rate: cfg.RateLimit, Burst: max(cfg.RateBurst, cfg.RateLimit), Period: time.Second}
		mw = append(mw, rateLimit(redis_rate.NewLimiter(deps.Redis), limit, cfg.RedisTimeout, log))
	}
	// Routes take the middleware one by one rather than through a group:
	// an Echo group with middleware answers 404 where 405 is right.
	e.POST("/api/mms/send", s.send, mw...)
	get("/api/mms/jobs/:id", s.getJob, mw...)
	e.DELETE("/api/mms/jobs/:id", s.cancelJob, mw...)
	e.POST("/api/mms/jobs/:id/retry", s.retryJob, mw...)
	bulk := withBodyLimit(mw, cfg.bulkBodyLimit())
	e.POST("/api/mms/campaigns", s.createCampaign, bulk...)
	get("/api/mms/campaigns/:id", s.getCampaign, mw...)
	get("/api/mms/campaigns/:id/jobs", s.listCampaignJobs, mw...)
	e.DELETE("/api/mms/campaigns/:id", s.cancelCampaign, mw...)
	e.POST("/api/mms/suppressions", s.importSuppressions, bulk...)
	one := append(slices.Clip(mw), oneSegment("number"))
	e.PUT("/api/mms/suppressions/:number", s.putSuppression, one...)
	get("/api/mms/suppressions/:number", s.getSuppression, one...)
	e.DELETE("/api/mms/suppressions/:number", s.deleteSuppression, one...)
	e.POST("/api/mms/media/check", s.checkMedia, mw...)

	if cfg.Reports != nil {
		// Sinch's calls carry the secret in the path, not an API key, and
		// are not counted against any key's rate limit.
		e.POST(cfg.Reports.Path+"/:secret", s.takeReports)
	}
	if cfg.Ops != nil {
		mountOps(e, *cfg.Ops, log)
	}
	return e
}

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether this process can do its work: Redis answers.
func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	if err := redisconn.Ping(ctx, s.deps.Redis); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable", "checks": map[string]string{"redis": "unreachable"},
		})
	}

	// The API can take jobs while a worker holds sending; say so anyway.
	checks := map[string]string{"redis": "ok", "sinch": "ok"}
	if since, err := s.deps.Redis.Get(ctx, worker.CircuitKey).Int64(); err == nil {
		checks["sinch"] = "paused since " + time.UnixMilli(since).UTC().Format(time.RFC3339)
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}
