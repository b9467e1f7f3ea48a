// Command sinchsim runs the Sinch XMS simulator (internal/sinchsim) as a
// standalone server, for the demo and for load tests.
//
// It is configured by environment variables, all optional:
//
//	SINCHSIM_ADDR                  listen address, default 127.0.0.1:9090
//	SINCHSIM_SERVICE_PLAN_ID       service plan in the path, default sim-plan
//	SINCHSIM_TOKEN                 bearer token (secret), default sim-token
//	SINCHSIM_LATENCY               added to every batches answer, e.g. 150ms
//	SINCHSIM_FAIL_RATE             share of POST /batches that fail, 0 to 1
//	SINCHSIM_FAIL_STATUS           status of those failures, default 503
//	SINCHSIM_DEFAULT_ORIGINATOR    sender used when "from" is missing
//	SINCHSIM_MAX_CLIENT_REFERENCE  longest client_reference, default 128
//	SINCHSIM_LOG_LEVEL             debug, info (default), warn or error
//
// Delivery reports and callbacks:
//
//	SINCHSIM_REPORT_DELAY           from a batch's start to its final statuses
//	                                and callbacks, default 200ms
//	SINCHSIM_REPORT_DEFAULT         final status of every message, default
//	                                Delivered/0
//	SINCHSIM_REPORT_OUTCOMES        per-number final statuses, comma-separated
//	                                number=Status/code, e.g. *13=Failed/417
//	                                (numbers ending in 13),+12025550199=Expired/406
//	SINCHSIM_REPORT_DUPLICATE       true: send every callback twice
//	SINCHSIM_REPORT_OUT_OF_ORDER    true: per_recipient Dispatched after the
//	                                final report
//	SINCHSIM_REPORT_BEFORE_CREATED  true: send callbacks before the batch's 201
//	SINCHSIM_CALLBACK_RETRY_DELAY   first retry after a 5xx, 429 or no answer,
//	                                doubling, default 100ms
//	SINCHSIM_CALLBACK_MAX_ATTEMPTS  attempts per callback, default 5
//	SINCHSIM_CALLBACK_TIMEOUT       per attempt, default 5s
//	SINCHSIM_WEBHOOK_SECRET         (secret) signs callbacks with Sinch's HMAC
//	                                headers; unset: unsigned
//
// Callbacks only go to callback_url hosts that are loopback IP literals
// (127.0.0.0/8, [::1]); any other URL, "localhost" included, is logged as
// refused and never dialed.
//
// The control API under /_sim/ has no authentication, so keep the default
// loopback address unless the network around it is private.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// envPrefix starts every variable name.
const envPrefix = "SINCHSIM"

// shutdownGrace is how long requests in flight may finish after a signal.
// Hanging faults outlast it on purpose and are then cut off.
const shutdownGrace = 5 * time.Second

