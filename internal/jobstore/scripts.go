package jobstore

import "github.com/redis/go-redis/v9"

// createScript writes a new job hash unless the key exists.
// KEYS[1] job key; ARGV[1] ttl ms; ARGV[2..] field, value pairs.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// addEvent appends "<ms> <status>[ <code>]" to the job's history, keeping
// the last maxEvents lines; move_to is every status change's common part.
var addEvent = `
-- append_line appends line to the list kept in field of key, one line a
-- line, keeping the last max of them; it returns how many it dropped.
local function append_line(key, field, line, max)
  local text = (redis.call('HGET', key, field) or '') .. line .. '\n'
  local n, dropped = 0, 0
  for _ in string.gmatch(text, '\n') do n = n + 1 end
  while n > max do
    text = string.sub(text, string.find(text, '\n', 1, true) + 1)
    n, dropped = n - 1, dropped + 1
  end
  redis.call('HSET', key, field, text)
  return dropped
end

local function add_event(key, now, status, code)
  local line = now .. ' ' .. status
  if code ~= '' then line = line .. ' ' .. code end
  append_line(key, 'h', line, ` + maxEventsLua + `)
end

-- emitted is set when this script put a client callback event in a job's
-- outbox; the script's caller then queues its delivery. quiet, set by a
-- script before move_to, makes the change add no event.
local emitted = false
local quiet = false

-- emit adds a client callback event to the outbox of a job that has a
-- callback URL: "<seq> <ms> <status> <previous> <code or ->" a line. An
-- outbox that clients leave undelivered for long keeps only its latest
-- ` + maxOutboxLua + ` events; the older ones count as failed.
local function emit(key, now, status, prev, code)
  if quiet or redis.call('HEXISTS', key, 'cb') == 0 then return end
  local seq = redis.call('HINCRBY', key, 'cbn', 1)
  if code == '' then code = '-' end
  local dropped = append_line(key, 'cbo', seq .. ' ' .. now .. ' ' .. status .. ' ' .. (prev or '-') .. ' ' .. code,
    ` + maxOutboxLua + `)
  if dropped > 0 then redis.call('HINCRBY', key, 'cbf', dropped) end
  emitted = true
end

-- notify_flag is what a script returns for its caller to queue callback
-- events: "1" when it emitted one, and also when it changed nothing but the
-- job still has events waiting, so that a repeated call (a retried task, a
-- report Sinch sends again) queues what a crash may have left unqueued.
local function notify_flag(key)
  if emitted or redis.call('HEXISTS', key, 'cbo') == 1 then return '1' end
  return '0'
end

-- move_to sets a job's status, records it in the history and the callback
-- outbox, drops any planned retry time and renews the record's time to live.
local function move_to(key, now, ttl, status, code)
  local prev = redis.call('HGET', key, 'st')
  redis.call('HSET', key, 'st', status, 'u', now)
  redis.call('HDEL', key, 'nxt')
  add_event(key, now, status, code)
  emit(key, now, status, prev, code)
  redis.call('PEXPIRE', key, ttl)
end

-- expire_if_due ends a waiting job (status st) whose expiry has passed,
-- unless an earlier attempt may have reached Sinch: then an attempt must
-- look first, and decides. It reports whether it did.
local function expire_if_due(key, now, ttl, st)
  local exp = tonumber(redis.call('HGET', key, 'exp') or '')
  if not exp or tonumber(now) < exp then return false end
  if not (st == 'queued' or st == 'scheduled' or st == 'retrying') then return false end
  if redis.call('HGET', key, 'amb') == '1' then return false end
  move_to(key, now, ttl, 'expired', '')
  return true
end
`

// canMove mirrors mms.Status.CanMove.
const canMove = `
local function can_move(from, to)
  local a, b = rank[from], rank[to]
  if a == nil or b == nil or a == 3 then return false end
  if b > a then return true end
  return a == 1 and b == 1
end
`

