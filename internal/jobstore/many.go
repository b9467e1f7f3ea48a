package jobstore

import (
	"cmp"
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

// chunk is how many jobs one pipeline reads or changes, so that a campaign
// of many jobs neither holds Redis for long nor builds a huge reply.
const chunk = 500

// Brief is the little of a job that a campaign's summary and job list need.
type Brief struct {
	ID         string
	Status     mms.Status // "" for a job that does not exist (any more)
	Recipients int
	ErrCode    string
	BatchID    string
	UpdatedAt  time.Time
	SentAt     time.Time
	// Suppressed is how many recipients were left out of the batch for
	// the suppression list.
	Suppressed int
}

// Briefs reads the briefs of the given jobs, in order.
func (s *Store) Briefs(ctx context.Context, ids []string) ([]Brief, error) {
	out := make([]Brief, 0, len(ids))
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		cmds := make([]*redis.SliceCmd, len(part))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range part {
				cmds[i] = p.HMGet(ctx, key(id), fStatus, fCount, fError, fBatchID, fUpdated, fSentAt, fSuppress)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		for i, c := range cmds {
			v := c.Val()
			b := Brief{ID: part[i]}
			str := func(k int) string { s, _ := v[k].(string); return s }
			b.Status = mms.Status(str(0))
			b.Recipients, _ = strconv.Atoi(str(1))
			if e := str(2); e != "" {
				var je mms.JobError
				if json.Unmarshal([]byte(e), &je) == nil {
					b.ErrCode = je.Code
				}
			}
			b.BatchID = str(3)
			b.UpdatedAt = fromMS(str(4))
			b.SentAt = fromMS(str(5))
			if sup := str(6); sup != "" {
				b.Suppressed = strings.Count(sup, ",") + 1
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// CancelResult says what CancelMany did with one job.
type CancelResult struct {
	// Canceled is true if this call canceled the job.
	Canceled bool
	// Status is the job's status before: "" for a job that does not exist.
	Status mms.Status
}

// CancelMany cancels each of the jobs that Sinch cannot hold yet, as Cancel
// does, recording jerr as the reason.
func (s *Store) CancelMany(ctx context.Context, ids []string, jerr mms.JobError) ([]CancelResult, error) {
	e, err := json.Marshal(jerr)
	if err != nil {
		return nil, fmt.Errorf("encode error: %w", err)
	}
	if err := cancelScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("cancel jobs: %w", err)
	}
	now := ms(s.now())
	out := make([]CancelResult, 0, len(ids))
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		cmds := make([]*redis.Cmd, len(part))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range part {
				cmds[i] = cancelScript.EvalSha(ctx, p, []string{key(id)}, now, s.ttl.Milliseconds(), jerr.Code, e)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("cancel jobs: %w", err)
		}
		var nerr error
		for i, c := range cmds {
			res, err := c.StringSlice()
			if err != nil {
				return nil, fmt.Errorf("cancel jobs: %w", err)
			}
			r := CancelResult{Canceled: res[0] == "ok"}
			if len(res) > 1 {
				r.Status = mms.Status(res[1])
			}
			if len(res) > 2 {
				nerr = cmp.Or(nerr, s.notifyAfter(ctx, part[i], res[2] == "1", mms.StatusCanceled))
			}
			out = append(out, r)
		}
		if nerr != nil {
			// Every job was dealt with; calling again queues what is left.
			return out, nerr
		}
	}
	return out, nil
}
