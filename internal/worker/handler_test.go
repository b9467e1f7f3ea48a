package worker

// The handler tests sit inside the package: the delay a handler chose and
// whether it counts as a failure are only visible through retryDelay and
// isFailure, which asynq receives as functions, and the orphan hook is
// unexported. Everything else is real: the job store on a Redis of the
// test's own, and the Sinch client talking HTTP to the simulator.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/ratelimit"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/sinch"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
	"github.com/mmsgate/mmsgate/internal/task"
)

const (
	simPlan  = "plan-1"
	simToken = "sim-secret-token-42"
)

// clock is the handler's "now" in these tests, so that stored retry times
// and error times can be checked exactly.
var clock = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

var testBackoff = Backoff{Base: 100 * time.Millisecond, Max: time.Second}

const authRetryDelay = 7 * time.Second

type bundle struct {
	h       *Handler
	store   *jobstore.Store
	rdb     *redis.Client
	sim     *sinchsim.Server
	client  *sinch.Client
	lookups atomic.Int32 // GET /batches requests that reached the simulator

	mu      sync.Mutex
	orphans []string
}

type options struct {
	// timeout is the Sinch client's timeout; default 2s.
	timeout time.Duration
	// token is the token the client sends; default the simulator's.
	token string
	// wrap, if set, stands between the client and the simulator.
	wrap func(http.Handler) http.Handler
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()

	rs := redistest.Start(t)
	b := &bundle{rdb: rs.Client(t)}
	b.store = jobstore.New(b.rdb, time.Hour)

	b.sim = sinchsim.New(sinchsim.Config{ServicePlanID: simPlan, Token: simToken})
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/batches") {
			b.lookups.Add(1)
		}
		b.sim.ServeHTTP(w, r)
	})
	if o.wrap != nil {
		h = o.wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	client, err := sinch.New(sinch.Config{
		BaseURL:       srv.URL,
		ServicePlanID: simPlan,
		Token:         cmp.Or(o.token, simToken),
		Timeout:       cmp.Or(o.timeout, 2*time.Second),
	})
	require.NoError(t, err)
	b.client = client

	b.h = NewHandler(b.store, client, Config{
		Backoff:        testBackoff,
		AuthRetryDelay: authRetryDelay,
		WriteTimeout:   2 * time.Second,
	}, zerolog.New(t.Output()).Level(zerolog.DebugLevel))
	b.h.now = func() time.Time { return clock }
	b.h.orphan = func(id string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.orphans = append(b.orphans, id)
	}
	return b
}

