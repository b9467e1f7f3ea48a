package worker_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/worker"
)

// capped is min(base*2^(n-1), max) without overflow.
func capped(base, max time.Duration, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n-1 >= 63 || base > max>>(n-1) {
		return max
	}
	return min(base<<(n-1), max)
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		base, max time.Duration
	}{
		{"defaults", 10 * time.Second, 30 * time.Minute},
		{"test settings", 50 * time.Millisecond, 200 * time.Millisecond},
		{"millisecond base", time.Millisecond, time.Hour},
		{"base equals max", time.Minute, time.Minute},
		{"base above max", time.Hour, time.Minute},
		{"long waits", time.Hour, 24 * time.Hour},
		{"very long max", time.Second, 10000 * time.Hour},
		// Base<<(n-1) wraps around int64 for larger n and can land on a
		// positive value below Max, which the cap check then takes for a
		// real delay: 2m17.439s<<27 is about 1h44m after wrapping, not 6h.
		{"wraps to a small value", 2*time.Minute + 17439*time.Millisecond, 6 * time.Hour},
		{"wraps to a small value, whole seconds", time.Hour + 33*time.Minute + 55*time.Second, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := worker.Backoff{Base: tt.base, Max: tt.max}
			for n := 1; n <= 40; n++ {
				want := capped(tt.base, tt.max, n)
				for range 20 {
					d := b.Delay(n)
					require.LessOrEqual(t, d, tt.max, "n=%d: above Max", n)
					require.GreaterOrEqual(t, d, want/2, "n=%d: below half of %s", n, want)
					require.LessOrEqual(t, d, want, "n=%d: above %s", n, want)
				}
			}
		})
	}
}

func TestBackoffDelayBelowOne(t *testing.T) {
	t.Parallel()

	b := worker.Backoff{Base: time.Second, Max: time.Minute}
	for _, n := range []int{0, -1, math.MinInt} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			for range 20 {
				d := b.Delay(n)
				require.GreaterOrEqual(t, d, b.Base/2)
				require.LessOrEqual(t, d, b.Base)
			}
		})
	}
}

// TestBackoffDelaySpreads checks the jitter: jobs that failed together must
// not all come back at the same instant.
func TestBackoffDelaySpreads(t *testing.T) {
	t.Parallel()

	b := worker.Backoff{Base: 10 * time.Second, Max: 30 * time.Minute}
	seen := make(map[time.Duration]bool)
	for range 100 {
		seen[b.Delay(3)] = true
	}
	// 100 draws from five billion values: two equal ones are already a
	// one-in-a-million event, so this cannot flake.
	require.Greater(t, len(seen), 90)
}
