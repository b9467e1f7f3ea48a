package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// Delivery reports. Each job keeps one more hash, next to its record and on
// the same slot: recipient (E.164) -> "<status> <code> <at ms>", the latest
// report for each. The job record counts its recipients with a report
// ("drn"), with a final one ("drf") and those delivered ("drd"); once every recipient has one, the job
// moves to delivered, partially_delivered or failed.
//
// Sinch may send a report before the worker has stored the batch ID, twice,
// out of order, or for a batch it names only by its ID. Reports carry the
// job ID as client_reference, which matches them at once; one without it is
// matched by batch ID, through an index the worker writes when it records
// the batch, and waits in a pending list until then.

// Report is one recipient's delivery report.
type Report struct {
	Recipient string // E.164
	Status    string // Sinch's status: Delivered, Failed, Dispatched...
	Code      int
	At        time.Time
}

// Final reports whether Sinch will send nothing more for this recipient.
func (r Report) Final() bool {
	switch r.Status {
	case "Queued", "Dispatched":
		return false
	}
	return true
}

// Delivered reports whether the message reached the handset.
func (r Report) Delivered() bool { return r.Status == "Delivered" }

func drKey(id string) string          { return key(id) + ":dr" }
func batchIndexKey(bid string) string { return "mmsgate:batch:{" + bid + "}" }
func pendingKey(bid string) string    { return batchIndexKey(bid) + ":pending" }

// Applied says what a report did.
type Applied int

// What ApplyReport can do with a report.
const (
	ReportStored    Applied = iota // stored; the job may have moved
	ReportRepeat                   // the same as, or older than, what is stored: nothing changed
	ReportNoJob                    // no such job (any more)
	ReportFinalKept                // an intermediate report after a final one: ignored
	ReportNotOurs                  // the job was never sent, or the number is not one of its recipients
)

// ApplyReport stores one recipient's report for job id and moves the job
// to its delivery outcome once every recipient has a final report.
func (s *Store) ApplyReport(ctx context.Context, id string, r Report) (Applied, error) {
	final, delivered := "0", "0"
	if r.Final() {
		final = "1"
	}
	if r.Delivered() {
		delivered = "1"
	}
	value := fmt.Sprintf("%s %d %d", r.Status, r.Code, ms(r.At))
	code := fmt.Sprintf("%s:%d", r.Status, r.Code)
	res, err := reportScript.Run(ctx, s.rdb, []string{key(id), drKey(id)},
		ms(s.now()), s.ttl.Milliseconds(), r.Recipient, value, final, delivered, code).Int()
	if err != nil {
		return 0, fmt.Errorf("store report: %w", err)
	}
	// A report can end the job: a failure to queue its callback is
	// returned, so that Sinch is told to send the report again.
	return Applied(res % 10), s.notifyAfter(ctx, id, res >= 10, mms.StatusDelivered)
}

// reportScript: KEYS[1] job, KEYS[2] its report hash; ARGV[1] now ms,
// ARGV[2] ttl ms, ARGV[3] recipient, ARGV[4] "<status> <code> <at ms>",
// ARGV[5] final (1/0), ARGV[6] delivered (1/0), ARGV[7] the history code.
// Returns an Applied, plus 10 when callback events are to be queued: one
// was emitted, or the report is a repeat and events wait.
var reportScript = redis.NewScript(rankTable() + canMove + addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 2 end
-- Only a job that may be at Sinch has reports, and only for its numbers.
if st == 'queued' or st == 'scheduled' or st == 'canceled' or st == 'expired' or
   (st == 'failed' and redis.call('HEXISTS', KEYS[1], 'bid') == 0) then
  return 4
end
local ok, msg = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'msg') or '')
if not ok or type(msg.to) ~= 'table' then return 4 end
local ours = false
for _, n in ipairs(msg.to) do
  if n == ARGV[3] then ours = true break end
end
if not ours then return 4 end
local old = redis.call('HGET', KEYS[2], ARGV[3])
if old == ARGV[4] then return 1 + 10 * tonumber(notify_flag(KEYS[1])) end
if old then
  local ostatus, ocode, oat = string.match(old, '^(%S+) (%S+) (%S+)')
  local stage = {Queued = 1, Dispatched = 2}
  if not stage[ostatus] then
    -- The first final report stands.
    if ARGV[5] == '0' then return 3 + 10 * tonumber(notify_flag(KEYS[1])) end
    return 1 + 10 * tonumber(notify_flag(KEYS[1]))
  end
  if ARGV[5] == '0' then
    -- Intermediate after intermediate: the same status and code again
    -- (a repeat without a time, or one fetched again), an earlier stage,
    -- or the same stage reported earlier is nothing new.
    local nstatus, ncode, nat = string.match(ARGV[4], '^(%S+) (%S+) (%S+)')
    if (nstatus == ostatus and ncode == ocode) or stage[nstatus] < stage[ostatus] or
       (stage[nstatus] == stage[ostatus] and tonumber(nat) < tonumber(oat)) then
      return 1 + 10 * tonumber(notify_flag(KEYS[1]))
    end
  end