// create stores a new queued job, as the API does.
func (b *bundle) create(t *testing.T, maxAttempts int) *mms.Job {
	t.Helper()

	now := time.Now().UTC()
	j := &mms.Job{
		ID:        mms.NewJobID(),
		Status:    mms.StatusQueued,
		Priority:  mms.PriorityNormal,
		Reference: "campaign-7",
		Message: mms.Message{
			To:         []string{"+12025550123", "+14155552671"},
			From:       "+12025550100",
			MediaURL:   "https://cdn.example.com/mms/sale.jpg",
			Text:       "Winter sale, {name}",
			Subject:    "Sale",
			Parameters: map[string]map[string]string{"name": {"+12025550123": "Ann", "default": "friend"}},
		},
		MaxAttempts: maxAttempts,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	require.NoError(t, b.store.Create(context.Background(), j))
	return j
}

func (b *bundle) process(t *testing.T, id string) error {
	t.Helper()

	p, err := json.Marshal(task.SendPayload{JobID: id})
	require.NoError(t, err)
	return b.h.ProcessTask(context.Background(), asynq.NewTask(task.TypeSend, p))
}

func (b *bundle) get(t *testing.T, id string) *mms.Job {
	t.Helper()

	j, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	return j
}

// ambiguousFlag reads the store's "may be at Sinch" mark straight from the
// job hash; the store has no getter for it. Key and field follow the
// layout in jobstore.go.
func (b *bundle) ambiguousFlag(t *testing.T, id string) bool {
	t.Helper()

	v, err := b.rdb.HGet(context.Background(), "mmsgate:job:{"+id+"}", "amb").Result()
	if errors.Is(err, redis.Nil) {
		return false
	}
	require.NoError(t, err)
	return v == "1"
}

// requireRetry checks that err asks asynq for a retry, counted or not, and
// returns the delay asynq's RetryDelayFunc would use. The server's backoff
// is set far from the handler's so that a fallback would show.
func requireRetry(t *testing.T, err error, counted bool) time.Duration {
	t.Helper()

	var re *retryError
	require.ErrorAs(t, err, &re)
	require.NotErrorIs(t, err, asynq.SkipRetry)
	require.Equal(t, counted, re.counted)
	require.Equal(t, counted, isFailure(err), "isFailure")

	d := retryDelay(Backoff{Base: time.Hour, Max: 2 * time.Hour})(3, err, nil)
	require.Equal(t, re.delay, d, "asynq waits as long as the handler chose")
	return d
}

// requireBatchAtSinch waits until the simulator holds the batch of a
// request whose answer was lost. It is stored before the simulator starts to
// hang, so this is at once in practice; the wait only absorbs a slow machine.
func requireBatchAtSinch(t *testing.T, b *bundle, id string) {
	t.Helper()

	require.Eventually(t, func() bool { return b.sim.CountByClientReference(id) == 1 },
		5*time.Second, 5*time.Millisecond, "the batch exists although we saw no answer")
}

// at is t as the job store gives it back: UTC, whole milliseconds.
func at(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func TestProcessSends(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.create(t, 5)

	require.NoError(t, b.process(t, j.ID))

	batches := b.sim.Batches()
	require.Len(t, batches, 1)
	got := batches[0]
	require.Equal(t, j.ID, got.ClientReference)
	require.Equal(t, j.Message.To, got.To)
	require.Equal(t, j.Message.From, got.From)
	require.Equal(t, sinchsim.MediaBody{URL: j.Message.MediaURL, Message: j.Message.Text, Subject: j.Message.Subject},
		got.Body)
	require.Equal(t, j.Message.Parameters, got.Parameters)

	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, job.Status)
	require.Equal(t, got.ID, job.SinchBatchID)
	require.Equal(t, 1, job.Attempts)
	require.Nil(t, job.LastError)
	require.True(t, job.NextAttemptAt.IsZero())
	require.Equal(t, 1, b.sim.Posts())
	require.Zero(t, b.lookups.Load(), "a first attempt sends without looking up")
}

func TestProcessPermanentFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.create(t, 5)
	b.sim.Inject(sinchsim.Fault{Status: http.StatusBadRequest, Code: "syntax_invalid_parameter_format",
		Text: "invalid number +12025550123"})

	err := b.process(t, j.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	var se *sinch.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.StatusCode)
	require.True(t, isFailure(err))

	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, job.Status)
	require.Equal(t, &mms.JobError{Code: "syntax_invalid_parameter_format", Message: "invalid number +12025550123",
		At: clock}, job.LastError)
	require.Equal(t, 1, job.Attempts)
	require.Empty(t, job.SinchBatchID)

	// A stray redelivery of the task changes nothing and calls no one.
	require.NoError(t, b.process(t, j.ID))
	require.Equal(t, 1, b.sim.Posts())
	require.Equal(t, job, b.get(t, j.ID))
}

