package worker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// CircuitKey is where an open circuit is announced, for /readyz.
const CircuitKey = "mmsgate:circuit:{sinch}"

// Circuit stops a worker from calling Sinch after a run of provider
// failures (5xx, timeouts, 401), so that an outage does not burn every
// message's attempts. While it is open, tasks wait without spending
// attempts, and Sinch is probed now and then; the first good probe closes
// it. Each worker process has its own; an open one is announced in Redis.
type Circuit struct {
	threshold  int
	probeEvery time.Duration
	probe      func(context.Context) error
	rdb        redis.UniversalClient
	log        zerolog.Logger
	// OnChange, if set, hears every opening and closing (for metrics).
	OnChange func(open bool)

	opened chan struct{} // wakes Run when the circuit opens

	mu       sync.Mutex
	failures int       // provider failures in a row
	openedAt time.Time // zero while closed
}

// NewCircuit returns a closed circuit that opens after threshold provider
// failures in a row and then probes every probeEvery.
func NewCircuit(threshold int, probeEvery time.Duration, probe func(context.Context) error,
	rdb redis.UniversalClient, log zerolog.Logger) *Circuit {
	return &Circuit{threshold: threshold, probeEvery: probeEvery, probe: probe, rdb: rdb,
		log: log.With().Str("component", "circuit").Logger(), opened: make(chan struct{}, 1)}
}

// Open reports whether calls to Sinch are on hold.
func (c *Circuit) Open() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.openedAt.IsZero()
}

// Success records an answer showing Sinch is up.
func (c *Circuit) Success() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.openedAt.IsZero() {
		c.failures = 0
	}
}

// Failure records a provider failure and reports whether the circuit is
// open now, in which case the failure is Sinch's, not the message's.
func (c *Circuit) Failure() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	if c.openedAt.IsZero() && c.failures >= c.threshold {
		c.openedAt = time.Now()
		c.log.Error().Int("failures", c.failures).Dur("probe_every_ms", c.probeEvery).
			Msg("sinch failing: sending paused, probing until it answers")
		if c.OnChange != nil {
			c.OnChange(true)
		}
		select {
		case c.opened <- struct{}{}:
		default:
		}
	}
	return !c.openedAt.IsZero()
}

// Wait is how long a task waits while the circuit is open.
func (c *Circuit) Wait() time.Duration { return c.probeEvery }

// Run probes Sinch while the circuit is open and closes it on the first
// answer, until ctx ends.
func (c *Circuit) Run(ctx context.Context) {
	t := time.NewTicker(c.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.opened:
			c.announce(ctx) // at once; the first probe waits for the tick
			continue
		case <-t.C:
		}
		if !c.Open() {
			continue
		}
		c.announce(ctx)

		pctx, cancel := context.WithTimeout(ctx, c.probeEvery)
		err := c.probe(pctx)
		cancel()
		if err != nil {
			c.log.Warn().Err(err).Msg("sinch probe failed; sending stays paused")
			continue
		}
		// Half open: a read answering does not prove that sends will. One
		// more provider failure reopens the circuit at once, and does not
		// count against the message; one success closes it for good.
		c.mu.Lock()
		since := c.openedAt
		c.openedAt, c.failures = time.Time{}, c.threshold-1
		c.mu.Unlock()
		c.rdb.Del(ctx, CircuitKey)
		if c.OnChange != nil {
			c.OnChange(false)
		}
		c.log.Info().Dur("paused_ms", time.Since(since)).Msg("sinch answers again: sending resumed")
	}
}

// announce records the open circuit in Redis for a while longer than one
// probe, so that it disappears by itself if this worker goes away.
func (c *Circuit) announce(ctx context.Context) {
	c.mu.Lock()
	since := c.openedAt
	c.mu.Unlock()
	c.rdb.Set(ctx, CircuitKey, strconv.FormatInt(since.UnixMilli(), 10), 3*c.probeEvery)
}
