package sinchsim_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

func TestInjectedFaultsInOrder(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(
		sinchsim.Fault{Status: http.StatusServiceUnavailable, RetryAfter: 1500 * time.Millisecond},
		sinchsim.Fault{Status: http.StatusTooManyRequests, Code: "too_busy", Text: "slow down"},
		sinchsim.Fault{}, // a normal answer
		sinchsim.Fault{Status: http.StatusInternalServerError},
		sinchsim.Fault{Status: http.StatusForbidden, Code: "unknown_campaign"},
		sinchsim.Fault{Status: http.StatusBadRequest},
	)
	require.Equal(t, 6, e.sim.PendingFaults())

	tests := []struct {
		wantStatus     int
		wantCode       string
		wantText       string
		wantRetryAfter string
	}{
		{http.StatusServiceUnavailable, "service_unavailable", "", "2"},
		{http.StatusTooManyRequests, "too_busy", "slow down", ""},
		{http.StatusCreated, "", "", ""},
		{http.StatusInternalServerError, "internal_server_error", "", ""},
		{http.StatusForbidden, "unknown_campaign", "", ""},
		{http.StatusBadRequest, "syntax_constraint_violation", "", ""},
		{http.StatusCreated, "", "", ""}, // queue empty again
	}
	for i, tt := range tests {
		resp := e.post(t, withRef("job-1"))
		require.Equal(t, tt.wantStatus, resp.status, "request %d: %s", i, resp.body)
		require.Equal(t, tt.wantRetryAfter, resp.header.Get("Retry-After"), "request %d", i)

		if tt.wantCode != "" {
			code, text := resp.errorBody(t)
			require.Equal(t, tt.wantCode, code, "request %d", i)
			require.NotEmpty(t, text)
			if tt.wantText != "" {
				require.Equal(t, tt.wantText, text)
			}
		}
	}

	require.Zero(t, e.sim.PendingFaults())
	require.Equal(t, len(tests), e.sim.Posts())
	require.Len(t, e.sim.Batches(), 2)
	require.Equal(t, 2, e.sim.CountByClientReference("job-1"))
}

func TestFaultBeatsValidation(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(sinchsim.Fault{Status: http.StatusBadGateway})

	// The fault is used up by the next authorized POST, even a bad one.
	resp := e.post(t, `{not json`)
	require.Equal(t, http.StatusBadGateway, resp.status)
	code, _ := resp.errorBody(t)
	require.Equal(t, "bad_gateway", code)

	resp = e.post(t, `{not json`)
	require.Equal(t, http.StatusBadRequest, resp.status)
}

func TestFault401IsPlainText(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(sinchsim.Fault{Status: http.StatusUnauthorized})

	resp := e.post(t, validRequest())
	require.Equal(t, http.StatusUnauthorized, resp.status)
	require.Contains(t, resp.header.Get("Content-Type"), "text/plain")
	require.False(t, json.Valid(resp.body))
}

func TestAfterCreate(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(sinchsim.Fault{Status: http.StatusServiceUnavailable, AfterCreate: true})

	resp := e.post(t, withRef("job-lost"))
	require.Equal(t, http.StatusServiceUnavailable, resp.status)

	// The batch exists although the client saw a 503, and the documented
	// look-up finds it.
	require.Len(t, e.sim.Batches(), 1)
	require.Equal(t, 1, e.sim.CountByClientReference("job-lost"))

	list := e.get(t, "/batches?client_reference=job-lost")
	require.Equal(t, http.StatusOK, list.status)
	var l struct {
		Count   int              `json:"count"`
		Batches []sinchsim.Batch `json:"batches"`
	}
	require.NoError(t, json.Unmarshal(list.body, &l))
	require.Equal(t, 1, l.Count)
	require.Equal(t, e.sim.Batches()[0].ID, l.Batches[0].ID)

	// A blind retry makes a duplicate, which the counters show.
	require.Equal(t, http.StatusCreated, e.post(t, withRef("job-lost")).status)
	require.Equal(t, 2, e.sim.CountByClientReference("job-lost"))
	require.Equal(t, 1, e.sim.Stats().Duplicates)
}

func TestAfterCreateWithInvalidRequest(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(sinchsim.Fault{Status: http.StatusServiceUnavailable, AfterCreate: true})

	req := validRequest()
	delete(req, "to")
	resp := e.post(t, req)
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "the lost answer replaces the 400")
	require.Empty(t, e.sim.Batches())
}

