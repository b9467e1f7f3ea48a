// Package config reads mmsgate's settings from the environment.
//
// Each process reads its settings once, in main, and hands every part only
// the values it needs. A missing or invalid setting is reported as one line
// that names the variable, so an operator can fix it without reading code.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nyaruka/phonenumbers"

	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redisconn"
)

// Secret is a credential. It prints as a placeholder in logs, %v and JSON so
// that a stray log statement cannot leak it.
type Secret string

// String hides the value.
func (Secret) String() string { return "[redacted]" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return `"[redacted]"` }

// MarshalJSON hides the value.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Value returns the credential itself, for the one place that must send it.
func (s Secret) Value() string { return string(s) }

// Common holds the settings both the API and the worker use.
type Common struct {
	// RedisURL selects the Redis deployment: one server (redis://,
	// rediss://, unix://), a Sentinel-managed primary (redis+sentinel://)
	// or a Cluster (redis+cluster://); see internal/redisconn.
	RedisURL string `envconfig:"REDIS_URL" default:"redis://127.0.0.1:6379/0"`
	// RedisTimeout bounds each Redis operation, so a slow or absent Redis
	// turns into a quick error instead of a hung request.
	RedisTimeout time.Duration `envconfig:"REDIS_TIMEOUT" default:"2s"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info"`
	// JobRetention is how long a job's record is kept after its last change.
	JobRetention time.Duration `envconfig:"JOB_RETENTION" default:"168h"`
	// MaxAttempts is the number of failed Sinch attempts a job may spend
	// before it fails for good. Waits caused by 429 or 401 do not count.
	MaxAttempts int `envconfig:"MAX_ATTEMPTS" default:"10"`

	// Media checks (internal/media): the worker's pre-flight before each
	// batch, and POST /api/mms/media/check.
	//
	// MediaMaxBytes is the largest Content-Length a check passes. Sinch
	// publishes no limit; 5 MiB leaves room above the ~1 MB carriers
	// deliver reliably, which only warns, while refusing files no MMS
	// carries.
	MediaMaxBytes int64 `envconfig:"MEDIA_MAX_BYTES" default:"5242880"`
	// MediaWarnBytes is the Content-Length above which a check passes with
	// the warning media_large: Sinch's advice for reliable delivery.
	MediaWarnBytes int64 `envconfig:"MEDIA_WARN_BYTES" default:"1000000"`
	// MediaCheckTimeout bounds one whole check, redirects included.
	MediaCheckTimeout time.Duration `envconfig:"MEDIA_CHECK_TIMEOUT" default:"5s"`
	// MediaCheckTTL is how long a result (a pass or a permanent failure) is
	// kept in Redis per URL; 0 keeps none.
	MediaCheckTTL time.Duration `envconfig:"MEDIA_CHECK_TTL" default:"10m"`
	// MediaAllowedHosts lists non-public addresses checks may connect to
	// all the same: CIDRs, IPs, IP:port or host:port. Empty in production.
	MediaAllowedHosts []string `envconfig:"MEDIA_ALLOWED_HOSTS"`

	// Client callbacks (internal/callback): a job's status changes posted
	// to the callback_url its request gave.
	//
	// ClientCallbackSecret signs every callback; without it the API refuses
	// callback_url and workers deliver none. API and workers need the same.
	ClientCallbackSecret Secret `envconfig:"CLIENT_CALLBACK_SECRET"`
	// ClientCallbackAllowedHosts lists non-public addresses callbacks may
	// go to all the same, in MEDIA_ALLOWED_HOSTS's form. Empty in production.
	ClientCallbackAllowedHosts []string `envconfig:"CLIENT_CALLBACK_ALLOWED_HOSTS"`
	// ClientCallbackMaxAttempts is how often a callback is tried before it
	// is given up on; every process that queues callbacks needs it.
	ClientCallbackMaxAttempts int `envconfig:"CLIENT_CALLBACK_MAX_ATTEMPTS" default:"12"`
}

// CallbackAllow returns the allow-list of callback addresses.
func (c Common) CallbackAllow() (media.AllowList, error) {
	allow, err := media.ParseAllowList(c.ClientCallbackAllowedHosts)
	if err != nil {
		return media.AllowList{}, fmt.Errorf("CLIENT_CALLBACK_ALLOWED_HOSTS: %v", err)
	}
	return allow, nil
}

