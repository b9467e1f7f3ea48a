package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/media"
)

// mediaServer serves files on 127.0.0.1 by path: /ok.jpg, /big.mp4 (over
// the warning threshold), /gone.jpg (404), /down.jpg (503), /page.html
// (text/html), /to?u=URL (a redirect to URL). It counts requests by path.
type mediaServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func startMediaServer(t *testing.T) *mediaServer {
	t.Helper()
	m := &mediaServer{hits: map[string]int{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.hits[r.URL.Path]++
		m.mu.Unlock()
		serveFile := func(ct string, n int) { fileHeaders(w, ct, n) }
		switch r.URL.Path {
		case "/ok.jpg":
			serveFile("image/jpeg", 48213)
		case "/big.mp4":
			serveFile("video/mp4", 3_000_000)
		case "/page.html":
			serveFile("text/html; charset=utf-8", 512)
		case "/down.jpg":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/to":
			http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(m.Close)
	require.True(t, strings.HasPrefix(m.URL, "http://127.0.0.1:"))
	return m
}

// fileHeaders answers as a file server does to HEAD: 200 with the file's
// type and length, no body.
func fileHeaders(w http.ResponseWriter, contentType string, length int) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(length))
	w.WriteHeader(http.StatusOK)
}

func (m *mediaServer) count(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[path]
}

func (m *mediaServer) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.hits {
		n += v
	}
	return n
}

func (s *stack) checkMedia(t *testing.T, u string) map[string]any {
	t.Helper()
	body := `{"url":` + strconv.Quote(u) + `}`
	r := s.do(t, http.MethodPost, "/api/mms/media/check", "application/json", body)
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	return r.body
}

func TestMediaCheckEndpoint(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true, mediaAllow: "127.0.0.1"})
	m := startMediaServer(t)

	// A good file, every field of the answer.
	res := s.checkMedia(t, m.URL+"/ok.jpg")
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"cached", "checked_at", "content_length", "content_type", "final_url", "message",
		"ok", "reason", "status", "transient", "warnings"}, keys)
	require.Equal(t, true, res["ok"])
	require.Equal(t, "", res["reason"])
	require.Equal(t, false, res["transient"])
	require.Equal(t, []any{}, res["warnings"])
	require.Equal(t, "image/jpeg", res["content_type"])
	require.EqualValues(t, 48213, res["content_length"])
	require.Equal(t, m.URL+"/ok.jpg", res["final_url"])
	require.EqualValues(t, 200, res["status"])
	require.Equal(t, false, res["cached"])
	require.Equal(t, 1, m.count("/ok.jpg"))

	// Asked again: from Redis, without a request to the media server.
	res = s.checkMedia(t, m.URL+"/ok.jpg")
	require.Equal(t, true, res["ok"])
	require.Equal(t, true, res["cached"])
	require.Equal(t, 1, m.count("/ok.jpg"))
	require.EqualValues(t, 1, s.rdb.Exists(context.Background(), media.CacheKey(m.URL+"/ok.jpg")).Val())

	// Over the warning threshold: passes with a warning.
	res = s.checkMedia(t, m.URL+"/big.mp4")
	require.Equal(t, true, res["ok"])
	require.Equal(t, []any{media.WarnLarge}, res["warnings"])

	// Failures: the reason, whether to retry, what was seen.
	res = s.checkMedia(t, m.URL+"/gone.jpg")
	require.Equal(t, false, res["ok"])
	require.Equal(t, media.ReasonHTTPStatus, res["reason"])
	require.Equal(t, false, res["transient"])
	require.EqualValues(t, 404, res["status"])
	require.Contains(t, res["message"], "404")

	res = s.checkMedia(t, m.URL+"/page.html")
	require.Equal(t, media.ReasonContentType, res["reason"])
	require.Equal(t, "text/html; charset=utf-8", res["content_type"])

	for range 2 {
		res = s.checkMedia(t, m.URL+"/down.jpg")
		require.Equal(t, media.ReasonHTTPStatus, res["reason"])
		require.Equal(t, true, res["transient"])
		require.Equal(t, false, res["cached"])
	}
	require.Equal(t, 2, m.count("/down.jpg"), "a transient failure is not cached")

	// A redirect from the allowed host to a loopback address that is not
	// on the allow-list (127.0.0.1 only) is refused before connecting.
	before := m.total()
	to := strings.Replace(m.URL, "127.0.0.1", "127.0.0.2", 1) + "/ok.jpg"
	res = s.checkMedia(t, m.URL+"/to?u="+to)
	require.Equal(t, media.ReasonForbiddenAddress, res["reason"])
	require.Equal(t, to, res["final_url"])
	require.Contains(t, res["message"], "127.0.0.2")
	require.Equal(t, before+1, m.total(), "only the redirect itself was fetched")

	// Media URLs are not logged.
	require.NotContains(t, s.logs.String(), "/ok.jpg")
	require.NotContains(t, s.logs.String(), "/down.jpg")
}

