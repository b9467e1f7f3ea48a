// Package jobstore keeps mmsgate's own record of every job in Redis.
//
// asynq forgets a task once it completes and trims its archive, but a client
// must be able to read a job's final state for the whole retention period.
// So each job has a small Redis hash of its own, written by the API when the
// job is accepted and moved forward by the worker. Every change goes through
// a Lua script that refuses to move a status backwards, so two workers racing
// on one job, or a late write after a retry, cannot undo progress.
package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// Field names in the job hash. They are short because a campaign keeps
// hundreds of thousands of these for a week.
const (
	fStatus    = "st"
	fPriority  = "pr"
	fReference = "ref"
	fMessage   = "msg"
	fAttempts  = "att"
	fMax       = "max"
	fNext      = "nxt"
	fError     = "err"
	fBatchID   = "bid"
	fCreated   = "c"
	fUpdated   = "u"
	fAmbiguous = "amb"
	fExpire    = "exp"
	fHistory   = "h"
	fSendAt    = "sat"
	fCampaign  = "cid"
	fRateCap   = "rc"
	fCount     = "n"
	fSuppress  = "sup"
	fSentAt    = "snt"
	fReported  = "drn" // written by the report script
)

// maxEvents is how many history entries a job keeps: the first ones of a
// job that retries long are dropped.
const maxEvents = 20

var maxEventsLua = strconv.Itoa(maxEvents)

// Store reads and writes job records.
type Store struct {
	rdb      redis.UniversalClient
	ttl      time.Duration
	now      func() time.Time
	notifier Notifier
}

// New returns a store that keeps each record for ttl after its last change.
func New(rdb redis.UniversalClient, ttl time.Duration) *Store {
	return &Store{rdb: rdb, ttl: ttl, now: time.Now}
}

// key puts the ID in a hash tag so that, on Redis Cluster, every key of one
// job lands on the same slot.
func key(id string) string { return "mmsgate:job:{" + id + "}" }

// Create stores a new job. It fails if a job with that ID exists.
func (s *Store) Create(ctx context.Context, j *mms.Job) error {
	msg, err := json.Marshal(j.Message)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	now := ms(j.CreatedAt)
	// A scheduled job must outlive its wait, and then the retention.
	ttl := s.ttl + max(0, time.Until(j.Message.SendAt))
	args := []any{
		ttl.Milliseconds(),
		fStatus, string(j.Status),
		fPriority, string(j.Priority),
		fMessage, msg,
		fAttempts, 0,
		fMax, j.MaxAttempts,
		fCreated, now,
		fUpdated, now,
		fHistory, fmt.Sprintf("%d %s\n", now, j.Status),
		fCount, len(j.Message.To),
	}
	if j.Reference != "" {
		args = append(args, fReference, j.Reference)
	}
	if !j.Message.ExpireAt.IsZero() {
		args = append(args, fExpire, ms(j.Message.ExpireAt))
	}
	if !j.Message.SendAt.IsZero() {
		args = append(args, fSendAt, ms(j.Message.SendAt))
	}
	if j.CampaignID != "" {
		args = append(args, fCampaign, j.CampaignID)
	}
	if j.RateCap > 0 {
		args = append(args, fRateCap, strconv.FormatFloat(j.RateCap, 'g', -1, 64))
	}
	if len(j.Suppressed) > 0 {
		args = append(args, fSuppress, strings.Join(j.Suppressed, ","))
	}
	if j.CallbackURL != "" {
		args = append(args, fCallbackURL, j.CallbackURL)
	}
	created, err := createScript.Run(ctx, s.rdb, []string{key(j.ID)}, args...).Int()
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	if created == 0 {
		return fmt.Errorf("create job %s: %w", j.ID, ErrExists)
	}
	return nil
}

// ErrExists is returned by Create for a job ID that is taken.
var ErrExists = errors.New("job exists already")

// Delete removes a job record. The API uses it to undo a job it could not
// enqueue.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, key(id)).Err(); err != nil {
		return fmt.Errorf("delete job: %w", err)
	}
	return nil
}

