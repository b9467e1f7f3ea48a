package config_test

// These tests set environment variables, which are process-wide, so none of
// them runs in parallel (t.Setenv refuses to anyway).

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/config"
)

const (
	keyA  = "key-a-0123456789abcdef"
	keyB  = "key-b-0123456789abcdef"
	token = "sinch-token-do-not-print"
)

// vars lists every variable the two loaders read, so a test starts from a
// known environment whatever the machine's own holds.
var vars = []string{
	"REDIS_URL", "REDIS_TIMEOUT", "LOG_LEVEL", "JOB_RETENTION", "MAX_ATTEMPTS",
	"PORT", "LISTEN_HOST", "INTERNAL_API_KEY", "SINCH_MMS_NUMBER", "DEFAULT_REGION", "MAX_BODY_BYTES",
	"BULK_MAX_BODY_BYTES",
	"API_RATE_LIMIT", "API_RATE_BURST", "OPS_USERNAME", "OPS_PASSWORD", "OPS_READ_WRITE", "SHUTDOWN_TIMEOUT",
	"SINCH_API_BASE_URL", "SINCH_SERVICE_PLAN_ID", "SINCH_API_TOKEN", "SINCH_TIMEOUT", "WORKER_CONCURRENCY",
	"RETRY_BASE_DELAY", "RETRY_MAX_DELAY", "AUTH_RETRY_DELAY", "WORKER_POLL_INTERVAL",
	"CAMPAIGN_BATCH_SIZE", "SINCH_RATE_LIMIT", "SINCH_RATE_BURST", "QUEUE_RATE_LIMITS", "SENDER_RATE_LIMIT",
	"RATE_WAIT_MAX", "MEDIA_CHECK", "MEDIA_MAX_BYTES", "MEDIA_WARN_BYTES", "MEDIA_CHECK_TIMEOUT",
	"MEDIA_CHECK_TTL", "MEDIA_ALLOWED_HOSTS",
	"CLIENT_CALLBACK_SECRET", "CLIENT_CALLBACK_ALLOWED_HOSTS", "CLIENT_CALLBACK_MAX_ATTEMPTS",
	"CLIENT_CALLBACK_CONCURRENCY", "CLIENT_CALLBACK_TIMEOUT", "CLIENT_CALLBACK_RETRY_BASE", "CLIENT_CALLBACK_RETRY_MAX",
}

