package sinchsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// control sends a request to the control API, without Sinch auth.
func (e *env) control(t *testing.T, method, path string, body any) *response {
	t.Helper()
	return e.do(t, request{method: method, url: e.srv.URL + "/_sim/" + path, body: body, noAuth: true})
}

func TestControlStats(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	for _, ref := range []string{"a", "a", "a", "b", "b", "c"} {
		require.Equal(t, http.StatusCreated, e.post(t, withRef(ref)).status)
	}
	require.Equal(t, http.StatusCreated, e.post(t, validRequest()).status) // no reference
	require.Equal(t, http.StatusBadRequest, e.post(t, `{`).status)

	resp := e.control(t, http.MethodGet, "stats", nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `{
		"posts": 8,
		"batches": 7,
		"client_references": 3,
		"duplicates": 3,
		"by_client_reference": {"a": 3, "b": 2},
		"pending_faults": 0
	}`, string(resp.body))
}

func TestControlFaults(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	resp := e.control(t, http.MethodPost, "faults",
		`[{"status":429,"retry_after":"2s"},{"status":503,"after_create":true},{}]`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.JSONEq(t, `{"pending":3}`, string(resp.body))

	resp = e.control(t, http.MethodGet, "faults", nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `[{"status":429,"retry_after":"2s"},{"status":503,"after_create":true},{}]`, string(resp.body))

	first := e.post(t, withRef("x"))
	require.Equal(t, http.StatusTooManyRequests, first.status)
	require.Equal(t, "2", first.header.Get("Retry-After"))
	require.Equal(t, http.StatusServiceUnavailable, e.post(t, withRef("x")).status)
	require.Equal(t, http.StatusCreated, e.post(t, withRef("x")).status)
	require.Equal(t, 2, e.sim.CountByClientReference("x"))

	for _, bad := range []string{
		`{"status":503}`,     // not an array
		`[{"status":503`,     // broken
		`[{"statuz":503}]`,   // misspelt field
		`[{"hang":"later"}]`, // bad duration
		`[{"hang":"-2s"}]`,
		`[{"status":42}]`,
		`[{"status":503},{"status":1000}]`, // nothing is queued
	} {
		resp := e.control(t, http.MethodPost, "faults", bad)
		require.Equal(t, http.StatusBadRequest, resp.status, bad)
		require.Contains(t, string(resp.body), "error")
	}
	require.Zero(t, e.sim.PendingFaults())
}

func TestControlConfig(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	resp := e.control(t, http.MethodGet, "config", nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `{"latency":"0s","fail_rate":0,"fail_status":503}`, string(resp.body))

	resp = e.control(t, http.MethodPut, "config", `{"fail_rate":1,"fail_status":502,"latency":"5ms"}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.JSONEq(t, `{"latency":"5ms","fail_rate":1,"fail_status":502}`, string(resp.body))
	require.Equal(t, http.StatusBadGateway, e.post(t, validRequest()).status)

	// A partial update keeps the other settings.
	resp = e.control(t, http.MethodPut, "config", `{"fail_rate":0}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `{"latency":"5ms","fail_rate":0,"fail_status":502}`, string(resp.body))
	require.Equal(t, http.StatusCreated, e.post(t, validRequest()).status)

	for _, bad := range []string{
		`{"fail_rate":1.5}`,
		`{"fail_rate":-1}`,
		`{"fail_status":99}`,
		`{"latency":"fast"}`,
		`{"latency":"-1s"}`,
		`{"latency":"1s","fail_rate":2}`, // nothing changes
		`{"failrate":1}`,
		`[]`,
	} {
		resp := e.control(t, http.MethodPut, "config", bad)
		require.Equal(t, http.StatusBadRequest, resp.status, bad)
	}

	resp = e.control(t, http.MethodGet, "config", nil)
	require.JSONEq(t, `{"latency":"5ms","fail_rate":0,"fail_status":502}`, string(resp.body))
}

func TestControlReset(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{Latency: time.Millisecond})
	require.Equal(t, http.StatusCreated, e.post(t, withRef("a")).status)
	require.Equal(t, http.StatusCreated, e.post(t, withRef("a")).status)
	e.sim.Inject(sinchsim.Fault{Status: 500})

	resp := e.control(t, http.MethodPost, "reset", nil)
	require.Equal(t, http.StatusNoContent, resp.status)

	require.Empty(t, e.sim.Batches())
	require.Zero(t, e.sim.Posts())
	require.Zero(t, e.sim.PendingFaults())
	require.Zero(t, e.sim.CountByClientReference("a"))

	var st sinchsim.Stats
	require.NoError(t, json.Unmarshal(e.control(t, http.MethodGet, "stats", nil).body, &st))
	require.Equal(t, sinchsim.Stats{ByClientReference: map[string]int{}}, st)

	// Settings survive a reset.
	resp = e.control(t, http.MethodGet, "config", nil)
	require.JSONEq(t, `{"latency":"1ms","fail_rate":0,"fail_status":503}`, string(resp.body))

	// The Go method does the same.
	require.Equal(t, http.StatusCreated, e.post(t, withRef("b")).status)
	e.sim.Reset()
	require.Empty(t, e.sim.Batches())
}

func TestControlRouting(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "stats", http.StatusMethodNotAllowed},
		{http.MethodGet, "reset", http.StatusMethodNotAllowed},
		{http.MethodDelete, "faults", http.StatusMethodNotAllowed},
		{http.MethodPost, "config", http.StatusMethodNotAllowed},
		{http.MethodGet, "nothing", http.StatusNotFound},
		{http.MethodGet, "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, e.control(t, tt.method, tt.path, nil).status)
		})
	}
}

// TestControlReportsRoundTrip: what GET /_sim/reports shows can be PUT back
// as it is, and changes nothing.
func TestControlReportsRoundTrip(t *testing.T) {
	sim := sinchsim.New(sinchsim.Config{ServicePlanID: "plan", Token: "tok",
		Reports: sinchsim.ReportSettings{WebhookSecret: "s3cret", Duplicate: true}})
	t.Cleanup(sim.Close)
	get := httptest.NewRecorder()
	sim.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/_sim/reports", nil))
	require.Equal(t, http.StatusOK, get.Code)
	put := httptest.NewRecorder()
	sim.ServeHTTP(put, httptest.NewRequest(http.MethodPut, "/_sim/reports", strings.NewReader(get.Body.String())))
	require.Equal(t, http.StatusOK, put.Code, put.Body.String())
	require.Equal(t, "s3cret", sim.Reports().WebhookSecret, "still signed")
	require.True(t, sim.Reports().Duplicate)
}