// Media returns the settings of a media checker, without its cache.
func (c Common) Media() (media.Config, error) {
	allow, err := media.ParseAllowList(c.MediaAllowedHosts)
	if err != nil {
		return media.Config{}, fmt.Errorf("MEDIA_ALLOWED_HOSTS: %v", err)
	}
	return media.Config{
		MaxBytes:  c.MediaMaxBytes,
		WarnBytes: c.MediaWarnBytes,
		Timeout:   c.MediaCheckTimeout,
		CacheTTL:  c.MediaCheckTTL,
		Allow:     allow,
	}, nil
}

// Level is the log level, for the process's logger.
func (c Common) Level() string { return c.LogLevel }

// API holds the settings of cmd/api.
type API struct {
	Common

	// Port is the TCP port the API listens on.
	Port int `envconfig:"PORT" default:"8080"`
	// ListenHost is the address the API binds; empty means all interfaces.
	ListenHost string `envconfig:"LISTEN_HOST" default:""`
	// APIKeys are the accepted client keys, comma separated, for rotation.
	APIKeys []Secret `envconfig:"INTERNAL_API_KEY" required:"true"`
	// DefaultFrom is the sender used when a request names none.
	DefaultFrom string `envconfig:"SINCH_MMS_NUMBER"`
	// DefaultRegion is the region assumed for numbers written without a
	// country code, as an ISO 3166 code.
	DefaultRegion string `envconfig:"DEFAULT_REGION" default:"US"`
	// MaxBodyBytes caps the size of a request body.
	MaxBodyBytes int64 `envconfig:"MAX_BODY_BYTES" default:"1048576"`
	// MaxBulkBodyBytes caps the body of bulk endpoints (the import of
	// suppressions), which take far more than one message.
	MaxBulkBodyBytes int64 `envconfig:"BULK_MAX_BODY_BYTES" default:"16777216"`
	// CampaignBatchSize is how many recipients go in one Sinch batch, one
	// job, of a campaign.
	CampaignBatchSize int `envconfig:"CAMPAIGN_BATCH_SIZE" default:"1000"`
	// RateLimit is the number of requests one API key may make per second,
	// counted in Redis across all API processes; 0 turns the limit off.
	RateLimit int `envconfig:"API_RATE_LIMIT" default:"200"`
	// RateBurst is how many requests above the rate a key may make at once.
	RateBurst int `envconfig:"API_RATE_BURST" default:"400"`
	// OpsUser and OpsPassword guard the queue UI under /ops/; the UI is off
	// unless both are set.
	OpsUser     string `envconfig:"OPS_USERNAME"`
	OpsPassword Secret `envconfig:"OPS_PASSWORD"`
	// OpsReadWrite lets the queue UI change tasks (delete, run, archive).
	OpsReadWrite bool `envconfig:"OPS_READ_WRITE" default:"false"`
	// ShutdownTimeout bounds how long in-flight requests may take at exit.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s"`
	// DefaultExpiry is how long after acceptance a job may still be sent
	// when the request sets no expire_at; MaxExpiry caps what it may set.
	// Neither may exceed Sinch's three days.
	DefaultExpiry time.Duration `envconfig:"DEFAULT_EXPIRY" default:"72h"`
	MaxExpiry     time.Duration `envconfig:"MAX_EXPIRY" default:"72h"`
	// MaxSchedule is how far ahead a request's send_at may lie.
	MaxSchedule time.Duration `envconfig:"MAX_SCHEDULE" default:"168h"`
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration `envconfig:"IDEMPOTENCY_TTL" default:"24h"`

	// ReportPath is where Sinch posts delivery reports, followed by
	// "/" and ReportSecret; without ReportSecret the endpoint is off.
	// WebhookSecret, when set, is the service plan's HMAC secret, and every
	// report must be signed with it.
	ReportPath    string `envconfig:"SINCH_REPORT_PATH" default:"/sinch/reports"`
	ReportSecret  Secret `envconfig:"SINCH_REPORT_SECRET"`
	WebhookSecret Secret `envconfig:"SINCH_WEBHOOK_SECRET"`
}

