// Package campaign keeps mmsgate's campaigns: one message to many
// recipients, split into Sinch batches of at most a thousand, one job each.
//
// The API validates a campaign, stores it with its batches already split,
// and enqueues one expand task; it answers at once. A worker runs the task:
// it turns the batches into jobs and their send tasks, a batch at a time, so
// neither process holds more than one request's worth of recipients. Job
// IDs are derived from the campaign ID and the batch's index, so a run cut
// short and repeated creates no job twice and enqueues no task twice.
//
// Redis keys, all tagged with the campaign ID so that they share a slot:
//
//	mmsgate:campaign:{id}          hash: "rec" the campaign as created (JSON),
//	                               "st" its state, "made" jobs created so far,
//	                               "cat" when it was canceled (ms)
//	mmsgate:campaign:{id}:batches  list: batch i's recipients and values
//	                               (JSON), removed once the jobs exist or
//	                               the campaign is canceled
package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// States of a campaign as stored. What clients see (scheduled, sending,
// completed) is worked out from its jobs.
const (
	StatePreparing = "preparing" // jobs are being created
	StateReady     = "ready"     // every job exists
	StateCanceled  = "canceled"
)

// Record is a campaign as accepted.
type Record struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	Reference string       `json:"reference,omitempty"`
	Priority  mms.Priority `json:"priority"`
	RateLimit float64      `json:"rate_limit,omitempty"`
	// CallbackURL is where each of the campaign's jobs posts its status
	// changes.
	CallbackURL string `json:"callback_url,omitempty"`
	// Content is what every batch shares: media, text, sender, times.
	Content     mms.Message `json:"content"`
	MaxAttempts int         `json:"max_attempts"`
	BatchSize   int         `json:"batch_size"`
	Jobs        int         `json:"jobs"`
	Counts

	// InvalidList and SuppressedList are the first mms.MaxListed of each.
	InvalidList    []mms.Rejected `json:"invalid_list,omitempty"`
	SuppressedList []string       `json:"suppressed_list,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	// Fingerprint identifies the request, for Idempotency-Key.
	Fingerprint string `json:"fp,omitempty"`
}

// Counts are a campaign's recipients: as listed, accepted (to be sent),
// refused as invalid, dropped as duplicates, and left out as suppressed.
type Counts struct {
	Listed     int `json:"listed"`
	Accepted   int `json:"accepted"`
	Invalid    int `json:"invalid"`
	Duplicates int `json:"duplicates"`
	Suppressed int `json:"suppressed"`
}

// State is a campaign's stored state besides its record.
type State struct {
	State      string
	Made       int // jobs created so far
	CanceledAt time.Time
}

// batch is one stored batch: its recipients and their values.
type batch struct {
	To     []string                     `json:"to"`
	Params map[string]map[string]string `json:"p,omitempty"`
}

// ErrCompleted is returned by Cancel for a campaign with nothing left to
// cancel: every job was handed to Sinch or ended.
var ErrCompleted = errors.New("campaign completed")

// ErrNotFound is returned for a campaign that does not exist (any more).
var ErrNotFound = errors.New("campaign not found")

// Store reads and writes campaigns.
type Store struct {
	rdb  redis.UniversalClient
	jobs *jobstore.Store
	ttl  time.Duration
	now  func() time.Time
}

// New returns a store keeping each campaign for ttl after its last job may
// have changed.
func New(rdb redis.UniversalClient, jobs *jobstore.Store, ttl time.Duration) *Store {
	return &Store{rdb: rdb, jobs: jobs, ttl: ttl, now: time.Now}
}

func key(id string) string        { return "mmsgate:campaign:{" + id + "}" }
func batchesKey(id string) string { return key(id) + ":batches" }

// JobID is the ID of batch i's job: a valid job ID, the same every time.
func JobID(campaignID string, i int) string { return JobIDs(campaignID, i, i+1)[0] }

// JobIDs lists the IDs of jobs [from, to): each has the campaign's time
// and, as its random part, a hash of the campaign ID and the batch's index.
func JobIDs(campaignID string, from, to int) []string {
	c, err := ulid.ParseStrict(strings.ToUpper(campaignID))
	if err != nil {
		panic("campaign: bad campaign id " + campaignID)
	}
	out := make([]string, 0, max(0, to-from))
	for i := from; i < to; i++ {
		sum := sha256.Sum256([]byte(campaignID + ":" + strconv.Itoa(i)))
		var id ulid.ULID
		_ = id.SetTime(c.Time())
		_ = id.SetEntropy(sum[:10])
		out = append(out, strings.ToLower(id.String()))
	}
	return out
}

// ttlFor is how long a campaign's keys live: until its last job may still
// change (its expiry), and then the retention.
func (s *Store) ttlFor(r *Record) time.Duration {
	return max(time.Until(r.Content.ExpireAt), 0) + s.ttl
}

// Create stores a campaign, its record and its batches, split from plan.
func (s *Store) Create(ctx context.Context, r *Record, plan *mms.CampaignPlan) error {
	rec, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode campaign: %w", err)
	}
	ttl := s.ttlFor(r)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key(r.ID), "rec", rec, "st", StatePreparing, "made", 0)
		p.PExpire(ctx, key(r.ID), ttl)
		entries := make([]any, 0, 100)
		flush := func() {
			if len(entries) > 0 {
				p.RPush(ctx, batchesKey(r.ID), entries...)
				entries = entries[:0]
			}
		}
		for i := 0; i < len(plan.Recipients); i += r.BatchSize {
			m := plan.Batch(i, min(i+r.BatchSize, len(plan.Recipients)))
			b, err := json.Marshal(batch{To: m.To, Params: m.Parameters})
			if err != nil {
				return err
			}
			entries = append(entries, b)
			if len(entries) == cap(entries) {
				flush()
			}
		}
		flush()
		p.PExpire(ctx, batchesKey(r.ID), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store campaign: %w", err)
	}
	return nil
}

// Delete removes a campaign that could not be accepted.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.rdb.Del(ctx, key(id), batchesKey(id)).Err()
}

// Jobs lists the IDs of the jobs made so far for campaign id; none for a
// campaign that is not kept (any more).
func (s *Store) Jobs(ctx context.Context, id string) ([]string, error) {
	_, st, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return JobIDs(id, 0, st.Made), nil
}

// Get returns a campaign's record and state.
func (s *Store) Get(ctx context.Context, id string) (*Record, State, error) {
	v, err := s.rdb.HMGet(ctx, key(id), "rec", "st", "made", "cat").Result()
	if err != nil {
		return nil, State{}, fmt.Errorf("read campaign: %w", err)
	}
	raw, _ := v[0].(string)
	if raw == "" {
		return nil, State{}, ErrNotFound
	}
	var r Record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, State{}, fmt.Errorf("campaign %s: decode: %w", id, err)
	}
	st := State{}
	st.State, _ = v[1].(string)
	made, _ := v[2].(string)
	st.Made, _ = strconv.Atoi(made)
	if cat, _ := v[3].(string); cat != "" {
		n, _ := strconv.ParseInt(cat, 10, 64)
		st.CanceledAt = time.UnixMilli(n).UTC()
	}
	return &r, st, nil
}

// Canceled reports whether the campaign was canceled. A campaign that no
// longer exists counts as canceled: its jobs have nothing to belong to.
func (s *Store) Canceled(ctx context.Context, id string) (bool, error) {
	st, err := s.rdb.HGet(ctx, key(id), "st").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read campaign: %w", err)
	}
	return st == StateCanceled, nil
}

// cancelScript marks a campaign canceled, once. KEYS[1] campaign key;
// ARGV[1] now ms. Returns 0 if missing, 1 if canceled now, 2 if it was
// already.
var cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 0 end
if st == 'canceled' then return 2 end
redis.call('HSET', KEYS[1], 'st', 'canceled', 'cat', ARGV[1])
return 1
`)