else
  redis.call('HINCRBY', KEYS[1], 'drn', 1)
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
add_event(KEYS[1], ARGV[1], 'report', ARGV[7])
if ARGV[5] == '1' then
  local f = redis.call('HINCRBY', KEYS[1], 'drf', 1)
  local d = tonumber(redis.call('HGET', KEYS[1], 'drd') or '0')
  if ARGV[6] == '1' then d = redis.call('HINCRBY', KEYS[1], 'drd', 1) end
  -- n counts the recipients the batch went to
  local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  if n > 0 and f >= n then
    local outcome, code = 'failed', 'delivery_failed'
    if d >= n then outcome, code = 'delivered', '' elseif d > 0 then outcome, code = 'partially_delivered', '' end
    if can_move(st, outcome) then
      move_to(KEYS[1], ARGV[1], ARGV[2], outcome, code)
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if emitted then return 10 end
return 0
`)

// GetWithReports is Get and, for a job that has delivery reports, the
// latest report of each recipient, in one round trip (the two keys share a
// slot).
func (s *Store) GetWithReports(ctx context.Context, id string) (*mms.Job, []Report, error) {
	var job, reps *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		job, reps = p.HGetAll(ctx, key(id)), p.HGetAll(ctx, drKey(id))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("get job: %w", err)
	}
	if len(job.Val()) == 0 {
		return nil, nil, mms.ErrNotFound
	}
	j, err := decode(id, job.Val())
	if err != nil || j.Reported == 0 {
		return j, nil, err
	}
	return j, parseReports(reps.Val()), nil
}

// parseReports reads a report hash: recipient -> "<status> <code> <at ms>".
func parseReports(h map[string]string) []Report {
	out := make([]Report, 0, len(h))
	for who, v := range h {
		f := strings.Fields(v)
		if len(f) != 3 {
			continue
		}
		code, _ := strconv.Atoi(f[1])
		out = append(out, Report{Recipient: who, Status: f[0], Code: code, At: fromMS(f[2])})
	}
	return out
}

// IndexBatch records which job a Sinch batch belongs to, for reports that
// name only the batch, and hands back the reports that waited for it. They
// stay kept until DropPending: a process that dies while it applies them
// leaves them for the next IndexBatch of the batch.
func (s *Store) IndexBatch(ctx context.Context, batchID, jobID string) ([]string, error) {
	ttl := s.ttl
	res, err := indexScript.Run(ctx, s.rdb, []string{batchIndexKey(batchID), pendingKey(batchID)},
		jobID, ttl.Milliseconds()).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("index batch: %w", err)
	}
	return res, nil
}

// indexScript: KEYS[1] batch index, KEYS[2] its pending reports; ARGV[1]
// job ID, ARGV[2] ttl ms. Returns the pending reports. Once the index is
// set no report is added to them.
var indexScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('LRANGE', KEYS[2], 0, -1)
`)

// DropPending forgets the reports that waited for a batch, once IndexBatch
// has handed them back and each has been applied.
func (s *Store) DropPending(ctx context.Context, batchID string) error {
	if err := s.rdb.Del(ctx, pendingKey(batchID)).Err(); err != nil {
		return fmt.Errorf("drop pending reports: %w", err)
	}
	return nil
}

// JobForBatch returns the job a batch belongs to. When no job is known
// yet, raw (the report as received) is kept until the worker indexes the
// batch, and "" is returned.
func (s *Store) JobForBatch(ctx context.Context, batchID string, raw []byte) (string, error) {
	res, err := pendScript.Run(ctx, s.rdb, []string{batchIndexKey(batchID), pendingKey(batchID)},
		string(raw), pendingTTL.Milliseconds()).Text()
	if err != nil {
		return "", fmt.Errorf("match report: %w", err)
	}
	return res, nil
}

// pendingTTL is how long a report naming an unknown batch waits, and
// maxPending how many of them one batch keeps (the latest): Sinch sends a
// few per batch, so a longer list is a sender repeating itself.
const (
	pendingTTL = 7 * 24 * time.Hour
	maxPending = 50
)

var maxPendingLua = strconv.Itoa(maxPending)

// pendScript: KEYS[1] batch index, KEYS[2] its pending reports; ARGV[1]
// the report, ARGV[2] ttl ms. Returns the job ID, or "" having kept the
// report.
var pendScript = redis.NewScript(`
local id = redis.call('GET', KEYS[1])
if id then return id end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -` + maxPendingLua + `, -1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return ''
`)