// Get returns a job, or mms.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*mms.Job, error) {
	h, err := s.rdb.HGetAll(ctx, key(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if len(h) == 0 {
		return nil, mms.ErrNotFound
	}
	return decode(id, h)
}

// Attempt is what Begin found when it claimed a job for an attempt.
type Attempt struct {
	Job *mms.Job
	// Previous is the status the job had before the claim. StatusSending
	// means an earlier attempt never recorded its outcome (the worker died,
	// or its write failed), so Sinch may hold the batch already.
	Previous mms.Status
	// Ambiguous is true when an earlier attempt ended without knowing
	// whether Sinch created the batch.
	Ambiguous bool
}

// ErrDone is returned by Begin for a job that needs no further attempt:
// Sinch accepted it already, or it ended otherwise.
var ErrDone = errors.New("job needs no attempt")

// ErrBatchUnrecorded comes with ErrDone for a job that delivery reports
// settled while its batch ID was never recorded (the attempt timed out, or
// its worker died): Sinch holds a batch that the job does not name.
var ErrBatchUnrecorded = errors.New("delivery reports came, but no batch ID is recorded")

// EarlyError is returned by Begin for a scheduled job whose time has not
// come; nothing was changed.
type EarlyError struct{ SendAt time.Time }

func (e *EarlyError) Error() string {
	return "job is scheduled for " + e.SendAt.Format(time.RFC3339Nano)
}

// ErrExpired is returned by Begin for a job whose expire_at has passed
// before Sinch got it; Begin has marked it expired.
var ErrExpired = errors.New("job expired unsent")

// Begin claims a job for one attempt: the status becomes sending and the
// attempt is counted. It returns mms.ErrNotFound for a job that does not
// exist and ErrDone for one that must not be sent.
func (s *Store) Begin(ctx context.Context, id string) (*Attempt, error) {
	res, err := beginScript.Run(ctx, s.rdb, []string{key(id)}, ms(s.now()), s.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("begin attempt: %w", err)
	}
	switch res[0] {
	case "missing":
		return nil, mms.ErrNotFound
	case "done":
		// A task that runs again after its process died may find the job's
		// last callback event unqueued: queue it now.
		if err := s.notifyAfter(ctx, id, res[2] == "1", mms.Status(res[1])); err != nil {
			return nil, err
		}
		if res[3] == "1" {
			return nil, fmt.Errorf("%w: status %s: %w", ErrDone, res[1], ErrBatchUnrecorded)
		}
		return nil, fmt.Errorf("%w: status %s", ErrDone, res[1])
	case "expired":
		if err := s.notifyAfter(ctx, id, res[1] == "1", mms.StatusExpired); err != nil {
			return nil, err
		}
		return nil, ErrExpired
	case "early":
		return nil, &EarlyError{SendAt: fromMS(res[1])}
	}

	h := make(map[string]string, len(res)/2)
	for i := 2; i+1 < len(res); i += 2 {
		h[res[i]] = res[i+1]
	}
	j, err := decode(id, h)
	if err != nil {
		return nil, err
	}
	_ = s.notifyAfter(ctx, id, h[fCallbackBox] != "", mms.StatusSending)
	return &Attempt{Job: j, Previous: mms.Status(res[1]), Ambiguous: h[fAmbiguous] == "1"}, nil
}

// Outcome is the result of an attempt, to be recorded by Finish.
type Outcome struct {
	Status  mms.Status
	BatchID string
	Err     *mms.JobError
	// NextAttemptAt is when the next attempt is due, for StatusRetrying.
	NextAttemptAt time.Time
	// Uncount gives back the attempt Begin counted: the wait was not the
	// message's fault (rate limit, our credentials).
	Uncount bool
	// Ambiguous records that Sinch may hold the batch despite the error.
	Ambiguous bool
	// Suppressed, if set, lists the recipients left out of the batch, and
	// Recipients how many it went to.
	Suppressed []string
	Recipients int
	// SentAt is when Sinch accepted the batch, for one found by a lookup
	// later; zero, or a time after now, means now.
	SentAt time.Time
}

// Finish records the outcome of an attempt. It reports false, and changes
// nothing, when the job has meanwhile moved to a status the outcome may not
// replace (for example it was canceled).
func (s *Store) Finish(ctx context.Context, id string, o Outcome) (bool, error) {
	delta := 0
	if o.Uncount {
		delta = -1
	}
	code := ""
	if o.Err != nil && o.Status != mms.StatusSent {
		code = o.Err.Code
	}
	args := []any{string(o.Status), s.ttl.Milliseconds(), ms(s.now()), delta, code}

	next := ""
	if !o.NextAttemptAt.IsZero() {
		next = strconv.FormatInt(ms(o.NextAttemptAt), 10)
	}
	amb := ""
	if o.Ambiguous {
		amb = "1"
	}
	args = append(args, fNext, next, fAmbiguous, amb)
	if o.BatchID != "" {
		args = append(args, fBatchID, o.BatchID)
	}
	if o.Status == mms.StatusSent {
		at := s.now()
		if !o.SentAt.IsZero() && o.SentAt.Before(at) {
			at = o.SentAt
		}
		args = append(args, fSentAt, ms(at))
	}
	if len(o.Suppressed) > 0 {
		args = append(args, fSuppress, strings.Join(o.Suppressed, ","))
	}
	if o.Recipients > 0 {
		args = append(args, fCount, o.Recipients)
	}
	if o.Err != nil {
		e, err := json.Marshal(o.Err)
		if err != nil {
			return false, fmt.Errorf("encode error: %w", err)
		}
		args = append(args, fError, e)
	}

	res, err := transitionScript.Run(ctx, s.rdb, []string{key(id)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("finish attempt: %w", err)
	}
	applied := res%10 == 1
	to := o.Status
	if !applied {
		to = mms.StatusSent // a repeat: the job may change no more
	}
	return applied, s.notifyAfter(ctx, id, res >= 10, to)
}

func decode(id string, h map[string]string) (*mms.Job, error) {
	j := &mms.Job{
		ID:           id,
		Status:       mms.Status(h[fStatus]),
		Priority:     mms.Priority(h[fPriority]),
		Reference:    h[fReference],
		SinchBatchID: h[fBatchID],
		CampaignID:   h[fCampaign],
	}
	j.RateCap, _ = strconv.ParseFloat(h[fRateCap], 64)
	if sup := h[fSuppress]; sup != "" {
		j.Suppressed = strings.Split(sup, ",")
	}
	if err := json.Unmarshal([]byte(h[fMessage]), &j.Message); err != nil {
		return nil, fmt.Errorf("job %s: decode message: %w", id, err)
	}
	j.Attempts, _ = strconv.Atoi(h[fAttempts])
	j.MaxAttempts, _ = strconv.Atoi(h[fMax])
	j.CreatedAt = fromMS(h[fCreated])
	j.UpdatedAt = fromMS(h[fUpdated])
	j.NextAttemptAt = fromMS(h[fNext])
	j.SentAt = fromMS(h[fSentAt])
	j.Reported, _ = strconv.Atoi(h[fReported])
	j.History = decodeHistory(h[fHistory])
	j.CallbackURL = h[fCallbackURL]
	j.Callbacks = callbackCounts(h)
	if e := h[fError]; e != "" {
		j.LastError = new(mms.JobError)
		if err := json.Unmarshal([]byte(e), j.LastError); err != nil {
			return nil, fmt.Errorf("job %s: decode error: %w", id, err)
		}
	}
	return j, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// rankTable renders mms's status ranks as a Lua table, so the scripts and
// the Go code share one definition of "backwards".
func rankTable() string {
	var b strings.Builder
	b.WriteString("local rank = {")
	for _, st := range []mms.Status{
		mms.StatusQueued, mms.StatusScheduled, mms.StatusSending, mms.StatusRetrying, mms.StatusSent,
		mms.StatusDelivered, mms.StatusPartiallyDelivered, mms.StatusFailed, mms.StatusCanceled, mms.StatusExpired,
	} {
		fmt.Fprintf(&b, "[%q]=%d,", st, st.Rank())
	}
	b.WriteString("}\n")
	return b.String()
}

// ErrConflict is returned when a job's status does not allow the change
// asked for.
var ErrConflict = errors.New("status does not allow this")

// Cancel cancels a job that has not reached Sinch and is not being sent. It
// returns mms.ErrNotFound, or ErrConflict with the job's status.
func (s *Store) Cancel(ctx context.Context, id string) error {
	return s.operatorMove(ctx, cancelScript, "cancel job", id, mms.StatusCanceled)
}

// Redrive puts a failed job that Sinch holds no batch of back to queued,
// with a fresh attempt budget. The caller enqueues its task again. A job
// whose last attempt may have reached Sinch keeps that doubt on record, so
// the next attempt looks the batch up before it sends.
func (s *Store) Redrive(ctx context.Context, id string) error {
	return s.operatorMove(ctx, redriveScript, "redrive job", id, mms.StatusQueued)
}

// operatorMove runs script, which moves job id to target or refuses.
func (s *Store) operatorMove(ctx context.Context, script *redis.Script, op, id string, target mms.Status) error {
	res, err := script.Run(ctx, s.rdb, []string{key(id)}, ms(s.now()), s.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if res[0] == "missing" {
		return mms.ErrNotFound
	}
	to := mms.Status(res[1])
	if res[0] == "ok" {
		to = target
	}
	nerr := s.notifyAfter(ctx, id, res[2] == "1", to)
	if res[0] == "refused" {
		if len(res) > 3 {
			return fmt.Errorf("%w: job is %s and %s", ErrConflict, res[1], res[3])
		}
		return fmt.Errorf("%w: job is %s", ErrConflict, res[1])
	}
	return nerr
}

// decodeHistory reads the history lines: "<ms> <status>[ <code>]".
func decodeHistory(s string) []mms.Event {
	var out []mms.Event
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		e := mms.Event{At: fromMS(f[0]), Status: mms.Status(f[1])}
		if len(f) > 2 {
			e.Code = f[2]
		}
		out = append(out, e)
	}
	return out
}

// ExpireIfDue ends a waiting job whose expiry has passed, unless an earlier
// attempt may have reached Sinch. It reports whether it did.
func (s *Store) ExpireIfDue(ctx context.Context, id string) (bool, error) {
	n, err := expireScript.Run(ctx, s.rdb, []string{key(id)}, ms(s.now()), s.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("expire job: %w", err)
	}
	return n%10 == 1, s.notifyAfter(ctx, id, n >= 10, mms.StatusExpired)
}