func TestProcessTransientFailureRetries(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		fault      sinchsim.Fault
		code       string
		minD, maxD time.Duration
	}{
		{"503 backs off", sinchsim.Fault{Status: http.StatusServiceUnavailable}, "service_unavailable",
			testBackoff.Base / 2, testBackoff.Base},
		{"503 with Retry-After waits longer", sinchsim.Fault{Status: http.StatusServiceUnavailable,
			RetryAfter: 2 * time.Second}, "service_unavailable", 2 * time.Second, 2 * time.Second},
		{"500", sinchsim.Fault{Status: http.StatusInternalServerError}, "internal_server_error",
			testBackoff.Base / 2, testBackoff.Base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{})
			j := b.create(t, 5)
			b.sim.Inject(tt.fault)

			d := requireRetry(t, b.process(t, j.ID), true)
			require.GreaterOrEqual(t, d, tt.minD)
			require.LessOrEqual(t, d, tt.maxD)

			job := b.get(t, j.ID)
			require.Equal(t, mms.StatusRetrying, job.Status)
			require.Equal(t, 1, job.Attempts)
			require.Equal(t, at(clock.Add(d)), job.NextAttemptAt)
			require.Equal(t, tt.code, job.LastError.Code)
			require.Equal(t, clock, job.LastError.At)
			require.False(t, b.ambiguousFlag(t, j.ID), "Sinch answered: nothing is in doubt")

			// The retry sends again, without a lookup, and succeeds.
			require.NoError(t, b.process(t, j.ID))
			job = b.get(t, j.ID)
			require.Equal(t, mms.StatusSent, job.Status)
			require.Equal(t, 2, job.Attempts)
			require.Equal(t, 2, b.sim.Posts())
			require.Len(t, b.sim.Batches(), 1)
			require.Zero(t, b.lookups.Load())
		})
	}
}

func TestProcessThrottledSpendsNoAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.create(t, 2)
	// More 429s than the job has attempts: none may count.
	for range 3 {
		b.sim.Inject(sinchsim.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	}

	for range 3 {
		d := requireRetry(t, b.process(t, j.ID), false)
		require.Equal(t, 3*time.Second, d, "Retry-After wins over a shorter backoff")

		job := b.get(t, j.ID)
		require.Equal(t, mms.StatusRetrying, job.Status)
		require.Zero(t, job.Attempts)
		require.Equal(t, at(clock.Add(d)), job.NextAttemptAt)
		require.Equal(t, "too_many_requests", job.LastError.Code)
	}

	require.NoError(t, b.process(t, j.ID))
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, job.Status)
	require.Equal(t, 1, job.Attempts)
	require.Equal(t, 4, b.sim.Posts())
}

func TestProcessThrottledWithoutRetryAfterBacksOff(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.create(t, 5)
	b.sim.Inject(sinchsim.Fault{Status: http.StatusTooManyRequests})

	d := requireRetry(t, b.process(t, j.ID), false)
	require.GreaterOrEqual(t, d, testBackoff.Base/2)
	require.LessOrEqual(t, d, testBackoff.Base)
	require.Zero(t, b.get(t, j.ID).Attempts)
}

func TestProcessUnauthorizedSpendsNoAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "not-the-token"})
	j := b.create(t, 1)

	// Far more refusals than attempts: the job waits, it does not fail.
	for range 3 {
		d := requireRetry(t, b.process(t, j.ID), false)
		require.Equal(t, authRetryDelay, d)

		job := b.get(t, j.ID)
		require.Equal(t, mms.StatusRetrying, job.Status)
		require.Zero(t, job.Attempts)
		require.Equal(t, at(clock.Add(authRetryDelay)), job.NextAttemptAt)
		require.Equal(t, "http_401", job.LastError.Code)
	}
	require.Empty(t, b.sim.Batches())
}

func TestProcessExhaustsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	j := b.create(t, 2)
	b.sim.Inject(sinchsim.Fault{Status: http.StatusServiceUnavailable}, sinchsim.Fault{Status: http.StatusBadGateway})

	requireRetry(t, b.process(t, j.ID), true)

	err := b.process(t, j.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.True(t, isFailure(err))
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, job.Status)
	require.Equal(t, 2, job.Attempts)
	require.Equal(t, "bad_gateway", job.LastError.Code)
	require.Contains(t, job.LastError.Message, "gave up after 2 attempts")
	require.True(t, job.NextAttemptAt.IsZero())

	require.NoError(t, b.process(t, j.ID), "a failed job is not sent again")
	require.Equal(t, 2, b.sim.Posts())
	require.Empty(t, b.sim.Batches())
}

