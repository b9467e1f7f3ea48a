package sinchsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	plan  = "test-plan"
	token = "test-token"
)

// env is one simulator behind its own httptest server.
type env struct {
	sim    *sinchsim.Server
	srv    *httptest.Server
	api    string // base URL of the Sinch API: .../xms/v1/{plan}
	client *http.Client
}

// setup starts a simulator for cfg, filling in the test plan and token.
func setup(t *testing.T, cfg sinchsim.Config) *env {
	t.Helper()

	cfg.ServicePlanID = plan
	cfg.Token = token
	sim := sinchsim.New(cfg)
	t.Cleanup(sim.Close) // runs after srv.Close
	srv := newServer(t, sim)

	return &env{
		sim:    sim,
		srv:    srv,
		api:    srv.URL + "/xms/v1/" + plan,
		client: srv.Client(),
	}
}

// newServer serves h on loopback until the test ends.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()

	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// response is a fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request is what do sends. body is sent as is if it is a string, else
// encoded as JSON.
type request struct {
	method      string
	url         string
	body        any
	contentType string // default application/json when there is a body
	auth        string // Authorization header; default the valid bearer
	noAuth      bool
	timeout     time.Duration // client timeout; 0 for none
}

// do sends req and reads the whole answer.
func (e *env) do(t *testing.T, req request) *response {
	t.Helper()

	resp, err := e.try(t, req)
	require.NoError(t, err)
	return resp
}

// try is do for requests that may fail, such as those with a timeout.
func (e *env) try(t *testing.T, req request) (*response, error) {
	t.Helper()

	var rd io.Reader
	if req.body != nil {
		switch b := req.body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			raw, err := json.Marshal(b)
			require.NoError(t, err)
			rd = bytes.NewReader(raw)
		}
	}

	r, err := http.NewRequestWithContext(t.Context(), req.method, req.url, rd)
	require.NoError(t, err)
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		if ct != "-" {
			r.Header.Set("Content-Type", ct)
		}
	}
	switch {
	case req.noAuth:
	case req.auth != "":
		r.Header.Set("Authorization", req.auth)
	default:
		r.Header.Set("Authorization", "Bearer "+token)
	}

	client := e.client
	if req.timeout > 0 {
		c := *e.client
		c.Timeout = req.timeout
		client = &c
	}

	resp, err := client.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// post sends a send-batch request with valid auth.
func (e *env) post(t *testing.T, body any) *response {
	t.Helper()
	return e.do(t, request{method: http.MethodPost, url: e.api + "/batches", body: body})
}

// get sends an authorized GET to path under the API base.
func (e *env) get(t *testing.T, path string) *response {
	t.Helper()
	return e.do(t, request{method: http.MethodGet, url: e.api + path})
}

// errorBody decodes a Sinch {code, text} body.
func (r *response) errorBody(t *testing.T) (code, text string) {
	t.Helper()

	var b struct{ Code, Text string }
	require.NoError(t, json.Unmarshal(r.body, &b), "body: %s", r.body)
	return b.Code, b.Text
}

// batch decodes a batch answer.
func (r *response) batch(t *testing.T) sinchsim.Batch {
	t.Helper()

	var b sinchsim.Batch
	require.NoError(t, json.Unmarshal(r.body, &b), "body: %s", r.body)
	return b
}

// validRequest returns a fresh, valid MMS send request.
func validRequest() map[string]any {
	return map[string]any{
		"type": "mt_media",
		"from": "+12025550100",
		"to":   []any{"+12025550123"},
		"body": map[string]any{
			"url":     "https://cdn.example.com/mms/a.jpg",
			"message": "Your order has shipped",
		},
	}
}

// withRef returns a valid request carrying client_reference ref.
func withRef(ref string) map[string]any {
	req := validRequest()
	req["client_reference"] = ref
	return req
}

// clock is a settable time source for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
