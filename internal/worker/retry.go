package worker

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Backoff computes retry delays: exponential from Base, capped at Max, with
// jitter so that jobs that failed together do not retry together.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait before the attempt that follows failed attempt n
// (1 for the first). The result lies between half and all of the capped
// exponential value.
func (b Backoff) Delay(n int) time.Duration {
	// Double step by step, stopping at the cap, so that no shift can
	// overflow into a small number.
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryError asks asynq to run the task again after a delay we chose. A
// counted retry is a failure of the message; an uncounted one is a wait
// (rate limit, our credentials) that must not spend the message's budget
// or mark the task as failed.
type retryError struct {
	delay   time.Duration
	counted bool
	err     error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retryDelay is asynq's RetryDelayFunc: the delay the handler chose, or the
// backoff for errors that did not come through the handler's own paths
// (a panic, a Redis error).
func retryDelay(b Backoff) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var re *retryError
		if errors.As(err, &re) {
			return re.delay
		}
		return b.Delay(n + 1)
	}
}

// isFailure is asynq's IsFailure: waits are not failures, so asynq does not
// count them as retries either.
func isFailure(err error) bool {
	var re *retryError
	if errors.As(err, &re) {
		return re.counted
	}
	return true
}