// TestProcessAdoptsAfterLostAnswer: Sinch creates the batch but the answer
// never arrives. The next attempt must find that batch, not send another.
func TestProcessAdoptsAfterLostAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, options{timeout: 200 * time.Millisecond})
	j := b.create(t, 5)
	b.sim.Inject(sinchsim.Fault{AfterCreate: true, Hang: 2 * time.Second})

	err := b.process(t, j.ID)
	requireRetry(t, err, true)
	require.True(t, sinch.Ambiguous(err))
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusRetrying, job.Status)
	require.Equal(t, "timeout", job.LastError.Code)
	require.True(t, b.ambiguousFlag(t, j.ID))
	requireBatchAtSinch(t, b, j.ID)

	require.NoError(t, b.process(t, j.ID))
	require.Equal(t, 1, b.sim.Posts(), "no second send")
	require.Equal(t, 1, b.sim.CountByClientReference(j.ID))
	require.EqualValues(t, 1, b.lookups.Load())
	job = b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, job.Status)
	require.Equal(t, b.sim.Batches()[0].ID, job.SinchBatchID)
	require.False(t, b.ambiguousFlag(t, j.ID))
}

// TestProcessResendsWhenLostRequestCreatedNothing: the answer was lost but
// so was the request; the lookup finds nothing and the job is sent once.
func TestProcessResendsWhenLostRequestCreatedNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, options{timeout: 200 * time.Millisecond})
	j := b.create(t, 5)
	b.sim.Inject(sinchsim.Fault{Hang: 2 * time.Second})

	requireRetry(t, b.process(t, j.ID), true)
	require.True(t, b.ambiguousFlag(t, j.ID))
	require.Empty(t, b.sim.Batches())

	require.NoError(t, b.process(t, j.ID))
	require.Equal(t, 1, b.sim.CountByClientReference(j.ID))
	require.EqualValues(t, 1, b.lookups.Load())
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, job.Status)
	require.Equal(t, 2, job.Attempts)
}

// TestProcessAmbiguousLastAttempt: an unclear outcome on the last attempt
// earns one lookup, but no further send.
func TestProcessAmbiguousLastAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, options{timeout: 200 * time.Millisecond})
	j := b.create(t, 1)
	b.sim.Inject(sinchsim.Fault{Hang: 2 * time.Second})

	requireRetry(t, b.process(t, j.ID), true)

	err := b.process(t, j.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, job.Status)
	require.Equal(t, "retries_exhausted", job.LastError.Code)
	require.Equal(t, 1, b.sim.Posts())
	require.EqualValues(t, 1, b.lookups.Load())
}

// TestProcessAfterCrash: a worker claimed the job and died before it
// recorded anything. Whether Sinch holds the batch decides between adopting
// it and sending.
func TestProcessAfterCrash(t *testing.T) {
	t.Parallel()

	for _, reached := range []bool{true, false} {
		name := "batch at sinch is adopted"
		if !reached {
			name = "no batch at sinch is sent once"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{})
			j := b.create(t, 5)
			ctx := context.Background()

			// The crashed attempt: claimed, maybe sent, never finished.
			a, err := b.store.Begin(ctx, j.ID)
			require.NoError(t, err)
			var earlier string
			if reached {
				batch, err := b.client.SendMedia(ctx, batchFor(a.Job))
				require.NoError(t, err)
				earlier = batch.ID
			}

			require.NoError(t, b.process(t, j.ID))
			require.Equal(t, 1, b.sim.Posts())
			require.Equal(t, 1, b.sim.CountByClientReference(j.ID))
			require.EqualValues(t, 1, b.lookups.Load())
			job := b.get(t, j.ID)
			require.Equal(t, mms.StatusSent, job.Status)
			require.Equal(t, b.sim.Batches()[0].ID, job.SinchBatchID)
			if reached {
				require.Equal(t, earlier, job.SinchBatchID)
			}
		})
	}
}