// Worker holds the settings of cmd/worker.
type Worker struct {
	Common

	// SinchBaseURL is the XMS host, without the /xms/v1 path.
	SinchBaseURL string `envconfig:"SINCH_API_BASE_URL" default:"https://us.sms.api.sinch.com"`
	// SinchPlanID is the service plan ID that goes in the request path.
	SinchPlanID string `envconfig:"SINCH_SERVICE_PLAN_ID" required:"true"`
	// SinchToken is the service plan's API token.
	SinchToken Secret `envconfig:"SINCH_API_TOKEN" required:"true"`
	// SinchTimeout bounds one Sinch call from connect to the last byte.
	SinchTimeout time.Duration `envconfig:"SINCH_TIMEOUT" default:"15s"`
	// Concurrency is the number of tasks one worker process runs at once.
	Concurrency int `envconfig:"WORKER_CONCURRENCY" default:"20"`
	// RetryBaseDelay is the first retry delay; each further one doubles.
	RetryBaseDelay time.Duration `envconfig:"RETRY_BASE_DELAY" default:"10s"`
	// RetryMaxDelay caps a single retry delay.
	RetryMaxDelay time.Duration `envconfig:"RETRY_MAX_DELAY" default:"30m"`
	// AuthRetryDelay is how long jobs wait after Sinch refused our
	// credentials before they try again.
	AuthRetryDelay time.Duration `envconfig:"AUTH_RETRY_DELAY" default:"1m"`
	// ShutdownTimeout is how long in-flight sends may run after SIGTERM.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s"`
	// PollInterval is how often scheduled and retrying tasks are checked.
	PollInterval time.Duration `envconfig:"WORKER_POLL_INTERVAL" default:"1s"`
	// CircuitThreshold is how many provider failures in a row (5xx,
	// timeouts, 401) pause sending; CircuitProbeInterval is how often Sinch
	// is then probed.
	CircuitThreshold     int           `envconfig:"CIRCUIT_THRESHOLD" default:"10"`
	CircuitProbeInterval time.Duration `envconfig:"CIRCUIT_PROBE_INTERVAL" default:"15s"`
	// MetricsAddr is where the worker serves /metrics and /healthz, e.g.
	// 127.0.0.1:9091; empty (the default) turns that server off.
	MetricsAddr string `envconfig:"METRICS_ADDR"`

	// CallbackURL, when set, is where Sinch sends delivery reports: the
	// API's SINCH_REPORT_PATH and secret, as Sinch reaches them; each
	// batch asks for reports of the kind DeliveryReport.
	CallbackURL    string `envconfig:"SINCH_CALLBACK_URL"`
	DeliveryReport string `envconfig:"SINCH_DELIVERY_REPORT" default:"per_recipient_final"`
	// ReportFetchAfter is how long after a send, with CallbackURL set, the
	// worker asks Sinch for the delivery reports that have not all come,
	// and again as often until its expiry; 0 never asks.
	ReportFetchAfter time.Duration `envconfig:"SINCH_REPORT_FETCH_AFTER" default:"1h"`

	// SinchRateLimit is the service plan's rate in recipients per second,
	// shared by every worker; 0 sends as fast as the workers go.
	// SinchRateBurst is how many may go at once; 0 means one second's worth.
	SinchRateLimit float64 `envconfig:"SINCH_RATE_LIMIT" default:"0"`
	SinchRateBurst float64 `envconfig:"SINCH_RATE_BURST" default:"0"`
	// QueueRateLimits caps single queues within the plan's rate, e.g.
	// "bulk:20,normal:40" (recipients per second).
	QueueRateLimits map[string]float64 `envconfig:"QUEUE_RATE_LIMITS"`
	// SenderRateLimit caps each sender number, as carriers do; 0 is none.
	SenderRateLimit float64 `envconfig:"SENDER_RATE_LIMIT" default:"0"`
	// RateWaitMax is the longest a send waits in place for room; longer
	// waits put the task back in its queue.
	RateWaitMax time.Duration `envconfig:"RATE_WAIT_MAX" default:"1s"`

	// ClientCallbackConcurrency is how many callbacks one worker process
	// posts at once, apart from its sends; ClientCallbackTimeout bounds one
	// attempt; ClientCallbackMaxAttempts is how often an event is tried,
	// with delays from ClientCallbackRetryBase doubling up to
	// ClientCallbackRetryMax, before it is given up on (the number of
	// attempts, CLIENT_CALLBACK_MAX_ATTEMPTS, is a common setting).
	ClientCallbackConcurrency int           `envconfig:"CLIENT_CALLBACK_CONCURRENCY" default:"10"`
	ClientCallbackTimeout     time.Duration `envconfig:"CLIENT_CALLBACK_TIMEOUT" default:"10s"`
	ClientCallbackRetryBase   time.Duration `envconfig:"CLIENT_CALLBACK_RETRY_BASE" default:"10s"`
	ClientCallbackRetryMax    time.Duration `envconfig:"CLIENT_CALLBACK_RETRY_MAX" default:"1h"`

	// MediaCheck makes the worker check a job's media URL (see
	// internal/media) before sending it to Sinch; false skips the check.
	MediaCheck bool `envconfig:"MEDIA_CHECK" default:"true"`
}