// CanceledError is the reason recorded on a job its campaign's cancel
// stopped.
func CanceledError(at time.Time) mms.JobError {
	return mms.JobError{Code: "campaign_canceled", Message: "the campaign was canceled before this batch was sent",
		At: at.UTC()}
}

// CancelSummary says what a cancel did, in jobs and recipients.
type CancelSummary struct {
	CanceledJobs       int            `json:"canceled_jobs"`
	CanceledRecipients int            `json:"canceled_recipients"`
	NotCanceled        map[string]int `json:"not_canceled_jobs"` // by status: sent, sending...
	// AlreadyCanceled counts jobs that were canceled before this call.
	AlreadyCanceled int `json:"already_canceled_jobs"`
	NotYetCreated   int `json:"not_yet_created_jobs"`
	// Queue is the campaign's queue, for the metrics.
	Queue string `json:"-"`
}

// Cancel stops a campaign: no further job is created, and every job that
// Sinch cannot hold yet is canceled. Jobs already with Sinch, or being
// sent, are left as they are. Repeating a cancel is harmless.
func (s *Store) Cancel(ctx context.Context, id string) (*CancelSummary, error) {
	// A campaign that has completed stays completed.
	before, err := s.Summarize(ctx, id)
	if err != nil {
		return nil, err
	}
	if before.Status == "completed" {
		return nil, ErrCompleted
	}
	n, err := cancelScript.Run(ctx, s.rdb, []string{key(id)}, s.now().UnixMilli()).Int()
	if err != nil {
		return nil, fmt.Errorf("cancel campaign: %w", err)
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	r, st, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	ids := JobIDs(id, 0, st.Made)
	res, err := s.jobs.CancelMany(ctx, ids, CanceledError(s.now()))
	if err != nil {
		return nil, err
	}
	sum := &CancelSummary{NotCanceled: map[string]int{}, NotYetCreated: r.Jobs - st.Made, Queue: r.Priority.Queue()}
	for i, c := range res {
		switch {
		case c.Canceled:
			sum.CanceledJobs++
			sum.CanceledRecipients += r.batchLen(i)
		case c.Status == mms.StatusCanceled:
			sum.AlreadyCanceled++
		case c.Status == "":
			sum.NotCanceled["missing"]++
		default:
			sum.NotCanceled[string(c.Status)]++
		}
	}
	return sum, nil
}

// batchLen is how many recipients batch i holds.
func (r *Record) batchLen(i int) int {
	return max(0, min(r.BatchSize, r.Accepted-i*r.BatchSize))
}
