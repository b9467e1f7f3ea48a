package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/metrics"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/worker"
)

// Config sets up delivery.
type Config struct {
	// Secret signs every callback.
	Secret string
	// Timeout bounds one delivery attempt, from connect to the answer's
	// headers.
	Timeout time.Duration
	// Allow lists the non-public addresses callbacks may go to (tests, a
	// demo, a private network); cloud metadata addresses never.
	Allow media.AllowList
	// Resolver and Dial as in media.NewDialer; nil for the defaults.
	Resolver media.Resolver
	Dial     media.DialFunc
	// Metrics, if set, counts deliveries.
	Metrics *metrics.Worker
}

// Deliverer runs TypeDeliver tasks.
type Deliverer struct {
	store  *jobstore.Store
	cfg    Config
	client *http.Client
	log    zerolog.Logger
	now    func() time.Time
}

// NewDeliverer returns a deliverer.
func NewDeliverer(store *jobstore.Store, cfg Config, log zerolog.Logger) *Deliverer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	transport := media.NewTransport(cfg.Allow, cfg.Resolver, cfg.Dial, cfg.Timeout)
	transport.ResponseHeaderTimeout = cfg.Timeout
	transport.MaxIdleConnsPerHost = 4
	transport.IdleConnTimeout = time.Minute
	client := &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is an answer that is not 2xx: the event is retried at
		// the address the client gave, never sent elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Deliverer{store: store, cfg: cfg, client: client, log: log, now: time.Now}
}

// ProcessTask posts one event. It returns nil once the client answered 2xx
// or the event needs no delivery (delivered before, or its job is gone),
// and an error for asynq to retry with backoff otherwise. After the last
// attempt the event is taken out of the job's outbox and counted as failed
// there, and asynq archives the task.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !mms.ValidJobID(p.JobID) || p.Seq < 1 {
		d.log.Error().Msg("undecodable callback task dropped")
		return fmt.Errorf("bad callback task payload: %w", asynq.SkipRetry)
	}
	log := d.log.With().Str("job_id", p.JobID).Int64("seq", p.Seq).Logger()
	box, err := d.store.Outbox(ctx, p.JobID)
	if errors.Is(err, mms.ErrNotFound) {
		log.Info().Msg("client callback dropped: its job is no longer kept")
		return nil
	}
	if err != nil {
		return err
	}
	var ev *jobstore.CallbackEvent
	for i := range box.Events {
		if box.Events[i].Seq == p.Seq {
			ev = &box.Events[i]
		}
	}
	if ev == nil || box.URL == "" {
		return nil // delivered already, or given up on
	}
	body, err := bodyOf(box, *ev)
	if err != nil {
		return err
	}
	log = log.With().Str("status", string(ev.Status)).Logger()

	start := time.Now()
	code, err := d.post(ctx, box.URL, ev.ID(), body)
	took := time.Since(start)
	if err == nil {
		if _, err := d.store.EventDone(context.WithoutCancel(ctx), p.JobID, p.Seq, false); err != nil {
			// Delivered all the same: a retry posts it again, with the same
			// event ID for the client to tell.
			log.Warn().Err(err).Msg("client callback delivered, but not marked so")
			return err
		}
		d.cfg.Metrics.Callback("delivered", took)
		log.Debug().Int("http_status", code).Dur("duration_ms", took).Msg("client callback delivered")
		return nil
	}

	var aerr *media.AddressError
	refused := errors.As(err, &aerr)
	last := refused
	if n, ok := asynq.GetRetryCount(ctx); ok && n+1 >= max(p.Attempts, 1) {
		last = true
	}
	log = log.With().Int("http_status", code).Str("error", logging.MaskNumbers(err.Error())).
		Dur("duration_ms", took).Logger()
	if !last {
		d.cfg.Metrics.Callback("retried", took)
		log.Info().Msg("client callback not taken; will retry")
		return err
	}
	d.cfg.Metrics.Callback("failed", took)
	if _, derr := d.store.EventDone(context.WithoutCancel(ctx), p.JobID, p.Seq, true); derr != nil {
		log.Warn().Err(derr).Msg("client callback given up on, but not marked so")
	}
	if refused {
		log.Error().Msg("client callback given up on before connecting: its address is not public and not on " +
			"this worker's CLIENT_CALLBACK_ALLOWED_HOSTS; the task is archived")
	} else {
		log.Error().Int("attempts", p.Attempts).
			Msg("client callback given up on: the client's endpoint did not take it; the task is archived")
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// post sends one callback; nil means the client answered 2xx.
func (d *Deliverer) post(ctx context.Context, target, eventID string, body []byte) (int, error) {
	if err := media.ValidateURL(target); err != nil {
		return 0, &media.AddressError{Host: "callback_url", Why: "not a URL callbacks may use: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := d.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mmsgate-callbacks/1")
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, ts, body))
	resp, err := d.client.Do(req)
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// Its text holds the whole URL, which may carry the client's token.
		return 0, fmt.Errorf("%s callback: %w", uerr.Op, uerr.Err)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("client answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// ServerConfig tunes the callback server.
type ServerConfig struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	PollInterval    time.Duration
	Backoff         worker.Backoff
}

// NewServer returns the asynq server that serves only the callback queue.
func NewServer(conn asynq.RedisConnOpt, cfg ServerConfig, d *Deliverer, log zerolog.Logger) (*asynq.Server,
	*asynq.ServeMux) {
	srv := asynq.NewServer(conn, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues:      map[string]int{Queue: 1},
		RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
			return cfg.Backoff.Delay(n + 1)
		},
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.PollInterval,
		TaskCheckInterval:        min(cfg.PollInterval, 200*time.Millisecond),
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			log.Debug().Str("task_type", t.Type()).Str("error", logging.MaskNumbers(err.Error())).Msg("task error")
		}),
		Logger:   logging.Asynq{L: log.With().Str("component", "asynq-callbacks").Logger()},
		LogLevel: asynq.InfoLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeDeliver, d)
	return srv, mux
}