// LoadAPI reads the API's settings from the environment.
func LoadAPI() (API, error) {
	var c API
	if err := process(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// LoadWorker reads the worker's settings from the environment.
func LoadWorker() (Worker, error) {
	var c Worker
	if err := process(&c); err != nil {
		return c, err
	}
	// envconfig keeps the last of a repeated key; a repeat is a mistake.
	seen := map[string]bool{}
	for _, pair := range strings.Split(os.Getenv("QUEUE_RATE_LIMITS"), ",") {
		q, _, _ := strings.Cut(strings.TrimSpace(pair), ":")
		if q != "" && seen[q] {
			return c, fmt.Errorf("QUEUE_RATE_LIMITS: %s is given twice", q)
		}
		seen[q] = true
	}
	return c, c.Validate()
}

// process fills c and rewrites envconfig's errors into one line that leads
// with the variable's name.
func process(c any) error {
	err := envconfig.Process("", c)
	var pe *envconfig.ParseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return fmt.Errorf("%s: cannot read %q as %s", pe.KeyName, pe.Value, pe.TypeName)
	case strings.HasPrefix(err.Error(), "required key "):
		// envconfig words it "required key X missing value".
		name := strings.Fields(err.Error())[2]
		return fmt.Errorf("%s: required but not set", name)
	}
	return err
}

// Validate checks the values envconfig cannot check by type alone.
func (c Common) Validate() error {
	if err := checkRedisURL(c.RedisURL); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.RedisTimeout < 10*time.Millisecond {
		return errors.New("REDIS_TIMEOUT: must be at least 10ms")
	}
	if c.JobRetention < time.Hour {
		return errors.New("JOB_RETENTION: must be at least 1h")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		return errors.New("MAX_ATTEMPTS: must be between 1 and 100")
	}
	return c.validateMedia()
}

// maxMediaBytes bounds MEDIA_MAX_BYTES; no MMS comes near it.
const maxMediaBytes = 1 << 30

func (c Common) validateMedia() error {
	if c.MediaMaxBytes < 1024 || c.MediaMaxBytes > maxMediaBytes {
		return fmt.Errorf("MEDIA_MAX_BYTES: must be between 1024 and %d (1 GiB)", maxMediaBytes)
	}
	if c.MediaWarnBytes < 1 || c.MediaWarnBytes > c.MediaMaxBytes {
		return errors.New("MEDIA_WARN_BYTES: must be at least 1 and at most MEDIA_MAX_BYTES")
	}
	if c.MediaCheckTimeout < 100*time.Millisecond || c.MediaCheckTimeout > time.Minute {
		return errors.New("MEDIA_CHECK_TIMEOUT: must be between 100ms and 1m")
	}
	if c.MediaCheckTTL != 0 && (c.MediaCheckTTL < time.Second || c.MediaCheckTTL > 24*time.Hour) {
		return errors.New("MEDIA_CHECK_TTL: must be 0 (no caching) or between 1s and 24h")
	}
	if _, err := c.Media(); err != nil {
		return err
	}
	if c.ClientCallbackMaxAttempts < 1 || c.ClientCallbackMaxAttempts > 100 {
		return errors.New("CLIENT_CALLBACK_MAX_ATTEMPTS: must be between 1 and 100")
	}
	if s := c.ClientCallbackSecret.Value(); s != "" && len(strings.TrimSpace(s)) < 16 {
		return errors.New("CLIENT_CALLBACK_SECRET: must be at least 16 characters")
	}
	_, err := c.CallbackAllow()
	return err
}

// maxBulkBody bounds BULK_MAX_BODY_BYTES: a bulk body is read whole.
const maxBulkBody = 256 << 20

// Validate checks the API's settings.
func (c API) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("PORT: %d is not a TCP port", c.Port)
	}
	if len(c.APIKeys) == 0 {
		return errors.New("INTERNAL_API_KEY: holds no key")
	}
	for i, k := range c.APIKeys {
		if len(strings.TrimSpace(k.Value())) < 16 {
			return fmt.Errorf("INTERNAL_API_KEY: key %d is shorter than 16 characters", i+1)
		}
	}
	if c.MaxBodyBytes < 1024 {
		return errors.New("MAX_BODY_BYTES: must be at least 1024")
	}
	// Zero means the API's default: 16 MiB, or MAX_BODY_BYTES if larger.
	if c.MaxBulkBodyBytes != 0 && (c.MaxBulkBodyBytes < c.MaxBodyBytes || c.MaxBulkBodyBytes > maxBulkBody) {
		return fmt.Errorf("BULK_MAX_BODY_BYTES: must be at least MAX_BODY_BYTES and at most %d (256 MiB)", maxBulkBody)
	}
	if c.RateLimit < 0 {
		return errors.New("API_RATE_LIMIT: must not be negative")
	}
	if c.RateBurst < 0 {
		return errors.New("API_RATE_BURST: must not be negative")
	}
	if (c.OpsUser == "") != (c.OpsPassword == "") {
		return errors.New("OPS_PASSWORD: OPS_USERNAME and OPS_PASSWORD must be set together")
	}
	if c.OpsPassword != "" && len(c.OpsPassword) < 12 {
		return errors.New("OPS_PASSWORD: must be at least 12 characters")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("SHUTDOWN_TIMEOUT: must be positive")
	}
	if c.MaxExpiry < time.Hour || c.MaxExpiry > 72*time.Hour {
		return errors.New("MAX_EXPIRY: must be between 1h and 72h (Sinch keeps a batch at most three days)")
	}
	if c.MaxSchedule < time.Minute || c.MaxSchedule > 90*24*time.Hour {
		return errors.New("MAX_SCHEDULE: must be between 1m and 2160h (90 days)")
	}
	if c.DefaultExpiry < time.Hour || c.DefaultExpiry > c.MaxExpiry {
		return errors.New("DEFAULT_EXPIRY: must be at least 1h and at most MAX_EXPIRY")
	}
	if c.IdempotencyTTL < 24*time.Hour || c.IdempotencyTTL > c.JobRetention {
		return errors.New("IDEMPOTENCY_TTL: must be at least 24h and at most JOB_RETENTION")
	}
	if c.CampaignBatchSize < 1 || c.CampaignBatchSize > mms.MaxRecipients {
		return fmt.Errorf("CAMPAIGN_BATCH_SIZE: must be between 1 and %d (Sinch's limit per batch)", mms.MaxRecipients)
	}
	if err := c.validateReports(); err != nil {
		return err
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		return fmt.Errorf("DEFAULT_REGION: %q is not a region code such as US, CA or GB", c.DefaultRegion)
	}
	if c.DefaultFrom != "" {
		if _, err := mms.NormalizeSender(c.DefaultFrom, c.DefaultRegion); err != nil {
			return fmt.Errorf("SINCH_MMS_NUMBER: %v", err)
		}
	}
	return nil
}