// failFirstLookups answers the first n GET /batches with status, and passes
// everything else on.
func failFirstLookups(n int, status int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		var left atomic.Int32
		left.Store(int32(n))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && left.Add(-1) >= 0 {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"code":"lookup_failed","text":"simulated lookup failure"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestProcessKeepsDoubtWhenLookupFails: after an attempt whose outcome is
// unknown, the lookup that should settle it fails too. Nothing is settled,
// so the attempt after that must look up again rather than send.
func TestProcessKeepsDoubtWhenLookupFails(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		crash  bool // the doubt comes from a crashed attempt, not a timeout
		status int  // the failed lookup's answer
	}{
		{"timeout then lookup 503", false, http.StatusServiceUnavailable},
		{"timeout then lookup 429", false, http.StatusTooManyRequests},
		{"crash then lookup 503", true, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{timeout: 200 * time.Millisecond, wrap: failFirstLookups(1, tt.status)})
			j := b.create(t, 5)
			ctx := context.Background()

			if tt.crash {
				a, err := b.store.Begin(ctx, j.ID)
				require.NoError(t, err)
				_, err = b.client.SendMedia(ctx, batchFor(a.Job))
				require.NoError(t, err)
			} else {
				b.sim.Inject(sinchsim.Fault{AfterCreate: true, Hang: 2 * time.Second})
				requireRetry(t, b.process(t, j.ID), true)
			}
			requireBatchAtSinch(t, b, j.ID)

			// The lookup fails: the task must come back later.
			var re *retryError
			require.ErrorAs(t, b.process(t, j.ID), &re)
			require.Equal(t, 1, b.sim.Posts(), "nothing is sent while the lookup fails")

			// The next attempt may only adopt.
			require.NoError(t, b.process(t, j.ID))
			require.Equal(t, 1, b.sim.CountByClientReference(j.ID), "the MMS was sent twice")
			job := b.get(t, j.ID)
			require.Equal(t, mms.StatusSent, job.Status)
			require.Equal(t, b.sim.Batches()[0].ID, job.SinchBatchID)
		})
	}
}

func TestProcessMissingJobIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := mms.NewJobID()

	require.NoError(t, b.process(t, id))
	require.Zero(t, b.sim.Posts())
	require.Zero(t, b.lookups.Load())
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, []string{id}, b.orphans)
}

func TestProcessSentJobIsSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	j := b.create(t, 5)

	_, err := b.store.Begin(ctx, j.ID)
	require.NoError(t, err)
	ok, err := b.store.Finish(ctx, j.ID,
		jobstore.Outcome{Status: mms.StatusSent, BatchID: "01HF4WG1TAVS351YYD7Q84K8HA"})
	require.NoError(t, err)
	require.True(t, ok)
	before := b.get(t, j.ID)

	require.NoError(t, b.process(t, j.ID))
	require.Zero(t, b.sim.Posts())
	require.Zero(t, b.lookups.Load())
	require.Equal(t, before, b.get(t, j.ID))
}

func TestProcessUndecodablePayload(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})

	tests := []struct{ name, payload string }{
		{"not json", `{"job_id":`},
		{"no job id", `{}`},
		{"malformed job id", `{"job_id":"../../etc"}`},
		{"empty", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.h.ProcessTask(context.Background(), asynq.NewTask(task.TypeSend, []byte(tt.payload)))
			require.ErrorIs(t, err, asynq.SkipRetry)
		})
	}
	require.Zero(t, b.sim.Posts())
	require.Zero(t, b.lookups.Load())
}