func TestMediaCheckRequest(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	tests := []struct {
		name, contentType, body string
		status                  int
		code, field             string
	}{
		{"no url", "application/json", `{}`, 422, "validation_failed", "url"},
		{"null url", "application/json", `{"url":null}`, 422, "validation_failed", "url"},
		{"not a URL", "application/json", `{"url":"cat.jpg"}`, 422, "validation_failed", "url"},
		{"ftp", "application/json", `{"url":"ftp://203.0.113.9/cat.jpg"}`, 422, "validation_failed", "url"},
		{"credentials", "application/json", `{"url":"https://u:p@203.0.113.9/cat.jpg"}`, 422,
			"validation_failed", "url"},
		{"spaces", "application/json", `{"url":"https://203.0.113.9/a cat.jpg"}`, 422, "validation_failed", "url"},
		{"not a string", "application/json", `{"url":42}`, 400, "invalid_json", "url"},
		{"unknown field", "application/json", `{"url":"https://203.0.113.9/a.jpg","x":1}`, 400, "invalid_json", ""},
		{"not JSON", "application/json", `url=x`, 400, "invalid_json", ""},
		{"form", "application/x-www-form-urlencoded", `url=x`, 415, "unsupported_media_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, http.MethodPost, "/api/mms/media/check", tt.contentType, tt.body)
			require.Equal(t, tt.status, r.status, "%v", r.body)
			e := r.body["error"].(map[string]any)
			require.Equal(t, tt.code, e["code"])
			if tt.field != "" {
				fields := e["fields"].([]any)
				require.Equal(t, tt.field, fields[0].(map[string]any)["field"])
			}
		})
	}

	t.Run("no key", func(t *testing.T) {
		r := s.do(t, http.MethodPost, "/api/mms/media/check", "application/json", `{"url":"http://127.0.0.1/a.jpg"}`,
			"X-API-Key", "")
		require.Equal(t, http.StatusUnauthorized, r.status)
	})
	t.Run("GET", func(t *testing.T) {
		r := s.do(t, http.MethodGet, "/api/mms/media/check", "", "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status)
	})
}

// TestMediaCheckRefusesLoopbackByDefault: with MEDIA_ALLOWED_HOSTS empty,
// as in production, a media server on 127.0.0.1 is never contacted.
func TestMediaCheckRefusesLoopbackByDefault(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	m := startMediaServer(t)
	v6 := "http://[::1]:" + strings.TrimPrefix(m.URL, "http://127.0.0.1:") + "/ok.jpg"
	for _, u := range []string{m.URL + "/ok.jpg", v6} {
		res := s.checkMedia(t, u)
		require.Equal(t, false, res["ok"])
		require.Equal(t, media.ReasonForbiddenAddress, res["reason"], "%v", res)
		require.Equal(t, false, res["transient"])
		require.Contains(t, res["message"], "loopback")
		require.EqualValues(t, 0, res["status"])
		require.EqualValues(t, -1, res["content_length"])
	}
	require.Zero(t, m.total(), "the media server was never contacted")
}