// Validate checks the worker's settings.
func (c Worker) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	u, err := url.Parse(c.SinchBaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("SINCH_API_BASE_URL: %q is not an http(s) URL", c.SinchBaseURL)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("SINCH_API_BASE_URL: give only scheme and host, e.g. https://us.sms.api.sinch.com")
	}
	if strings.TrimSpace(c.SinchPlanID) == "" {
		return errors.New("SINCH_SERVICE_PLAN_ID: is empty")
	}
	if strings.TrimSpace(c.SinchToken.Value()) == "" {
		return errors.New("SINCH_API_TOKEN: is empty")
	}
	if strings.ContainsAny(c.SinchPlanID, "/?# ") {
		return errors.New("SINCH_SERVICE_PLAN_ID: must not contain '/', '?', '#' or spaces")
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		return errors.New("WORKER_CONCURRENCY: must be between 1 and 1000")
	}
	if c.SinchTimeout <= 0 {
		return errors.New("SINCH_TIMEOUT: must be positive")
	}
	if c.ShutdownTimeout <= c.SinchTimeout {
		return errors.New("SHUTDOWN_TIMEOUT: must be longer than SINCH_TIMEOUT so in-flight sends can finish")
	}
	if c.RetryBaseDelay <= 0 || c.RetryMaxDelay < c.RetryBaseDelay {
		return errors.New("RETRY_MAX_DELAY: must be at least RETRY_BASE_DELAY, and both positive")
	}
	if c.AuthRetryDelay <= 0 {
		return errors.New("AUTH_RETRY_DELAY: must be positive")
	}
	if c.PollInterval <= 0 {
		return errors.New("WORKER_POLL_INTERVAL: must be positive")
	}
	if c.CircuitThreshold < 1 {
		return errors.New("CIRCUIT_THRESHOLD: must be at least 1")
	}
	if c.CircuitProbeInterval < 100*time.Millisecond {
		return errors.New("CIRCUIT_PROBE_INTERVAL: must be at least 100ms")
	}
	if err := c.validateReports(); err != nil {
		return err
	}
	if err := c.validateCallbacks(); err != nil {
		return err
	}
	return c.validateRates()
}

