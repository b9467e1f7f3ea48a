package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/task"
)

// queueWeights: high is served six times as often as bulk, normal three
// times, so transactional messages overtake a marketing backlog.
var queueWeights = map[mms.Priority]int{
	mms.PriorityHigh:   6,
	mms.PriorityNormal: 3,
	mms.PriorityBulk:   1,
}

// idleCheck bounds how long an idle worker waits before it looks for new
// tasks again; a look is one cheap Redis script.
const idleCheck = 100 * time.Millisecond

// ServerConfig tunes the asynq server.
type ServerConfig struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// PollInterval is how often asynq moves due retries and scheduled
	// tasks into their queues.
	PollInterval time.Duration
	Backoff      Backoff
}

// NewServer returns an asynq server and the mux that routes its tasks to h.
func NewServer(conn asynq.RedisConnOpt, cfg ServerConfig, h *Handler,
	log zerolog.Logger) (*asynq.Server, *asynq.ServeMux) {
	queues := make(map[string]int, len(queueWeights)+1)
	for p, w := range queueWeights {
		queues[p.Queue()] = w
	}
	// Turning a campaign into jobs is quick and must not wait behind the
	// sends of the campaigns before it.
	queues[campaign.Queue] = queueWeights[mms.PriorityHigh]
	// Fetching late delivery reports can wait behind everything else.
	queues[ReportsQueue] = queueWeights[mms.PriorityBulk]
	srv := asynq.NewServer(conn, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           retryDelay(cfg.Backoff),
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.PollInterval,
		// An idle worker looks for new tasks this often (asynq waits 0.5 to
		// 1.5 times it): a job sent to a quiet system starts within this.
		TaskCheckInterval: min(cfg.PollInterval, idleCheck),
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Error().Err(err).Msg("worker cannot reach redis")
			}
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			// The handler logs its own outcomes; this catches what it could
			// not, such as a panic.
			if _, ours := err.(*retryError); !ours {
				log.Debug().Str("task_type", t.Type()).Str("error", logging.MaskNumbers(err.Error())).Msg("task error")
			}
		}),
		Logger:   logging.Asynq{L: log.With().Str("component", "asynq").Logger()},
		LogLevel: asynq.InfoLevel,
	})

	mux := asynq.NewServeMux()
	mux.Handle(task.TypeSend, h)
	return srv, mux
}