// config is read from the environment. Names come from split_words
// (ServicePlanID -> SINCHSIM_SERVICE_PLAN_ID); an "envconfig" tag is avoided
// because envconfig would then also read the bare name (ADDR, TOKEN) when
// the prefixed one is unset.
type config struct {
	Addr               string        `split_words:"true" default:"127.0.0.1:9090"`
	ServicePlanID      string        `split_words:"true" default:"sim-plan"`
	Token              string        `split_words:"true" default:"sim-token"`
	Latency            time.Duration `split_words:"true" default:"0s"`
	FailRate           float64       `split_words:"true" default:"0"`
	FailStatus         int           `split_words:"true" default:"503"`
	DefaultOriginator  string        `split_words:"true"`
	MaxClientReference int           `split_words:"true" default:"128"`
	LogLevel           string        `split_words:"true" default:"info"`

	ReportDelay         time.Duration `split_words:"true" default:"200ms"`
	ReportDefault       string        `split_words:"true" default:"Delivered/0"`
	ReportOutcomes      string        `split_words:"true"`
	ReportDuplicate     bool          `split_words:"true" default:"false"`
	ReportOutOfOrder    bool          `split_words:"true" default:"false"`
	ReportBeforeCreated bool          `split_words:"true" default:"false"`
	CallbackRetryDelay  time.Duration `split_words:"true" default:"100ms"`
	CallbackMaxAttempts int           `split_words:"true" default:"5"`
	CallbackTimeout     time.Duration `split_words:"true" default:"5s"`
	WebhookSecret       string        `split_words:"true"`

	// reports is built from the Report* and Callback* fields by
	// loadConfig; envconfig leaves unexported fields alone.
	reports sinchsim.ReportSettings
}

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), "usage: sinchsim\n\n"+
			"Runs the Sinch XMS simulator. It takes no arguments: every setting is a SINCHSIM_*\n"+
			"environment variable (SINCHSIM_ADDR, default 127.0.0.1:9090; see README \"The Sinch simulator\").\n")
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sinchsim:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, level, err := loadConfig()
	if err != nil {
		return err
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("service", "sinchsim").Logger()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sim := sinchsim.New(sinchsim.Config{
		ServicePlanID:      cfg.ServicePlanID,
		Token:              cfg.Token,
		Latency:            cfg.Latency,
		DefaultOriginator:  cfg.DefaultOriginator,
		MaxClientReference: cfg.MaxClientReference,
		FailRate:           cfg.FailRate,
		FailStatus:         cfg.FailStatus,
		Reports:            cfg.reports,
		OnCallback:         logCallback(log),
	})
	// Stops the callbacks still waiting; runs after the server's shutdown.
	defer sim.Close()

	// Listen before serving so that a busy port fails the start, not later.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on SINCHSIM_ADDR %s: %w", cfg.Addr, err)
	}

	srv := &http.Server{
		Handler:           logRequests(log, sim),
		ReadHeaderTimeout: 5 * time.Second,
		// No write timeout: Latency and Hang faults decide when to answer.
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if !isLoopback(ln.Addr()) {
		log.Warn().Str("addr", ln.Addr().String()).Msg("listening beyond loopback: /_sim/ has no authentication")
	}
	log.Info().
		Str("addr", ln.Addr().String()).
		Str("service_plan_id", cfg.ServicePlanID).
		Str("latency", cfg.Latency.String()).
		Float64("fail_rate", cfg.FailRate).
		Int("fail_status", cfg.FailStatus).
		Str("report_delay", cfg.ReportDelay.String()).
		Bool("signed_callbacks", cfg.WebhookSecret != "").
		Msg("sinchsim listening")

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info().Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()

	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still hanging: close their connections, which ends
		// their handlers through the request context.
		log.Warn().Err(err).Msg("grace period over, closing open requests")
		if err := srv.Close(); err != nil {
			return fmt.Errorf("close server: %w", err)
		}
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}

	log.Info().Msg("stopped")
	return nil
}