// TestProcessGivesUpWhenDoubtCannotBeSettled: the lookup fails every time.
// The job may spend a few attempts over its budget on looking, never on
// sending again, and then fails as outcome_unknown.
func TestProcessGivesUpWhenDoubtCannotBeSettled(t *testing.T) {
	t.Parallel()
	b := setup(t, options{timeout: 200 * time.Millisecond, wrap: failFirstLookups(100, http.StatusServiceUnavailable)})
	j := b.create(t, 2)

	b.sim.Inject(sinchsim.Fault{AfterCreate: true, Hang: 2 * time.Second})
	requireRetry(t, b.process(t, j.ID), true)

	var err error
	for range 10 {
		if err = b.process(t, j.ID); errors.Is(err, asynq.SkipRetry) {
			break
		}
		requireRetry(t, err, true)
	}
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.Equal(t, 1, b.sim.Posts(), "only the first attempt ever sent")

	job := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, job.Status)
	require.Equal(t, "outcome_unknown", job.LastError.Code)
	require.Equal(t, 2+maxExtraChecks, job.Attempts)
}

// TestRateLimitWaitKeepsJob: a send that finds the shared rate limit full
// for longer than it may wait in place is put back without touching the
// job: no status change, no attempt spent, nothing sent.
func TestRateLimitWaitKeepsJob(t *testing.T) {
	b := setup(t, options{})
	limiter := ratelimit.New(b.rdb)
	plan := ratelimit.Plan(1, 1) // one recipient a second
	b.h.cfg.Limits = &Limits{Limiter: limiter, Plan: plan, MaxWait: 50 * time.Millisecond}
	res, err := limiter.Take(context.Background(), 1, 0, plan)
	require.NoError(t, err)
	require.True(t, res.OK, "fill the limit")

	j := b.create(t, 3)
	p, err := json.Marshal(task.SendFor(j))
	require.NoError(t, err)
	err = b.h.ProcessTask(context.Background(), asynq.NewTask(task.TypeSend, p))
	delay := requireRetry(t, err, false)
	require.Greater(t, delay, time.Second, "two recipients need two seconds of room")

	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusQueued, got.Status)
	require.Zero(t, got.Attempts)
	require.Empty(t, b.sim.Batches())

	// A short wait is held in place, and then the job goes: at 20
	// recipients a second, the two need 100 ms of room once the limit is
	// full again.
	require.NoError(t, b.rdb.Del(context.Background(), "{mmsgate:rate}:plan").Err())
	b.h.cfg.Limits.Plan = ratelimit.Plan(20, 1)
	b.h.cfg.Limits.MaxWait = time.Second
	res, err = limiter.Take(context.Background(), 1, 0, b.h.cfg.Limits.Plan)
	require.NoError(t, err)
	require.True(t, res.OK)
	require.NoError(t, b.h.ProcessTask(context.Background(), asynq.NewTask(task.TypeSend, p)))
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status)
	require.Len(t, b.sim.Batches(), 1)
}

// fakeList is a suppression list in memory.
type fakeList struct {
	numbers map[string]bool
	err     error
}

func (f fakeList) Filter(_ context.Context, numbers []string) ([]bool, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]bool, len(numbers))
	for i, n := range numbers {
		out[i] = f.numbers[n]
	}
	return out, nil
}

