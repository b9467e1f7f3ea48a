package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// staleAfter is how long a reservation whose job never appeared is taken
// to belong to a request still under way. Past it, the request is presumed
// to have failed and the key may be used again.
const staleAfter = 10 * time.Second

const maxIdempotencyKey = 255

// idempotencyKey reads and checks the Idempotency-Key header; "" if absent.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", nil
	}
	k := vals[0]
	bad := len(vals) > 1 || k == "" || len(k) > maxIdempotencyKey
	for i := 0; i < len(k) && !bad; i++ {
		bad = k[i] < 0x21 || k[i] > 0x7e
	}
	if bad {
		return "", &Error{Status: http.StatusBadRequest, Code: "invalid_header",
			Message: "Idempotency-Key must be given once, as 1 to 255 printable ASCII characters",
			Fields:  []mms.FieldError{{Field: "Idempotency-Key", Message: "is malformed"}}}
	}
	return k, nil
}

// keyScope confines idempotency keys to the API key that sent them.
func keyScope(c echo.Context) string {
	id, _ := c.Get(ctxKeyID).(string)
	return id
}

// fingerprint identifies what a request asks for, after normalisation, so
// that the same request written differently (whitespace, number format)
// counts as the same. An expiry the request did not set is left out: its
// default moves with the clock.
func fingerprint(j *mms.Job, expirySet bool) string {
	m := j.Message
	if !expirySet {
		m.ExpireAt = time.Time{}
	}
	b, _ := json.Marshal(struct {
		M mms.Message
		P mms.Priority
		R string
		C string `json:",omitempty"` // left out when empty: earlier keys keep their fingerprint
	}{m, j.Priority, j.Reference, j.CallbackURL})
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// reserve claims the client's Idempotency-Key for job. It returns the job
// created earlier under that key, if any, to be answered again; or the
// reservation now held, to be released if the job cannot be created.
func (s *server) reserve(ctx context.Context, c echo.Context, key string, job *mms.Job, expirySet bool) (
	*mms.Job, *jobstore.Reservation, error) {
	return reserveFor(ctx, s, c, keyScope(c), key, fingerprint(job, expirySet), job.ID,
		func(ctx context.Context, id string) (*mms.Job, error) {
			earlier, err := s.deps.Store.Get(ctx, id)
			if err == nil && s.orphaned(ctx, earlier) {
				// A request that failed and could not clean up after itself
				// (Redis went away mid-way): its job has no task and will
				// never run. Remove it and serve this request afresh.
				if derr := s.deps.Store.Delete(ctx, earlier.ID); derr != nil {
					return nil, derr
				}
				return nil, errOrphan
			}
			return earlier, err
		})
}

// errOrphan is what a lookup for reserveFor returns for a thing it found
// useless and removed: its key may be taken over at once.
var errOrphan = errors.New("orphan removed")

// reserveFor claims an Idempotency-Key, in the given scope, for a request
// with fingerprint fp that creates the thing with the given ID. It returns
// the thing an earlier request with the key created, read by find (which
// returns mms.ErrNotFound when there is none), to be answered again; or the
// reservation now held, to be released if the thing cannot be created.
func reserveFor[T any](ctx context.Context, s *server, c echo.Context, scope, key, fp, id string,
	find func(context.Context, string) (T, error)) (T, *jobstore.Reservation, error) {
	var none T
	r := jobstore.Reservation{Fingerprint: fp, JobID: id, At: time.Now().UTC()}
	var expect *jobstore.Reservation
	for range 3 {
		prev, err := s.deps.Store.Reserve(ctx, scope, key, r, expect, s.cfg.IdempotencyTTL)
		if err != nil {
			reqLog(c, s.deps.Log).Warn().Err(err).Msg("idempotency key not reserved")
			return none, nil, errUnavailable()
		}
		if prev == nil {
			return none, &r, nil
		}
		if prev.JobID == "" {
			expect = nil // it vanished: try a plain reservation again
			continue
		}
		if prev.Fingerprint != r.Fingerprint {
			return none, nil, &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
				Message: "this Idempotency-Key was used with a different request"}
		}

		earlier, err := find(ctx, prev.JobID)
		if errors.Is(err, errOrphan) {
			err = mms.ErrNotFound
			prev.At = time.Time{} // stale at once
		}
		switch {
		case err == nil:
			return earlier, nil, nil
		case !errors.Is(err, mms.ErrNotFound):
			return none, nil, errUnavailable()
		case time.Since(prev.At) < staleAfter:
			return none, nil, &Error{Status: http.StatusConflict, Code: "idempotency_key_in_progress",
				Message: "a request with this Idempotency-Key is under way", RetryAfter: 1}
		}
		expect = prev // a request that failed long ago: take its key over
	}
	return none, nil, errUnavailable()
}

// orphaned reports whether a queued job has no task to run it: the request
// that created it failed before its task was enqueued.
func (s *server) orphaned(ctx context.Context, j *mms.Job) bool {
	if j.Status != mms.StatusQueued || time.Since(j.CreatedAt) < staleAfter {
		return false
	}
	_, err := s.deps.Tasks.GetTaskInfo(j.Priority.Queue(), j.ID)
	return errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound)
}

// releaseKey frees an Idempotency-Key whose request was not accepted, so
// that the request may simply be sent again. Best effort: a reservation
// left behind is taken over once it is stale, since nothing was created.
func (s *server) releaseKey(c echo.Context, scope, key string, r jobstore.Reservation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), s.cfg.RedisTimeout)
	defer cancel()
	if err := s.deps.Store.Release(ctx, scope, key, r); err != nil {
		reqLog(c, s.deps.Log).Warn().Err(err).Msg("idempotency key not released")
	}
}
