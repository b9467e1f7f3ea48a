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
// The control API under /_sim/ has no authentication, so keep the default
// loopback address unless the network around it is private.
package main

import (
	"context"
	"errors"
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
}

func main() {
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
	})

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
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, 0, bad("ADDR", "%v", err)
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
