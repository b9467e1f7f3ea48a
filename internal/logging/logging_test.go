package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/logging"
)

func TestMaskNumbers(t *testing.T) {
	t.Parallel()

	tests := []struct{ name, in, want string }{
		{"e164", "to +12025550123 refused", "to ***23 refused"},
		{"national with brackets", "number (202) 555-0123 is invalid", "number (***23 is invalid"},
		{"international with brackets", "number +1 (202) 555-0123 is invalid", "number ***23 is invalid"},
		{"dots", "call 202.555.0123.", "call ***23."},
		{"dashes", "415-555-2671", "***71"},
		{"spaces", "+44 20 7946 0958", "***58"},
		{"bare digits", "12025550123", "***23"},
		{"json array", `"to":["+12025550123","+14155552671"]`, `"to":["***23","***71"]`},
		{"comma separated", "+12025550123, +14155552671", "***23, ***71"},
		{"quoted in sinch text", `Invalid recipient: '+46701234567'`, `Invalid recipient: '***67'`},
		{"key value", "msisdn=46701234567&x=1", "msisdn=***67&x=1"},
		{"six digits", "code 123456", "code ***56"},

		{"short number", "short code 12345", "short code 12345"},
		{"status and counts", "sinch: status 503 after 3 attempts", "sinch: status 503 after 3 attempts"},
		{"duration", "timeout after 15000ms", "timeout after 15000ms"},
		{"job id", "job 01jp7x3k2m9q4v8n5r6t0w1y2z", "job 01jp7x3k2m9q4v8n5r6t0w1y2z"},
		{"batch id", "batch 01HF4WG1TAVS351YYD7Q84K8HA", "batch 01HF4WG1TAVS351YYD7Q84K8HA"},
		// MaskNumbers' own rule is six or more digits: runs with fewer are
		// not phone numbers, whatever separators they carry. These are lines
		// go-redis and asynq write.
		{"loopback address", "dial tcp 127.0.0.1:6379: connection refused",
			"dial tcp 127.0.0.1:6379: connection refused"},
		{"version", "redis_version:7.0.15", "redis_version:7.0.15"},
		{"sinch code", "syntax_invalid_parameter_format", "syntax_invalid_parameter_format"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, logging.MaskNumbers(tt.in))
		})
	}
}

func TestMaskNumber(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{"+12025550123", "***23"},
		{"+1 (202) 555-0123", "***23"},
		{"12", "**"},
		{"7", "**"},
		{"", "**"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, logging.MaskNumber(tt.in))
		})
	}
}

// TestRedisLoggerMasks: go-redis's own lines can quote a command's
// arguments, so they go through MaskNumbers.
func TestRedisLoggerMasks(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	l := logging.Redis{L: zerolog.New(&buf)}
	l.Printf(t.Context(), "dial %s: %v", "redis:6379", errors.New("cannot reach +12025550123"))

	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, "warn", line["level"])
	require.Equal(t, "go-redis", line["component"])
	require.Equal(t, "dial redis:6379: cannot reach ***23", line["message"])
}
