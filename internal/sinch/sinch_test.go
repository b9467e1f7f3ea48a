package sinch_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinch"
)

func newClient(t *testing.T, url string, timeout time.Duration) *sinch.Client {
	t.Helper()
	c, err := sinch.New(sinch.Config{BaseURL: url, ServicePlanID: "plan1", Token: "tok", Timeout: timeout})
	require.NoError(t, err)
	return c
}

var batch = sinch.MediaBatch{
	To:              []string{"+12025550123"},
	From:            "+12025550100",
	Body:            sinch.MediaBody{URL: "https://cdn.example.com/a.jpg", Message: "hi"},
	ClientReference: "job-1",
}

func TestSendMediaRequestShape(t *testing.T) {
	t.Parallel()

	// The handler only records; the test goroutine checks.
	var (
		got     map[string]any
		gotReq  *http.Request
		bodyErr error
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotReq = r.Clone(context.Background())
		bodyErr = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"01HF4WG1TAVS351YYD7Q84K8HA","to":["12025550123"],"type":"mt_media",`+
			`"client_reference":"job-1","created_at":"2025-01-10T12:00:00.000Z","some_new_field":{"x":1}}`)
	}))
	t.Cleanup(srv.Close)

	b, err := newClient(t, srv.URL, time.Second).SendMedia(context.Background(), batch)
	require.NoError(t, err)
	require.NoError(t, bodyErr)
	require.Equal(t, http.MethodPost, gotReq.Method)
	require.Equal(t, "/xms/v1/plan1/batches", gotReq.URL.Path)
	require.Equal(t, "Bearer tok", gotReq.Header.Get("Authorization"))
	require.Equal(t, "application/json", gotReq.Header.Get("Content-Type"))
	require.Equal(t, "01HF4WG1TAVS351YYD7Q84K8HA", b.ID)
	require.Equal(t, http.StatusCreated, b.HTTPStatus)
	require.Equal(t, "mt_media", got["type"])
	require.Equal(t, []any{"+12025550123"}, got["to"])
	require.Equal(t, map[string]any{"url": "https://cdn.example.com/a.jpg", "message": "hi"}, got["body"])
	require.Equal(t, "job-1", got["client_reference"])
	require.NotContains(t, got, "parameters", "empty optional fields are left out")
}

// TestClassify covers every answer the reference lists, and the transport
// failures, with the action the worker must take for each.
func TestClassify(t *testing.T) {
	t.Parallel()

	tests := []struct {
		status     int
		body       string
		class      sinch.Class
		code       string
		retryAfter string
		wait       time.Duration
	}{
		{400, `{"code":"syntax_invalid_parameter_format","text":"bad msisdn"}`, sinch.Permanent,
			"syntax_invalid_parameter_format", "", 0},
		{400, `{"code":"syntax_constraint_violation","text":"to: too many"}`, sinch.Permanent,
			"syntax_constraint_violation", "", 0},
		{400, `{"timestamp":"x","status":400,"error":"Bad Request","path":"/x"}`, sinch.Permanent, "http_400", "", 0},
		{401, ``, sinch.Unauthorized, "http_401", "", 0},
		{403, `{"code":"missing_callback_url","text":"no url"}`, sinch.Permanent, "missing_callback_url", "", 0},
		{403, `{"code":"some_new_code","text":"?"}`, sinch.Permanent, "some_new_code", "", 0},
		{404, ``, sinch.Permanent, "http_404", "", 0},
		{405, ``, sinch.Permanent, "http_405", "", 0},
		{415, ``, sinch.Permanent, "http_415", "", 0},
		{429, ``, sinch.Throttled, "http_429", "7", 7 * time.Second},
		{429, `{"code":"too_many_requests","text":"slow down"}`, sinch.Throttled, "too_many_requests", "", 0},
		{500, `oops`, sinch.Transient, "http_500", "", 0},
		{502, `<html>bad gateway</html>`, sinch.Transient, "http_502", "", 0},
		{503, ``, sinch.Transient, "http_503", "3", 3 * time.Second},
		{504, ``, sinch.Transient, "http_504", "", 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+"/"+tt.code, func(t *testing.T) {
			t.Parallel()

			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			_, err := newClient(t, srv.URL, time.Second).SendMedia(context.Background(), batch)
			var se *sinch.Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.status, se.StatusCode)
			require.Equal(t, tt.class, sinch.Classify(err))
			require.Equal(t, tt.code, sinch.ReasonCode(err))
			require.Equal(t, tt.wait, se.RetryAfter)
			require.False(t, sinch.Ambiguous(err), "Sinch answered: the outcome is known")
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()

	t.Run("refused before sending", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		_, err = newClient(t, "http://"+addr, time.Second).SendMedia(context.Background(), batch)
		require.Equal(t, sinch.Transient, sinch.Classify(err))
		require.False(t, sinch.Ambiguous(err), "nothing reached Sinch")
		require.Equal(t, "network_error", sinch.ReasonCode(err))
	})

	t.Run("timeout after sending", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
		}))
		t.Cleanup(func() { close(release); srv.Close() })

		_, err := newClient(t, srv.URL, 100*time.Millisecond).SendMedia(context.Background(), batch)
		require.Equal(t, sinch.Transient, sinch.Classify(err))
		require.True(t, sinch.Ambiguous(err), "the batch may exist")
		require.Equal(t, "timeout", sinch.ReasonCode(err))
	})

	t.Run("2xx without id", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{}`)
		}))
		t.Cleanup(srv.Close)

		_, err := newClient(t, srv.URL, time.Second).SendMedia(context.Background(), batch)
		require.True(t, sinch.Ambiguous(err))
		require.Equal(t, "bad_answer", sinch.ReasonCode(err))
	})
}

func TestFindByClientReference(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, dateErr := time.Parse(time.RFC3339, r.URL.Query().Get("start_date"))
		if r.Method != http.MethodGet || r.URL.Path != "/xms/v1/plan1/batches" || dateErr != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("client_reference") != "job-1" {
			_, _ = io.WriteString(w, `{"page":0,"page_size":1,"count":0,"batches":[]}`)
			return
		}
		_, _ = io.WriteString(w,
			`{"page":0,"page_size":1,"count":1,"batches":[{"id":"B1","client_reference":"job-1"}]}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, time.Second)

	b, err := c.FindByClientReference(context.Background(), "job-1", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, "B1", b.ID)

	b, err = c.FindByClientReference(context.Background(), "job-2", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Nil(t, b)
}

func TestRetryAfterDate(t *testing.T) {
	t.Parallel()

	when := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", when)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)

	_, err := newClient(t, srv.URL, time.Second).SendMedia(context.Background(), batch)
	var se *sinch.Error
	require.True(t, errors.As(err, &se))
	require.InDelta(t, 30, se.RetryAfter.Seconds(), 2)
}