// TestSuppressedBeforeSending: numbers that opted out after the job was
// accepted are left out of the batch and noted on the job; a job left with
// no recipient ends canceled without a Sinch call; a list that cannot be
// read holds the job without spending its attempt.
func TestSuppressedBeforeSending(t *testing.T) {
	b := setup(t, options{})

	b.h.cfg.Suppressions = fakeList{numbers: map[string]bool{"+12025550123": true}}
	j := b.create(t, 3)
	require.NoError(t, b.process(t, j.ID))
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusSent, got.Status)
	require.Equal(t, []string{"+12025550123"}, got.Suppressed)
	batches := b.sim.Batches()
	require.Len(t, batches, 1)
	require.Equal(t, []string{"+14155552671"}, batches[0].To)
	require.NotContains(t, batches[0].Parameters["name"], "+12025550123", "its value left out too")

	b.h.cfg.Suppressions = fakeList{numbers: map[string]bool{"+12025550123": true, "+14155552671": true}}
	j = b.create(t, 3)
	require.NoError(t, b.process(t, j.ID))
	got = b.get(t, j.ID)
	require.Equal(t, mms.StatusCanceled, got.Status)
	require.Equal(t, "suppressed", got.LastError.Code)
	require.Len(t, got.Suppressed, 2)
	require.Len(t, b.sim.Batches(), 1, "no call for a job with no one left")

	b.h.cfg.Suppressions = fakeList{err: errors.New("redis: connection refused")}
	j = b.create(t, 3)
	requireRetry(t, b.process(t, j.ID), false)
	got = b.get(t, j.ID)
	require.Equal(t, mms.StatusRetrying, got.Status)
	require.Zero(t, got.Attempts, "the wait spent no attempt")
	require.Len(t, b.sim.Batches(), 1)
}

type fakeCampaigns struct{ canceled bool }

func (f fakeCampaigns) Canceled(context.Context, string) (bool, error) { return f.canceled, nil }

// TestCanceledCampaignAfterUnclearAttempt: a job of a canceled campaign that
// an earlier attempt left "sending" is looked up at Sinch first; Sinch holds
// no batch, so it ends canceled instead of being sent.
func TestCanceledCampaignAfterUnclearAttempt(t *testing.T) {
	b := setup(t, options{})
	j := b.create(t, 3)
	j.CampaignID = "01arz3ndektsv4rrffq69g5fav"
	require.NoError(t, b.rdb.HSet(context.Background(), "mmsgate:job:{"+j.ID+"}", "cid", j.CampaignID).Err())
	_, err := b.store.Begin(context.Background(), j.ID) // the worker that died
	require.NoError(t, err)

	b.h.cfg.Campaigns = fakeCampaigns{canceled: true}
	p, err := json.Marshal(task.SendFor(j))
	require.NoError(t, err)
	require.NoError(t, b.h.ProcessTask(context.Background(), asynq.NewTask(task.TypeSend, p)))

	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusCanceled, got.Status)
	require.Equal(t, "campaign_canceled", got.LastError.Code)
	require.Equal(t, int32(1), b.lookups.Load(), "looked Sinch up first")
	require.Empty(t, b.sim.Batches(), "nothing sent")
}

// fakeMedia answers every check with one result, and counts them.
type fakeMedia struct {
	r     media.Result
	calls int
}

func (f *fakeMedia) Check(context.Context, string) media.Result { f.calls++; return f.r }

// TestMediaCheckBeforeSending: media that Sinch could not deliver fails the
// job with the check's reason and no Sinch call; a media server that is
// merely down holds the job without spending an attempt.
func TestMediaCheckBeforeSending(t *testing.T) {
	b := setup(t, options{})

	fm := &fakeMedia{r: media.Result{Reason: "media_content_type", Message: "text/html is not a media type"}}
	b.h.cfg.Media = fm
	j := b.create(t, 3)
	err := b.process(t, j.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	got := b.get(t, j.ID)
	require.Equal(t, mms.StatusFailed, got.Status)
	require.Equal(t, "media_content_type", got.LastError.Code)
	require.Empty(t, b.sim.Batches(), "Sinch never called")

	fm.r = media.Result{Reason: "media_http_status", Message: "503 from the media server", Transient: true}
	j = b.create(t, 3)
	requireRetry(t, b.process(t, j.ID), false)
	got = b.get(t, j.ID)
	require.Equal(t, mms.StatusRetrying, got.Status)
	require.Zero(t, got.Attempts)
	require.Equal(t, "media_http_status", got.LastError.Code)

	fm.r = media.Result{OK: true, Warnings: []string{"media_large"}}
	require.NoError(t, b.process(t, j.ID))
	require.Equal(t, mms.StatusSent, b.get(t, j.ID).Status)
	require.Len(t, b.sim.Batches(), 1)
}
