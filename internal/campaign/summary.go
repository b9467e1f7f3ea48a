package campaign

import (
	"context"
	"time"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// Summary is where a campaign stands, worked out from its jobs.
type Summary struct {
	Record *Record
	State  State
	// Status is what clients see: preparing, scheduled, sending,
	// completed or canceled.
	Status string
	// Jobs and Recipients count the campaign's jobs, and the recipients in
	// them, by job status.
	Jobs       map[mms.Status]int
	Recipients map[mms.Status]int
	// Done is how many recipients' jobs were handed to Sinch or ended;
	// Progress is that share of the accepted recipients.
	Done     int
	Progress float64
	// Rate is recipients handed to Sinch per second over the last minute;
	// ETA, when there is a rate, is when the rest will be at that rate.
	Rate float64
	ETA  *time.Time
	// Errors breaks the jobs that failed, expired or were canceled down by
	// reason code.
	Errors map[string]ErrorCount
}

// ErrorCount is how many jobs, and recipients, ended for one reason.
type ErrorCount struct {
	Jobs       int `json:"jobs"`
	Recipients int `json:"recipients"`
}

// StatusSuppressed counts, in Summary.Recipients, the recipients left out
// of their job's batch because they are on the suppression list.
const StatusSuppressed mms.Status = "suppressed"

// rateWindow is the span over which the current rate is measured.
const rateWindow = time.Minute

// Summarize reads a campaign and all its jobs.
func (s *Store) Summarize(ctx context.Context, id string) (*Summary, error) {
	r, st, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	briefs, err := s.jobs.Briefs(ctx, JobIDs(id, 0, st.Made))
	if err != nil {
		return nil, err
	}
	now := s.now()
	sum := &Summary{Record: r, State: st, Jobs: map[mms.Status]int{}, Recipients: map[mms.Status]int{},
		Errors: map[string]ErrorCount{}}
	recent, pending := 0, 0
	for i, b := range briefs {
		n := r.batchLen(i)
		status := b.Status
		if status == "" {
			status = "missing"
		}
		sum.Jobs[status]++
		// Recipients left out for the suppression list count apart.
		sup := min(b.Suppressed, n)
		if sup > 0 {
			sum.Recipients[StatusSuppressed] += sup
		}
		sum.Recipients[status] += n - sup
		// Handed to Sinch or ended: nothing left for us to send. A job
		// gone from Redis outlived its retention, so it ended long ago.
		if status.Rank() >= mms.StatusSent.Rank() || b.Status == "" {
			sum.Done += n
		} else {
			pending += n
		}
		if !b.SentAt.IsZero() && now.Sub(b.SentAt) <= rateWindow {
			recent += n - sup
		}
		if status == mms.StatusFailed || status == mms.StatusExpired || status == mms.StatusCanceled {
			// An expiry, and a job canceled on its own, record no code:
			// the status is the reason then.
			code := b.ErrCode
			if code == "" {
				code = string(status)
			}
			e := sum.Errors[code]
			e.Jobs++
			e.Recipients += n
			sum.Errors[code] = e
		}
	}
	notMade := r.Accepted - sumBatches(r, st.Made)
	if st.State != StateCanceled {
		pending += notMade
	}
	if r.Accepted > 0 {
		sum.Progress = float64(sum.Done) / float64(r.Accepted)
	}
	sum.Rate = float64(recent) / rateWindow.Seconds()
	if sum.Rate > 0 && pending > 0 {
		eta := now.Add(time.Duration(float64(pending) / sum.Rate * float64(time.Second))).UTC()
		sum.ETA = &eta
	}
	sum.Status = status(r, st, pending, now)
	return sum, nil
}

func sumBatches(r *Record, made int) int { return min(r.Accepted, made*r.BatchSize) }

func status(r *Record, st State, pending int, now time.Time) string {
	switch {
	case st.State == StateCanceled:
		return "canceled"
	case r.Content.SendAt.After(now):
		// Nothing can go before its time, whatever became of single jobs.
		return "scheduled"
	case st.State == StatePreparing && st.Made == 0:
		return "preparing"
	case pending == 0:
		return "completed"
	}
	return "sending"
}

// JobPage is one page of a campaign's jobs.
type JobPage struct {
	Jobs []jobstore.Brief
	// Next is the cursor of the next page; -1 when there is none.
	Next int
}

// maxScan bounds how many jobs one page request reads while looking for
// jobs of the status asked for.
const maxScan = 5000

// ListJobs returns up to limit of the campaign's jobs from cursor on, in
// batch order, only those with the given status if one is given.
func (s *Store) ListJobs(ctx context.Context, id string, cursor, limit int, status mms.Status) (*JobPage, error) {
	_, st, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	page := &JobPage{Next: -1}
	i := cursor
	for i < st.Made && len(page.Jobs) < limit && i-cursor < maxScan {
		n := limit
		if status != "" {
			n = max(limit, 500)
		}
		end := min(st.Made, i+n)
		briefs, err := s.jobs.Briefs(ctx, JobIDs(id, i, end))
		if err != nil {
			return nil, err
		}
		for k, b := range briefs {
			if status != "" && b.Status != status {
				continue
			}
			page.Jobs = append(page.Jobs, b)
			if len(page.Jobs) == limit {
				end = i + k + 1
				break
			}
		}
		i = end
	}
	if i < st.Made {
		page.Next = i
	}
	return page, nil
}