// beginScript claims a job for an attempt.
// KEYS[1] job key; ARGV[1] now ms; ARGV[2] ttl ms.
// Returns {"missing"}, {"done", status, notify flag, "1" if delivery
// reports came but no batch ID is recorded}, or {"ok", previous status,
// field, value, ...}.
var beginScript = redis.NewScript(rankTable() + canMove + addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return {'missing'} end
if not can_move(st, 'sending') then
  local unrecorded = '0'
  if redis.call('HEXISTS', KEYS[1], 'drn') == 1 and redis.call('HEXISTS', KEYS[1], 'bid') == 0 then
    unrecorded = '1'
  end
  return {'done', st, notify_flag(KEYS[1]), unrecorded}
end
-- asynq schedules to the second; a scheduled job must not go early.
local sat = redis.call('HGET', KEYS[1], 'sat')
if sat and tonumber(ARGV[1]) < tonumber(sat) then return {'early', sat} end
if expire_if_due(KEYS[1], ARGV[1], ARGV[2], st) then return {'expired', notify_flag(KEYS[1])} end
-- The attempts after a wait post no callback (see transitionScript).
if redis.call('HEXISTS', KEYS[1], 'cbw') == 1 then quiet = true end
move_to(KEYS[1], ARGV[1], ARGV[2], 'sending', '')
redis.call('HINCRBY', KEYS[1], 'att', 1)
local out = {'ok', st}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h do out[#out + 1] = h[i] end
return out
`)

// transitionScript moves a job to a new status and sets fields with it,
// unless that would move it backwards.
// KEYS[1] job key; ARGV[1] status; ARGV[2] ttl ms; ARGV[3] now ms;
// ARGV[4] attempts delta; ARGV[5] the code for the history, or ”;
// ARGV[6..] field, value pairs (an empty value deletes the field).
// Returns 1 if applied, 0 if refused, -1 if missing, plus 10 with the notify
// flag. A "sent" that comes after the job's delivery reports settled it
// stores the batch's details.
var transitionScript = redis.NewScript(rankTable() + canMove + addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return -1 end
if not can_move(st, ARGV[1]) then
  -- A delivery report can beat the worker's own record of the send: the
  -- job has its outcome already, and takes only the batch's details.
  if ARGV[1] == 'sent' and rank[st] == 3 and redis.call('HEXISTS', KEYS[1], 'drf') == 1 then
    for i = 6, #ARGV, 2 do
      if ARGV[i+1] ~= '' and (ARGV[i] == 'bid' or ARGV[i] == 'snt' or ARGV[i] == 'n' or ARGV[i] == 'sup') then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
      end
    end
    return 1 + 10 * tonumber(notify_flag(KEYS[1]))
  end
  return 10 * tonumber(notify_flag(KEYS[1]))
end
-- A wait (a retry that gives its attempt back: Sinch throttling, a media
-- server down, our credentials) posts its callback once; the waits that
-- follow it in a row, and the attempts between them, post none, so that a
-- job held for hours does not flood its client. cbw marks a job in such a
-- run of waits; any other change ends the run.
if ARGV[1] == 'retrying' and ARGV[4] == '-1' then
  if redis.call('HEXISTS', KEYS[1], 'cbw') == 1 then quiet = true end
  redis.call('HSET', KEYS[1], 'cbw', '1')
else
  redis.call('HDEL', KEYS[1], 'cbw')
end
move_to(KEYS[1], ARGV[3], ARGV[2], ARGV[1], ARGV[5])
local d = tonumber(ARGV[4])
if d ~= 0 then redis.call('HINCRBY', KEYS[1], 'att', d) end
for i = 6, #ARGV, 2 do
  if ARGV[i+1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
  end
end
return 1 + 10 * tonumber(notify_flag(KEYS[1]))
`)

// cancelScript cancels a job that Sinch cannot hold yet: waiting, or
// retrying after an attempt whose outcome is known. A job being sent, or
// one whose last attempt may have reached Sinch, is left alone.
// KEYS[1] job key; ARGV[1] now ms; ARGV[2] ttl ms; optional ARGV[3] reason
// code and ARGV[4] the error to record with it.
// Returns {"missing"}, or {"refused" or "ok", the status before, notify flag}.
var cancelScript = redis.NewScript(addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return {'missing'} end
local amb = redis.call('HGET', KEYS[1], 'amb')
if not (st == 'queued' or st == 'scheduled' or (st == 'retrying' and amb ~= '1')) then
  return {'refused', st, notify_flag(KEYS[1])}
end
move_to(KEYS[1], ARGV[1], ARGV[2], 'canceled', ARGV[3] or '')
if ARGV[4] then redis.call('HSET', KEYS[1], 'err', ARGV[4]) end
return {'ok', st, notify_flag(KEYS[1])}
`)

// redriveScript gives a failed job a fresh budget: the one move back that
// is allowed, and only for a job Sinch holds no batch of.
// KEYS[1] job key; ARGV[1] now ms; ARGV[2] ttl ms.
// Returns {"missing"}, or {"refused" or "ok", the status before, notify
// flag[, why refused]}.
var redriveScript = redis.NewScript(addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return {'missing'} end
if st ~= 'failed' or redis.call('HEXISTS', KEYS[1], 'bid') == 1 then
  return {'refused', st, notify_flag(KEYS[1])}
end
-- Delivery reports prove a batch at Sinch even when the worker's record
-- of it was lost (reports can fail a job before that record lands).
if tonumber(redis.call('HGET', KEYS[1], 'drn') or '0') > 0 then
  return {'refused', st, notify_flag(KEYS[1]), 'its delivery reports show a batch at Sinch'}
end
move_to(KEYS[1], ARGV[1], ARGV[2], 'queued', 'retried')
redis.call('HSET', KEYS[1], 'att', 0)
return {'ok', st, notify_flag(KEYS[1])}
`)

// expireScript ends a waiting job whose expiry has passed, as Begin would,
// for a worker that is not calling Sinch (its circuit is open).
// KEYS[1] job key; ARGV[1] now ms; ARGV[2] ttl ms. Returns 1 if expired, 0
// if not, plus 10 with the notify flag.
var expireScript = redis.NewScript(addEvent + `
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 0 end
local n = 0
if expire_if_due(KEYS[1], ARGV[1], ARGV[2], st) then n = 1 end
return n + 10 * tonumber(notify_flag(KEYS[1]))
`)