func (c Worker) validateCallbacks() error {
	if c.ClientCallbackConcurrency < 1 || c.ClientCallbackConcurrency > 1000 {
		return errors.New("CLIENT_CALLBACK_CONCURRENCY: must be between 1 and 1000")
	}
	if c.ClientCallbackTimeout < 100*time.Millisecond || c.ClientCallbackTimeout > time.Minute {
		return errors.New("CLIENT_CALLBACK_TIMEOUT: must be between 100ms and 1m")
	}
	if c.ClientCallbackRetryBase <= 0 || c.ClientCallbackRetryMax < c.ClientCallbackRetryBase {
		return errors.New("CLIENT_CALLBACK_RETRY_MAX: must be at least CLIENT_CALLBACK_RETRY_BASE, and both positive")
	}
	return nil
}

// minRate and maxRate bound every rate limit, in recipients per second.
const (
	minRate = 0.01
	maxRate = 1e6
)

func (c API) validateReports() error {
	p := c.ReportPath
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, ":*?# ") ||
		strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ops") {
		return errors.New("SINCH_REPORT_PATH: must be a path such as /sinch/reports, outside /api/ and /ops")
	}
	if s := c.ReportSecret.Value(); s != "" && (len(s) < 16 || strings.ContainsAny(s, "/?#% ")) {
		return errors.New("SINCH_REPORT_SECRET: must be at least 16 characters, none of / ? # % or space")
	}
	if c.WebhookSecret.Value() != "" && c.ReportSecret.Value() == "" {
		return errors.New("SINCH_WEBHOOK_SECRET: needs SINCH_REPORT_SECRET, which turns the report endpoint on")
	}
	return nil
}

func (c Worker) validateReports() error {
	switch c.DeliveryReport {
	case "per_recipient_final", "per_recipient", "full":
	default:
		return fmt.Errorf("SINCH_DELIVERY_REPORT: %q is not one of per_recipient_final, per_recipient, full",
			c.DeliveryReport)
	}
	if c.ReportFetchAfter < 0 || (c.ReportFetchAfter > 0 && c.ReportFetchAfter < time.Second) {
		return errors.New("SINCH_REPORT_FETCH_AFTER: must be 0 (never) or at least 1s")
	}
	if c.CallbackURL == "" {
		return nil
	}
	u, err := url.Parse(c.CallbackURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("SINCH_CALLBACK_URL: must be an http(s) URL, " +
			"e.g. https://mms.example.com/sinch/reports/<secret>")
	}
	return nil
}

func (c Worker) validateRates() error {
	for _, r := range []struct {
		name  string
		value float64
	}{
		{"SINCH_RATE_LIMIT", c.SinchRateLimit},
		{"SINCH_RATE_BURST", c.SinchRateBurst},
		{"SENDER_RATE_LIMIT", c.SenderRateLimit},
	} {
		if r.value != 0 && !(r.value >= minRate && r.value <= maxRate) {
			return fmt.Errorf("%s: must be 0 (off) or %g to %g recipients per second", r.name, minRate, maxRate)
		}
	}
	for q, rate := range c.QueueRateLimits {
		if !mms.Priority(q).Valid() {
			return fmt.Errorf("QUEUE_RATE_LIMITS: %q is not one of high, normal, bulk", q)
		}
		if !(rate >= minRate && rate <= maxRate) {
			return fmt.Errorf("QUEUE_RATE_LIMITS: the rate of %s must be %g to %g", q, minRate, maxRate)
		}
	}
	if c.RateWaitMax < 10*time.Millisecond || c.RateWaitMax > time.Minute {
		return errors.New("RATE_WAIT_MAX: must be between 10ms and 1m")
	}
	return nil
}

func checkRedisURL(s string) error {
	_, err := redisconn.Parse(s, 0)
	return err
}