// loadConfig reads and checks the environment. Its errors name the
// variable at fault and never print the token.
func loadConfig() (config, zerolog.Level, error) {
	var cfg config
	if err := envconfig.Process(envPrefix, &cfg); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return cfg, 0, fmt.Errorf("bad setting %s: %v", pe.KeyName, pe.Err)
		}
		return cfg, 0, fmt.Errorf("read settings: %w", err)
	}

	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("bad setting %s_%s: %s", envPrefix, name, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Addr == "":
		return cfg, 0, bad("ADDR", "must not be empty")
	case cfg.ServicePlanID == "":
		return cfg, 0, bad("SERVICE_PLAN_ID", "must not be empty")
	case cfg.Token == "":
		return cfg, 0, bad("TOKEN", "must not be empty")
	case cfg.Latency < 0:
		return cfg, 0, bad("LATENCY", "must not be negative, got %s", cfg.Latency)
	case cfg.FailRate < 0 || cfg.FailRate > 1:
		return cfg, 0, bad("FAIL_RATE", "must be between 0 and 1, got %v", cfg.FailRate)
	case cfg.FailStatus < 200 || cfg.FailStatus > 599:
		return cfg, 0, bad("FAIL_STATUS", "must be an HTTP status from 200 to 599, got %d", cfg.FailStatus)
	case cfg.MaxClientReference < 1:
		return cfg, 0, bad("MAX_CLIENT_REFERENCE", "must be at least 1, got %d", cfg.MaxClientReference)
	case cfg.ReportDelay <= 0:
		return cfg, 0, bad("REPORT_DELAY", "must be positive, got %s", cfg.ReportDelay)
	case cfg.CallbackRetryDelay <= 0:
		return cfg, 0, bad("CALLBACK_RETRY_DELAY", "must be positive, got %s", cfg.CallbackRetryDelay)
	case cfg.CallbackMaxAttempts < 1:
		return cfg, 0, bad("CALLBACK_MAX_ATTEMPTS", "must be at least 1, got %d", cfg.CallbackMaxAttempts)
	case cfg.CallbackTimeout <= 0:
		return cfg, 0, bad("CALLBACK_TIMEOUT", "must be positive, got %s", cfg.CallbackTimeout)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, 0, bad("ADDR", "%v", err)
	}

	fallback, err := sinchsim.ParseOutcome(cfg.ReportDefault)
	if err != nil {
		return cfg, 0, bad("REPORT_DEFAULT", "%v", err)
	}
	outcomes, err := sinchsim.ParseOutcomes(cfg.ReportOutcomes)
	if err != nil {
		return cfg, 0, bad("REPORT_OUTCOMES", "%v", err)
	}
	cfg.reports = sinchsim.ReportSettings{
		Delay:         cfg.ReportDelay,
		Default:       fallback,
		Outcomes:      outcomes,
		Duplicate:     cfg.ReportDuplicate,
		OutOfOrder:    cfg.ReportOutOfOrder,
		BeforeCreated: cfg.ReportBeforeCreated,
		RetryDelay:    cfg.CallbackRetryDelay,
		MaxAttempts:   cfg.CallbackMaxAttempts,
		Timeout:       cfg.CallbackTimeout,
		WebhookSecret: cfg.WebhookSecret,
	}

	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || level < zerolog.DebugLevel || level > zerolog.ErrorLevel || cfg.LogLevel == "" {
		return cfg, 0, bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", cfg.LogLevel)
	}
	return cfg, level, nil
}

// logRequests writes one line per request: method, path, status and
// duration. The query string and headers are left out, so neither the token
// nor anything a client put in the query reaches the log; paths carry only
// the service plan and batch ids.
func logRequests(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}

		next.ServeHTTP(rec, r)

		ev := log.Info()
		status := rec.status
		if status == 0 {
			if r.Context().Err() != nil {
				// The client left during a latency or hang: no answer.
				ev = ev.Bool("client_gone", true)
			} else {
				status = http.StatusOK
			}
		}
		ev.Str("method", r.Method).
			Str("path", r.URL.Path).
			Int("status", status).
			Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
			Msg("request")
	})
}

// logCallback logs the fate of each callback: one line with the batch id,
// the report type and status, the result and the attempts. Phone numbers,
// the callback URL and the body stay out of the log; a refused URL is a
// warning with the reason.
func logCallback(log zerolog.Logger) func(sinchsim.Callback) {
	return func(c sinchsim.Callback) {
		ev := log.Info()
		if c.Result != sinchsim.CallbackDelivered {
			ev = log.Warn()
		}
		ev = ev.Str("batch_id", c.BatchID).
			Str("type", c.Type).
			Str("result", c.Result).
			Int("copy", c.Copy).
			Int("attempts", len(c.Attempts))
		if c.Status != "" {
			ev = ev.Str("dr_status", c.Status).Int("dr_code", c.Code)
		}
		if n := len(c.Attempts); n > 0 {
			last := c.Attempts[n-1]
			ev = ev.Int("last_status", last.Status)
			if last.Error != "" {
				ev = ev.Str("last_error", last.Error)
			}
		}
		if c.Reason != "" {
			ev = ev.Str("reason", c.Reason)
		}
		ev.Msg("callback")
	}
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}

// isLoopback reports whether addr is on a loopback interface.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
