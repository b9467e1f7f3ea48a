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

// Client callbacks. A job with a callback URL keeps an outbox in its own
// record: every status change adds an event to it in the same script that
// makes the change, so no change can happen without its event. Queuing the
// event's delivery (an asynq task) comes right after, through the store's
// Notifier. If that fails, or the process dies in between, the event waits
// in the outbox: the next change of the job, or any repeat of a call that
// finds events waiting (a retried task, a report Sinch sends again, a second
// cancel), queues it again. Delivering an event takes it out of the outbox.

// maxOutbox caps the events a job's outbox keeps while its client does not
// take them.
const maxOutbox = 50

var maxOutboxLua = strconv.Itoa(maxOutbox)

// Field names of the callback state in the job hash.
const (
	fCallbackURL    = "cb"
	fCallbackSeq    = "cbn" // written by the scripts
	fCallbackBox    = "cbo"
	fCallbackFailed = "cbf"
)

// CallbackEvent is one status change waiting to be posted to the client.
type CallbackEvent struct {
	JobID    string
	Seq      int64 // 1, 2, ... per job, in the order of the changes
	At       time.Time
	Status   mms.Status
	Previous mms.Status
	Code     string // the reason code of a failure, if any
}

// ID is the event's ID, the same on every delivery attempt, so that the
// client can tell a repeat.
func (e CallbackEvent) ID() string { return e.JobID + "-" + strconv.FormatInt(e.Seq, 10) }

// Notifier queues the delivery of the events waiting in job id's outbox.
type Notifier func(ctx context.Context, id string) error

// ErrEventNotQueued is returned, wrapped, when a job's change was stored
// but the delivery of its callback event could not be queued. The event
// stays in the job's outbox: doing the same call again queues it.
var ErrEventNotQueued = errors.New("status stored, but its client callback is not queued yet")

// SetNotifier makes the store queue callback events through n after every
// change that adds one. Without a notifier events wait in their outbox.
func (s *Store) SetNotifier(n Notifier) { s.notifier = n }

// Notify queues the delivery of every event waiting in job id's outbox.
func (s *Store) Notify(ctx context.Context, id string) error {
	if s.notifier == nil {
		return nil
	}
	if err := s.notifier(ctx, id); err != nil {
		return fmt.Errorf("job %s: %w: %w", id, ErrEventNotQueued, err)
	}
	return nil
}

// notifyAfter queues the events a script flagged. A failure is returned
// only when the job may change no more (to must be final or sent): after a
// change to sending or retrying another change follows, whose notification
// queues this event too. The notifier logs every failure itself.
func (s *Store) notifyAfter(ctx context.Context, id string, flag bool, to mms.Status) error {
	if !flag {
		return nil
	}
	err := s.Notify(ctx, id)
	switch to {
	case mms.StatusQueued, mms.StatusSending, mms.StatusRetrying:
		return nil
	}
	return err
}

// OutboxState is a job's callback URL, what its callbacks show of it, and
// the events waiting in its outbox, oldest first.
type OutboxState struct {
	URL        string
	Reference  string
	CampaignID string
	BatchID    string
	Events     []CallbackEvent
}

// Outbox reads job id's outbox; mms.ErrNotFound for a job that does not
// exist (any more).
func (s *Store) Outbox(ctx context.Context, id string) (OutboxState, error) {
	v, err := s.rdb.HMGet(ctx, key(id), fStatus, fCallbackURL, fCallbackBox, fReference, fCampaign, fBatchID).Result()
	if err != nil {
		return OutboxState{}, fmt.Errorf("read callback events: %w", err)
	}
	if v[0] == nil {
		return OutboxState{}, mms.ErrNotFound
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	return OutboxState{URL: str(1), Events: parseOutbox(id, str(2)), Reference: str(3), CampaignID: str(4),
		BatchID: str(5)}, nil
}

// parseOutbox reads outbox lines: "<seq> <ms> <status> <previous> <code>".
func parseOutbox(id, box string) []CallbackEvent {
	var out []CallbackEvent
	for line := range strings.Lines(box) {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		seq, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		e := CallbackEvent{JobID: id, Seq: seq, At: fromMS(f[1]), Status: mms.Status(f[2])}
		if f[3] != "-" {
			e.Previous = mms.Status(f[3])
		}
		if f[4] != "-" {
			e.Code = f[4]
		}
		out = append(out, e)
	}
	return out
}

// EventDone takes event seq out of job id's outbox: delivered, or given
// up on (failed) after its last retry, which the job counts. It reports
// whether the event was still there.
func (s *Store) EventDone(ctx context.Context, id string, seq int64, failed bool) (bool, error) {
	f := "0"
	if failed {
		f = "1"
	}
	n, err := eventDoneScript.Run(ctx, s.rdb, []string{key(id)}, strconv.FormatInt(seq, 10), f).Int()
	if err != nil {
		return false, fmt.Errorf("settle callback event: %w", err)
	}
	return n == 1, nil
}

// eventDoneScript: KEYS[1] job key; ARGV[1] the event's seq; ARGV[2] "1" to
// count it as failed. Returns 1 if the event was in the outbox.
var eventDoneScript = redis.NewScript(`
local box = redis.call('HGET', KEYS[1], 'cbo')
if not box then return 0 end
local out, found = {}, false
for line in string.gmatch(box, '[^\n]+') do
  if string.match(line, '^(%d+) ') == ARGV[1] then
    found = true
  else
    out[#out + 1] = line .. '\n'
  end
end
if not found then return 0 end
if #out == 0 then
  redis.call('HDEL', KEYS[1], 'cbo')
else
  redis.call('HSET', KEYS[1], 'cbo', table.concat(out))
end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'cbf', 1) end
return 1
`)

// callbackCounts reads the callback state of a job hash.
func callbackCounts(h map[string]string) mms.CallbackCounts {
	c := mms.CallbackCounts{Pending: strings.Count(h[fCallbackBox], "\n")}
	c.Failed, _ = strconv.Atoi(h[fCallbackFailed])
	return c
}
