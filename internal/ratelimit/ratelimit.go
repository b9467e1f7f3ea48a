// Package ratelimit holds the send rate limits that every worker process
// shares through Redis, counted in recipients per second.
//
// Sinch meters each service plan in messages per second, one per recipient,
// and keeps what comes faster in a FIFO queue of its own where it waits and
// may expire. A limiter here models that queue: each limit keeps, in one
// Redis key, the time its backlog will have drained (the "theoretical
// arrival time" of the generic cell rate algorithm). Taking n recipients
// pushes that time n intervals further; a take that would leave more than
// the burst waiting is refused with the wait after which it would succeed.
//
// The API's per-key request limit uses go-redis/redis_rate, which checks one
// key per call. A send must pass several limits at once (the plan, its
// queue, its sender, its campaign) and take from all or none of them, a
// batch may hold more recipients than the burst, and high-priority jobs may
// queue briefly where others may not; so the check is one Lua script here.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is one rate, in recipients per second, with a burst: how many
// recipients may go at once after a quiet spell. A zero Burst means one
// second's worth.
type Limit struct {
	Key   string
	Rate  float64
	Burst float64
}

// On reports whether the limit limits anything.
func (l Limit) On() bool { return l.Rate > 0 }

// keyPrefix puts every limit in one hash slot, as the script needs on Redis
// Cluster.
const keyPrefix = "{mmsgate:rate}:"

// Plan, Queue, Sender and Campaign name the limits a send passes.
func Plan(rate, burst float64) Limit { return Limit{Key: "plan", Rate: rate, Burst: burst} }

// Queue is the limit of one asynq queue.
func Queue(queue string, rate, burst float64) Limit {
	return Limit{Key: "queue:" + queue, Rate: rate, Burst: burst}
}

// Sender is the limit of one sender number, which carriers meter too.
func Sender(from string, rate, burst float64) Limit {
	return Limit{Key: "sender:" + from, Rate: rate, Burst: burst}
}

// Campaign is a campaign's own rate cap.
func Campaign(id string, rate float64) Limit {
	return Limit{Key: "campaign:" + id, Rate: rate}
}

// Limiter takes from limits kept in Redis.
type Limiter struct {
	rdb redis.UniversalClient
}

// New returns a limiter on rdb.
func New(rdb redis.UniversalClient) *Limiter { return &Limiter{rdb: rdb} }

// Result is the answer to Take.
type Result struct {
	// OK says the recipients were taken from every limit. If Wait is above
	// zero the caller must wait that long before sending: it queued behind
	// others within its lookahead.
	OK bool
	// Wait is, when OK, how long to hold before sending; otherwise how long
	// until the same take could succeed. Nothing was taken then.
	Wait time.Duration
	// Blocker is, when not OK, the key of the limit that set the wait.
	Blocker string
}

// Take takes n recipients from every limit that is on, or from none. A take
// may queue up to lookahead behind others: it succeeds, and Result.Wait says
// how long to hold. With no lookahead it succeeds only when every limit has
// room now. Limits that are off are skipped; with none on, Take succeeds at
// once without calling Redis.
func (l *Limiter) Take(ctx context.Context, n int, lookahead time.Duration, limits ...Limit) (Result, error) {
	keys := make([]string, 0, len(limits))
	names := make([]string, 0, len(limits))
	args := make([]any, 0, 2+2*len(limits))
	args = append(args, n, lookahead.Microseconds())
	for _, lim := range limits {
		if !lim.On() {
			continue
		}
		interval := 1e6 / lim.Rate // microseconds per recipient
		burst := lim.Burst
		if burst <= 0 {
			burst = max(1, lim.Rate)
		}
		keys = append(keys, keyPrefix+lim.Key)
		names = append(names, lim.Key)
		args = append(args, math.Round(interval*1000)/1000, math.Round(burst*interval))
	}
	if len(keys) == 0 || n <= 0 {
		return Result{OK: true}, nil
	}
	res, err := takeScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	r := Result{OK: res[0] == 1, Wait: time.Duration(res[1]) * time.Microsecond}
	if !r.OK && res[2] >= 1 && int(res[2]) <= len(names) {
		r.Blocker = names[res[2]-1]
	}
	return r, nil
}

// takeScript: KEYS are the limits; ARGV[1] recipients, ARGV[2] lookahead in
// µs, then per key its interval (µs per recipient) and its burst (µs).
// Returns {1, hold µs, 0} or {0, wait µs, position of the limit that set it}.
//
// A limit's key holds the time, in µs, at which its backlog drains. A take
// of n that finds the backlog at tat ends it at tat + n*interval. What may
// wait at once is the burst, or n itself for a batch bigger than the burst
// (which then goes only once the backlog has drained): the excess "over"
// that must drain first is new_tat - now - max(burst, n*interval). A take
// whose excess is within the lookahead succeeds and holds for the excess.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local ahead = tonumber(ARGV[2])
local hold, retry, blocker = 0, 0, 0
local ends = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[1 + 2*i])
  local burst = tonumber(ARGV[2 + 2*i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local cost = n * interval
  -- over = tat + cost - now - max(burst, cost), computed so that no
  -- microsecond count since 1970 is added to a fraction: at that size a
  -- double loses the fraction, and a batch bigger than the burst would
  -- find a sliver over its due time on every try, for ever.
  local over = tat - now
  if cost < burst then over = over - (burst - cost) end
  if over < 1 then over = math.min(over, 0) end
  if over > ahead then
    if over - ahead > retry then
      retry = over - ahead
      blocker = i
    end
  elseif over > hold then
    hold = over
  end
  ends[i] = tat + cost
end
if retry > 0 then return {0, math.ceil(retry), blocker} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', ends[i]), 'PX', math.ceil((ends[i] - now) / 1000) + 1000)
end
return {1, math.ceil(hold), 0}
`)
