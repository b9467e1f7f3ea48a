package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()

	b := Backoff{Base: time.Second, Max: time.Minute}
	chosen := &retryError{delay: 42 * time.Second, counted: true, err: errors.New("sinch: status 503")}

	tests := []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{"handler's choice", 0, chosen, 42 * time.Second, 42 * time.Second},
		{"handler's choice, wrapped", 5, fmt.Errorf("job x: %w", chosen), 42 * time.Second, 42 * time.Second},
		{"zero is a choice too", 5, &retryError{err: errors.New("x")}, 0, 0},
		// asynq's n counts retries so far, so the first failure is n=0 and
		// gets the backoff for failed attempt 1.
		{"other error, first failure", 0, errors.New("redis: connection refused"), b.Base / 2, b.Base},
		{"other error, third failure", 2, errors.New("panic"), 2 * b.Base, 4 * b.Base},
		{"other error, many failures", 1000, errors.New("panic"), b.Max / 2, b.Max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			d := retryDelay(b)(tt.n, tt.err, asynq.NewTask("mms:send", nil))
			require.GreaterOrEqual(t, d, tt.min)
			require.LessOrEqual(t, d, tt.max)
		})
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()

	wait := &retryError{delay: time.Second, counted: false, err: errors.New("sinch: status 429")}
	retry := &retryError{delay: time.Second, counted: true, err: errors.New("sinch: status 503")}

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"counted retry", retry, true},
		{"wait", wait, false},
		{"wait, wrapped", fmt.Errorf("job x: %w", wait), false},
		{"plain error", errors.New("boom"), true},
		{"skip retry", fmt.Errorf("bad: %w", asynq.SkipRetry), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, isFailure(tt.err))
		})
	}
}

func TestRetryErrorKeepsCause(t *testing.T) {
	t.Parallel()

	cause := errors.New("sinch: status 503")
	err := &retryError{delay: time.Second, counted: true, err: cause}
	require.ErrorIs(t, err, cause)
	require.Equal(t, cause.Error(), err.Error())
}