// env unsets every variable, then sets the given name, value pairs. t.Setenv
// restores the old environment when the test ends.
func env(t *testing.T, kv ...string) {
	t.Helper()

	for _, k := range vars {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

// unset removes one variable for the rest of the test.
func unset(t *testing.T, k string) {
	t.Helper()

	t.Setenv(k, "")
	require.NoError(t, os.Unsetenv(k))
}

// apiEnv and workerEnv are the least each process needs.
var (
	apiEnv    = []string{"INTERNAL_API_KEY", keyA}
	workerEnv = []string{"SINCH_SERVICE_PLAN_ID", "plan-1", "SINCH_API_TOKEN", token}
)

func TestLoadAPIDefaults(t *testing.T) {
	env(t, apiEnv...)

	c, err := config.LoadAPI()
	require.NoError(t, err)
	require.Equal(t, "redis://127.0.0.1:6379/0", c.RedisURL)
	require.Equal(t, 2*time.Second, c.RedisTimeout)
	require.Equal(t, 168*time.Hour, c.JobRetention)
	require.Equal(t, 10, c.MaxAttempts)
	require.Equal(t, 8080, c.Port)
	require.Equal(t, []config.Secret{keyA}, c.APIKeys)
	require.Equal(t, "US", c.DefaultRegion)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.EqualValues(t, 1<<20, c.MaxBodyBytes)
	require.EqualValues(t, 16<<20, c.MaxBulkBodyBytes)
}

func TestLoadWorkerDefaults(t *testing.T) {
	env(t, workerEnv...)

	c, err := config.LoadWorker()
	require.NoError(t, err)
	require.Equal(t, "https://us.sms.api.sinch.com", c.SinchBaseURL)
	require.Equal(t, "plan-1", c.SinchPlanID)
	require.Equal(t, token, c.SinchToken.Value())
	require.Equal(t, 15*time.Second, c.SinchTimeout)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.Equal(t, 10*time.Second, c.RetryBaseDelay)
	require.Equal(t, 30*time.Minute, c.RetryMaxDelay)
	require.Zero(t, c.SinchRateLimit, "no rate limit unless one is set")
	require.Equal(t, time.Second, c.RateWaitMax)
}

func TestLoadWorkerRates(t *testing.T) {
	env(t, append(append([]string{}, workerEnv...), "SINCH_RATE_LIMIT", "30", "SINCH_RATE_BURST", "45",
		"QUEUE_RATE_LIMITS", "bulk:20,normal:25.5", "SENDER_RATE_LIMIT", "0.5")...)

	c, err := config.LoadWorker()
	require.NoError(t, err)
	require.Equal(t, 30.0, c.SinchRateLimit)
	require.Equal(t, 45.0, c.SinchRateBurst)
	require.Equal(t, map[string]float64{"bulk": 20, "normal": 25.5}, c.QueueRateLimits)
	require.Equal(t, 0.5, c.SenderRateLimit)
}

func TestLoadAPIMissingKey(t *testing.T) {
	env(t)

	_, err := config.LoadAPI()
	require.EqualError(t, err, "INTERNAL_API_KEY: required but not set")
}

func TestLoadWorkerMissingRequired(t *testing.T) {
	for _, name := range []string{"SINCH_SERVICE_PLAN_ID", "SINCH_API_TOKEN"} {
		t.Run(name, func(t *testing.T) {
			env(t, workerEnv...)
			unset(t, name)

			_, err := config.LoadWorker()
			require.EqualError(t, err, name+": required but not set")
		})
	}
}

// TestLoadEmptyKeyList: INTERNAL_API_KEY present but empty, as
// "INTERNAL_API_KEY=" in an .env file leaves it, is as good as missing. An
// API loaded from it has no key at all: it starts, then answers 401 to
// every request.
func TestLoadEmptyKeyList(t *testing.T) {
	for name, value := range map[string]string{"empty": "", "blank": "  "} {
		t.Run(name, func(t *testing.T) {
			env(t, "INTERNAL_API_KEY", value)

			c, err := config.LoadAPI()
			require.Error(t, err, "accepted with %d keys", len(c.APIKeys))
			require.ErrorContains(t, err, "INTERNAL_API_KEY")
		})
	}
}

func TestLoadBadValueNamesVariable(t *testing.T) {
	tests := []struct{ name, value string }{
		{"REDIS_TIMEOUT", "2 seconds"},
		{"JOB_RETENTION", "7d"},
		{"SHUTDOWN_TIMEOUT", "soon"},
		{"SINCH_TIMEOUT", "15"},
		{"RETRY_BASE_DELAY", "x"},
		{"WORKER_POLL_INTERVAL", "1ss"},
		{"MAX_ATTEMPTS", "ten"},
		{"WORKER_CONCURRENCY", "1.5"},
		{"MEDIA_CHECK", "maybe"},
		{"MEDIA_MAX_BYTES", "5MB"},
		{"MEDIA_CHECK_TIMEOUT", "5"},
		{"MEDIA_CHECK_TTL", "ten minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env(t, workerEnv...)
			t.Setenv(tt.name, tt.value)

			_, err := config.LoadWorker()
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.name+": "), "error %q leads with the variable", err)
			require.Contains(t, err.Error(), fmt.Sprintf("%q", tt.value))
		})
	}

	t.Run("API PORT", func(t *testing.T) {
		env(t, apiEnv...)
		t.Setenv("PORT", "http")

		_, err := config.LoadAPI()
		require.ErrorContains(t, err, "PORT: ")
	})
}

func TestLoadSeveralKeys(t *testing.T) {
	tests := []struct {
		name, value string
		want        []config.Secret
	}{
		{"one", keyA, []config.Secret{keyA}},
		{"two", keyA + "," + keyB, []config.Secret{keyA, keyB}},
		{"three", keyA + "," + keyB + "," + keyA + "-c", []config.Secret{keyA, keyB, keyA + "-c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env(t, "INTERNAL_API_KEY", tt.value)

			c, err := config.LoadAPI()
			require.NoError(t, err)
			require.Equal(t, tt.want, c.APIKeys)
		})
	}

	t.Run("a short second key is refused", func(t *testing.T) {
		env(t, "INTERNAL_API_KEY", keyA+",short")

		_, err := config.LoadAPI()
		require.EqualError(t, err, "INTERNAL_API_KEY: key 2 is shorter than 16 characters")
	})
	t.Run("an empty item is refused", func(t *testing.T) {
		env(t, "INTERNAL_API_KEY", keyA+",")

		_, err := config.LoadAPI()
		require.ErrorContains(t, err, "INTERNAL_API_KEY: key 2")
	})
}