func TestHangUntilClientTimeout(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		afterCreate bool
		wantBatches int
	}{
		{"before create", false, 0},
		{"after create", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := setup(t, sinchsim.Config{})
			// Far longer than the test may take: only the client leaving
			// ends the hang, and srv.Close in cleanup waits for that.
			e.sim.Inject(sinchsim.Fault{Hang: time.Hour, AfterCreate: tt.afterCreate})

			resp, err := e.try(t, request{
				method:  http.MethodPost,
				url:     e.api + "/batches",
				body:    withRef("job-hang"),
				timeout: 200 * time.Millisecond,
			})
			require.Error(t, err, "no answer expected, got %+v", resp)
			var netErr net.Error
			require.True(t, errors.As(err, &netErr) && netErr.Timeout(), "want a timeout, got %v", err)

			require.Equal(t, 1, e.sim.Posts())
			require.Zero(t, e.sim.PendingFaults())
			if tt.wantBatches > 0 {
				// Created before the hang began; Eventually only covers a
				// slow scheduler, not a race in the simulator.
				require.Eventually(t, func() bool {
					return len(e.sim.Batches()) == tt.wantBatches
				}, 5*time.Second, 10*time.Millisecond)
			} else {
				require.Empty(t, e.sim.Batches())
			}
		})
	}
}

func TestHangThenNormalAnswer(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	e.sim.Inject(sinchsim.Fault{Hang: 20 * time.Millisecond})

	start := time.Now()
	resp := e.post(t, validRequest())
	require.Equal(t, http.StatusCreated, resp.status)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
}

func TestFailRate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		failStatus int
		want       int
		wantCode   string
	}{
		{"default status", 0, http.StatusServiceUnavailable, "service_unavailable"},
		{"custom status", http.StatusTooManyRequests, http.StatusTooManyRequests, "too_many_requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := setup(t, sinchsim.Config{FailRate: 1, FailStatus: tt.failStatus})
			for range 5 {
				resp := e.post(t, validRequest())
				require.Equal(t, tt.want, resp.status)
				code, _ := resp.errorBody(t)
				require.Equal(t, tt.wantCode, code)
			}
			require.Equal(t, 5, e.sim.Posts())
			require.Empty(t, e.sim.Batches())

			// A pending fault, even a normal one, wins over FailRate.
			e.sim.Inject(sinchsim.Fault{})
			require.Equal(t, http.StatusCreated, e.post(t, validRequest()).status)

			// GETs never fail by FailRate.
			require.Equal(t, http.StatusOK, e.get(t, "/batches").status)
		})
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{Latency: 30 * time.Millisecond})

	for _, do := range []func() int{
		func() int { return e.post(t, validRequest()).status },
		func() int { return e.get(t, "/batches").status },
	} {
		start := time.Now()
		require.Less(t, do(), 300)
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	}
}

func TestLatencyEndsWhenClientLeaves(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{Latency: time.Hour})

	resp, err := e.try(t, request{
		method:  http.MethodPost,
		url:     e.api + "/batches",
		body:    validRequest(),
		timeout: 100 * time.Millisecond,
	})
	require.Error(t, err, "no answer expected, got %+v", resp)
	require.Equal(t, 1, e.sim.Posts())
	require.Empty(t, e.sim.Batches())
	// srv.Close in cleanup returns only once the handler has given up.
}

func TestInjectPanicsOnBadFault(t *testing.T) {
	t.Parallel()

	sim := sinchsim.New(sinchsim.Config{})
	for _, f := range []sinchsim.Fault{
		{Status: 99},
		{Status: 600},
		{Status: 503, RetryAfter: -time.Second},
		{Hang: -time.Second},
	} {
		require.Panics(t, func() { sim.Inject(f) }, "%+v", f)
	}
	require.Zero(t, sim.PendingFaults())
}

func TestFaultJSON(t *testing.T) {
	t.Parallel()

	in := []sinchsim.Fault{
		{Status: 503, RetryAfter: 2 * time.Second},
		{Status: 429, Code: "c", Text: "t"},
		{Hang: 1500 * time.Millisecond, AfterCreate: true},
		{},
	}
	raw, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `[
		{"status":503,"retry_after":"2s"},
		{"status":429,"code":"c","text":"t"},
		{"hang":"1.5s","after_create":true},
		{}
	]`, string(raw))

	var out []sinchsim.Fault
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, in, out)

	for _, bad := range []string{
		`{"status":503,"retryAfter":"2s"}`,
		`{"hang":"soon"}`,
		`{"hang":"-1s"}`,
		`{"hang":5}`,
		`{"status":700}`,
	} {
		var f sinchsim.Fault
		require.Error(t, json.Unmarshal([]byte(bad), &f), bad)
	}
}
