package sinchsim_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	batches := "/xms/v1/" + plan + "/batches"
	tests := []struct {
		name       string
		path       string // from the server root
		auth       string
		noAuth     bool
		wantStatus int
		wantEmpty  bool
	}{
		{name: "valid", path: batches, wantStatus: http.StatusOK},
		{name: "lowercase scheme", path: batches, auth: "bearer " + token, wantStatus: http.StatusOK},
		{name: "no header", path: batches, noAuth: true, wantStatus: http.StatusUnauthorized},
		{name: "wrong token", path: batches, auth: "Bearer nope", wantStatus: http.StatusUnauthorized},
		{name: "basic scheme", path: batches, auth: "Basic " + token, wantStatus: http.StatusUnauthorized},
		{name: "bare token", path: batches, auth: token, wantStatus: http.StatusUnauthorized},
		{name: "wrong plan", path: "/xms/v1/other/batches", wantStatus: http.StatusNotFound, wantEmpty: true},
		{
			name: "wrong plan before auth", path: "/xms/v1/other/batches", noAuth: true,
			wantStatus: http.StatusNotFound, wantEmpty: true,
		},
		{
			name: "unknown resource", path: "/xms/v1/" + plan + "/groups",
			wantStatus: http.StatusNotFound, wantEmpty: true,
		},
		{name: "trailing slash", path: batches + "/", wantStatus: http.StatusNotFound, wantEmpty: true},
		{name: "too deep", path: batches + "/x/delivery_report", wantStatus: http.StatusNotFound, wantEmpty: true},
		{name: "root", path: "/", wantStatus: http.StatusNotFound, wantEmpty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			resp := e.do(t, request{
				method: http.MethodGet,
				url:    e.srv.URL + tt.path,
				auth:   tt.auth,
				noAuth: tt.noAuth,
			})
			require.Equal(t, tt.wantStatus, resp.status, "body: %s", resp.body)
			if tt.wantEmpty {
				require.Empty(t, resp.body)
			}
			if tt.wantStatus == http.StatusUnauthorized {
				require.NotContains(t, resp.header.Get("Content-Type"), "json")
			}
		})
	}
}

func TestUnauthorizedPostIsNotCounted(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	resp := e.do(t, request{
		method: http.MethodPost,
		url:    e.api + "/batches",
		body:   validRequest(),
		auth:   "Bearer nope",
	})
	require.Equal(t, http.StatusUnauthorized, resp.status)
	require.Zero(t, e.sim.Posts())
	require.Empty(t, e.sim.Batches())
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPut, "/batches", "GET, POST"},
		{http.MethodDelete, "/batches", "GET, POST"},
		{http.MethodDelete, "/batches/01HF4WG1TAVS351YYD7Q84K8HA", "GET"},
		{http.MethodPost, "/batches/01HF4WG1TAVS351YYD7Q84K8HA", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()

			resp := e.do(t, request{method: tt.method, url: e.api + tt.path})
			require.Equal(t, http.StatusMethodNotAllowed, resp.status)
			require.Equal(t, tt.allow, resp.header.Get("Allow"))
		})
	}
}

func TestContentType(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	tests := []struct {
		contentType string
		want        int
	}{
		{"-", http.StatusUnsupportedMediaType}, // no header at all
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/xml", http.StatusUnsupportedMediaType},
		{"application/json-patch+json", http.StatusUnsupportedMediaType},
		{"application/json; =broken", http.StatusUnsupportedMediaType},
		{"application/json", http.StatusCreated},
		{"application/json; charset=utf-8", http.StatusCreated},
		{"Application/JSON", http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			t.Parallel()

			resp := e.do(t, request{
				method:      http.MethodPost,
				url:         e.api + "/batches",
				body:        validRequest(),
				contentType: tt.contentType,
			})
			require.Equal(t, tt.want, resp.status, "body: %s", resp.body)
		})
	}
}

func TestNewPanicsOnBadConfig(t *testing.T) {
	t.Parallel()

	tests := map[string]sinchsim.Config{
		"fail rate above 1":   {FailRate: 1.5},
		"negative fail rate":  {FailRate: -0.1},
		"fail status 42":      {FailStatus: 42},
		"negative latency":    {Latency: -1},
		"negative max length": {MaxClientReference: -1},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Panics(t, func() { sinchsim.New(cfg) })
		})
	}
}

func TestZeroConfigDefaults(t *testing.T) {
	t.Parallel()

	sim := sinchsim.New(sinchsim.Config{})
	srv := newServer(t, sim)

	e := &env{sim: sim, srv: srv, api: srv.URL + "/xms/v1/" + sinchsim.DefaultServicePlanID, client: srv.Client()}
	resp := e.do(t, request{method: http.MethodGet, url: e.api + "/batches", auth: "Bearer " + sinchsim.DefaultToken})
	require.Equal(t, http.StatusOK, resp.status)
}