// TestValidateNamesVariable breaks one rule at a time, starting from a valid
// environment, and expects an error that names the variable to fix.
func TestValidateNamesVariable(t *testing.T) {
	tests := []struct {
		process  string // "api" or "worker"
		name     string // the variable the error must name
		kv       []string
		mentions string // another variable the message must name, if any
	}{
		{"api", "REDIS_URL", []string{"REDIS_URL", "http://127.0.0.1:6379"}, ""},
		{"api", "REDIS_URL", []string{"REDIS_URL", "redis://%zz"}, ""},
		{"api", "LOG_LEVEL", []string{"LOG_LEVEL", "verbose"}, ""},
		{"api", "REDIS_TIMEOUT", []string{"REDIS_TIMEOUT", "0s"}, ""},
		{"api", "JOB_RETENTION", []string{"JOB_RETENTION", "59m"}, ""},
		{"api", "MAX_ATTEMPTS", []string{"MAX_ATTEMPTS", "0"}, ""},
		{"api", "MAX_ATTEMPTS", []string{"MAX_ATTEMPTS", "101"}, ""},
		{"api", "PORT", []string{"PORT", "0"}, ""},
		{"api", "PORT", []string{"PORT", "65536"}, ""},
		{"api", "INTERNAL_API_KEY", []string{"INTERNAL_API_KEY", "too-short"}, ""},
		{"api", "INTERNAL_API_KEY", []string{"INTERNAL_API_KEY", "      padded-to-16     "}, ""},
		{"api", "MAX_BODY_BYTES", []string{"MAX_BODY_BYTES", "1023"}, ""},
		{"api", "BULK_MAX_BODY_BYTES", []string{"BULK_MAX_BODY_BYTES", "-1"}, ""},
		{"api", "BULK_MAX_BODY_BYTES", []string{"BULK_MAX_BODY_BYTES", "268435457"}, ""},
		{"api", "BULK_MAX_BODY_BYTES", []string{"BULK_MAX_BODY_BYTES", "65536", "MAX_BODY_BYTES", "65537"},
			"MAX_BODY_BYTES"},
		{"api", "API_RATE_LIMIT", []string{"API_RATE_LIMIT", "-1"}, ""},
		{"api", "API_RATE_BURST", []string{"API_RATE_BURST", "-1"}, ""},
		{"api", "OPS_PASSWORD", []string{"OPS_USERNAME", "operator"}, "OPS_USERNAME"},
		{"api", "OPS_PASSWORD", []string{"OPS_PASSWORD", "ops-password-123"}, "OPS_USERNAME"},
		{"api", "OPS_PASSWORD", []string{"OPS_USERNAME", "operator", "OPS_PASSWORD", "short-pass"}, ""},
		{"api", "DEFAULT_REGION", []string{"DEFAULT_REGION", "USA"}, ""},
		{"api", "CAMPAIGN_BATCH_SIZE", []string{"CAMPAIGN_BATCH_SIZE", "0"}, ""},
		{"api", "CAMPAIGN_BATCH_SIZE", []string{"CAMPAIGN_BATCH_SIZE", "1001"}, ""},
		{"api", "DEFAULT_REGION", []string{"DEFAULT_REGION", "ZZ"}, ""},
		{"api", "SINCH_MMS_NUMBER", []string{"SINCH_MMS_NUMBER", "garbage"}, ""},
		{"api", "SHUTDOWN_TIMEOUT", []string{"SHUTDOWN_TIMEOUT", "-1s"}, ""},
		{"api", "REDIS_URL", []string{"REDIS_URL", "redis://127.0.0.1:99999/0"}, ""},
		{"api", "REDIS_TIMEOUT", []string{"REDIS_TIMEOUT", "1ns"}, ""},
		{"worker", "SINCH_API_BASE_URL", []string{"SINCH_API_BASE_URL", "http://127.0.0.1:9090/x?y=1"}, ""},
		{"worker", "SINCH_API_TOKEN", []string{"SINCH_API_TOKEN", "  "}, ""},
		{"worker", "REDIS_URL", []string{"REDIS_URL", "tcp://127.0.0.1:6379"}, ""},
		{"worker", "SINCH_API_BASE_URL", []string{"SINCH_API_BASE_URL", "ftp://sinch.example"}, ""},
		{"worker", "SINCH_API_BASE_URL", []string{"SINCH_API_BASE_URL", "https://"}, ""},
		{"worker", "SINCH_SERVICE_PLAN_ID", []string{"SINCH_SERVICE_PLAN_ID", "plan/../x"}, ""},
		{"worker", "WORKER_CONCURRENCY", []string{"WORKER_CONCURRENCY", "0"}, ""},
		{"worker", "WORKER_CONCURRENCY", []string{"WORKER_CONCURRENCY", "1001"}, ""},
		{"worker", "SINCH_TIMEOUT", []string{"SINCH_TIMEOUT", "0s"}, ""},
		{"worker", "SHUTDOWN_TIMEOUT", []string{"SHUTDOWN_TIMEOUT", "15s"}, "SINCH_TIMEOUT"},
		{"worker", "RETRY_BASE_DELAY", []string{"RETRY_BASE_DELAY", "0s"}, ""},
		{"worker", "RETRY_MAX_DELAY", []string{"RETRY_MAX_DELAY", "5s"}, "RETRY_BASE_DELAY"},
		{"worker", "AUTH_RETRY_DELAY", []string{"AUTH_RETRY_DELAY", "0s"}, ""},
		{"worker", "WORKER_POLL_INTERVAL", []string{"WORKER_POLL_INTERVAL", "-1s"}, ""},
		{"worker", "SINCH_RATE_LIMIT", []string{"SINCH_RATE_LIMIT", "-5"}, ""},
		{"worker", "SINCH_RATE_LIMIT", []string{"SINCH_RATE_LIMIT", "NaN"}, ""},
		{"worker", "SINCH_RATE_BURST", []string{"SINCH_RATE_BURST", "-1"}, ""},
		{"worker", "SINCH_RATE_LIMIT", []string{"SINCH_RATE_LIMIT", "1e-300"}, ""},
		{"worker", "QUEUE_RATE_LIMITS", []string{"QUEUE_RATE_LIMITS", "bulk:1e-9"}, ""},
		{"worker", "SENDER_RATE_LIMIT", []string{"SENDER_RATE_LIMIT", "+Inf"}, ""},
		{"worker", "QUEUE_RATE_LIMITS", []string{"QUEUE_RATE_LIMITS", "marketing:10"}, ""},
		{"worker", "QUEUE_RATE_LIMITS", []string{"QUEUE_RATE_LIMITS", "bulk:0"}, ""},
		{"worker", "QUEUE_RATE_LIMITS", []string{"QUEUE_RATE_LIMITS", "bulk:1,bulk:2"}, ""},
		{"worker", "QUEUE_RATE_LIMITS", []string{"QUEUE_RATE_LIMITS", "bulk:fast"}, ""},
		{"worker", "RATE_WAIT_MAX", []string{"RATE_WAIT_MAX", "2m"}, ""},
		{"api", "MEDIA_MAX_BYTES", []string{"MEDIA_MAX_BYTES", "1023"}, ""},
		{"worker", "MEDIA_MAX_BYTES", []string{"MEDIA_MAX_BYTES", "1073741825"}, ""},
		{"api", "MEDIA_WARN_BYTES", []string{"MEDIA_WARN_BYTES", "0"}, ""},
		{"worker", "MEDIA_WARN_BYTES", []string{"MEDIA_WARN_BYTES", "2000001", "MEDIA_MAX_BYTES", "2000000"},
			"MEDIA_MAX_BYTES"},
		{"worker", "MEDIA_CHECK_TIMEOUT", []string{"MEDIA_CHECK_TIMEOUT", "99ms"}, ""},
		{"api", "MEDIA_CHECK_TIMEOUT", []string{"MEDIA_CHECK_TIMEOUT", "2m"}, ""},
		{"api", "MEDIA_CHECK_TTL", []string{"MEDIA_CHECK_TTL", "500ms"}, ""},
		{"worker", "MEDIA_CHECK_TTL", []string{"MEDIA_CHECK_TTL", "25h"}, ""},
		{"worker", "MEDIA_CHECK_TTL", []string{"MEDIA_CHECK_TTL", "-1m"}, ""},
		{"api", "MEDIA_ALLOWED_HOSTS", []string{"MEDIA_ALLOWED_HOSTS", "127.0.0.1,nonsense"}, ""},
		{"worker", "MEDIA_ALLOWED_HOSTS", []string{"MEDIA_ALLOWED_HOSTS", "0.0.0.0/0"}, ""},
		{"api", "MEDIA_ALLOWED_HOSTS", []string{"MEDIA_ALLOWED_HOSTS", "media.internal:99999"}, ""},
		{"api", "CLIENT_CALLBACK_SECRET", []string{"CLIENT_CALLBACK_SECRET", "too-short"}, ""},
		{"worker", "CLIENT_CALLBACK_SECRET", []string{"CLIENT_CALLBACK_SECRET", "                "}, ""},
		{"api", "CLIENT_CALLBACK_ALLOWED_HOSTS", []string{"CLIENT_CALLBACK_ALLOWED_HOSTS", "::/0"}, ""},
		{"worker", "CLIENT_CALLBACK_ALLOWED_HOSTS", []string{"CLIENT_CALLBACK_ALLOWED_HOSTS", "hooks"}, ""},
		{"api", "CLIENT_CALLBACK_MAX_ATTEMPTS", []string{"CLIENT_CALLBACK_MAX_ATTEMPTS", "0"}, ""},
		{"worker", "CLIENT_CALLBACK_MAX_ATTEMPTS", []string{"CLIENT_CALLBACK_MAX_ATTEMPTS", "101"}, ""},
		{"worker", "CLIENT_CALLBACK_CONCURRENCY", []string{"CLIENT_CALLBACK_CONCURRENCY", "0"}, ""},
		{"worker", "CLIENT_CALLBACK_TIMEOUT", []string{"CLIENT_CALLBACK_TIMEOUT", "90s"}, ""},
		{"worker", "CLIENT_CALLBACK_RETRY_BASE", []string{"CLIENT_CALLBACK_RETRY_BASE", "0s"},
			"CLIENT_CALLBACK_RETRY_MAX"},
		{"worker", "CLIENT_CALLBACK_RETRY_MAX", []string{"CLIENT_CALLBACK_RETRY_MAX", "1s"},
			"CLIENT_CALLBACK_RETRY_BASE"},
	}
	for _, tt := range tests {
		t.Run(tt.process+" "+strings.Join(tt.kv, "="), func(t *testing.T) {
			var err error
			if tt.process == "api" {
				env(t, append(append([]string{}, apiEnv...), tt.kv...)...)
				_, err = config.LoadAPI()
			} else {
				env(t, append(append([]string{}, workerEnv...), tt.kv...)...)
				_, err = config.LoadWorker()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.name, "the error names the variable")
			if tt.mentions != "" {
				require.Contains(t, err.Error(), tt.mentions)
			}
			require.NotContains(t, err.Error(), token)
			require.NotContains(t, err.Error(), "ops-password-123")
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()

	const value = "hunter2-very-secret-value"
	s := config.Secret(value)
	require.Equal(t, value, s.Value(), "Value is the one way to the credential")

	holder := struct {
		Name  string
		Token config.Secret
		Keys  []config.Secret
		Ptr   *config.Secret
	}{"svc", s, []config.Secret{s, s}, &s}
	api := config.API{APIKeys: []config.Secret{s}, OpsPassword: s}
	worker := config.Worker{SinchToken: s}

	js, err := json.Marshal(holder)
	require.NoError(t, err)
	apiJS, err := json.Marshal(api)
	require.NoError(t, err)
	workerJS, err := json.Marshal(worker)
	require.NoError(t, err)

	outputs := map[string]string{
		"String":            s.String(),
		"%v":                fmt.Sprintf("%v", s),
		"%s":                fmt.Sprintf("%s", s), //lint:ignore S1025 what %s prints is the point
		"%q":                fmt.Sprintf("%q", s),
		"%+v":               fmt.Sprintf("%+v", s),
		"%v of a struct":    fmt.Sprintf("%v", holder),
		"%+v of a struct":   fmt.Sprintf("%+v", holder),
		"%s of a struct":    fmt.Sprintf("%s", holder),
		"%v of config.API":  fmt.Sprintf("%+v", api),
		"%v of config.Wkr":  fmt.Sprintf("%+v", worker),
		"json of a struct":  string(js),
		"json of API":       string(apiJS),
		"json of Worker":    string(workerJS),
		"Sprint":            fmt.Sprint(s),
		"Sprint of a slice": fmt.Sprint([]config.Secret{s}),
	}
	for name, out := range outputs {
		require.NotContains(t, out, value, name)
		require.Contains(t, out, "[redacted]", name)
	}
	require.Equal(t, "[redacted]", s.String())
	require.Contains(t, string(js), `"Token":"[redacted]"`)
}

func TestLoadMediaDefaults(t *testing.T) {
	env(t, append(append([]string{}, apiEnv...), workerEnv...)...)

	a, err := config.LoadAPI()
	require.NoError(t, err)
	w, err := config.LoadWorker()
	require.NoError(t, err)
	require.True(t, w.MediaCheck, "media checks are on unless turned off")
	for _, c := range []config.Common{a.Common, w.Common} {
		require.EqualValues(t, 5<<20, c.MediaMaxBytes)
		require.EqualValues(t, 1_000_000, c.MediaWarnBytes)
		require.Equal(t, 5*time.Second, c.MediaCheckTimeout)
		require.Equal(t, 10*time.Minute, c.MediaCheckTTL)
		require.Empty(t, c.MediaAllowedHosts)

		m, err := c.Media()
		require.NoError(t, err)
		require.EqualValues(t, 5<<20, m.MaxBytes)
		require.EqualValues(t, 1_000_000, m.WarnBytes)
		require.Equal(t, 5*time.Second, m.Timeout)
		require.Equal(t, 10*time.Minute, m.CacheTTL)
		require.True(t, m.Allow.Empty(), "production allows no private address")
		require.Nil(t, m.Cache)
	}
}

func TestLoadCallbackSettings(t *testing.T) {
	env(t, append(append([]string{}, apiEnv...), workerEnv...)...)
	w, err := config.LoadWorker()
	require.NoError(t, err)
	require.Empty(t, w.ClientCallbackSecret.Value(), "callbacks are off unless a secret is set")
	require.Equal(t, 12, w.ClientCallbackMaxAttempts)
	require.Equal(t, 10, w.ClientCallbackConcurrency)
	require.Equal(t, 10*time.Second, w.ClientCallbackTimeout)
	require.Equal(t, 10*time.Second, w.ClientCallbackRetryBase)
	require.Equal(t, time.Hour, w.ClientCallbackRetryMax)
	allow, err := w.CallbackAllow()
	require.NoError(t, err)
	require.True(t, allow.Empty())

	env(t, append(append([]string{}, apiEnv...), "CLIENT_CALLBACK_SECRET", "hooks-secret-0123456789",
		"CLIENT_CALLBACK_ALLOWED_HOSTS", "10.1.0.0/16,hooks.internal:8443", "CLIENT_CALLBACK_MAX_ATTEMPTS", "3")...)
	a, err := config.LoadAPI()
	require.NoError(t, err)
	require.Equal(t, "hooks-secret-0123456789", a.ClientCallbackSecret.Value())
	require.Equal(t, 3, a.ClientCallbackMaxAttempts)
	allow, err = a.CallbackAllow()
	require.NoError(t, err)
	require.True(t, allow.Allows("10.1.2.3", 80))
	require.True(t, allow.Allows("hooks.internal", 8443))
	require.False(t, allow.Allows("hooks.internal", 443))
}

func TestLoadMediaSettings(t *testing.T) {
	env(t, append(append([]string{}, workerEnv...),
		"MEDIA_CHECK", "false", "MEDIA_MAX_BYTES", "2000000", "MEDIA_WARN_BYTES", "2000000",
		"MEDIA_CHECK_TIMEOUT", "750ms", "MEDIA_CHECK_TTL", "0",
		"MEDIA_ALLOWED_HOSTS", "127.0.0.1, 10.20.0.0/16,[::1]:9000,media.internal:8080")...)

	w, err := config.LoadWorker()
	require.NoError(t, err)
	require.False(t, w.MediaCheck)
	require.EqualValues(t, 2_000_000, w.MediaMaxBytes)
	require.EqualValues(t, 2_000_000, w.MediaWarnBytes)
	require.Equal(t, 750*time.Millisecond, w.MediaCheckTimeout)
	require.Zero(t, w.MediaCheckTTL, "0 turns the cache off")
	require.Equal(t, []string{"127.0.0.1", " 10.20.0.0/16", "[::1]:9000", "media.internal:8080"},
		w.MediaAllowedHosts)
	m, err := w.Media()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1,10.20.0.0/16,[::1]:9000,media.internal:8080", m.Allow.String())
}
