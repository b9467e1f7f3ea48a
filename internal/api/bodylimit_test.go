package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// TestBodyLimitPerRoute: the global limit holds on every route that does
// not set its own, and a route's own limit replaces it, larger or smaller.
func TestBodyLimitPerRoute(t *testing.T) {
	t.Parallel()

	e := echo.New()
	e.HTTPErrorHandler = errorHandler(zerolog.Nop())
	e.Use(bodyLimit(1024))
	readAll := func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, strconv.Itoa(len(b)))
	}
	// Spare capacity: each route must get its own copy, not share one.
	mw := make([]echo.MiddlewareFunc, 0, 4)
	e.POST("/default", readAll, mw...)
	e.POST("/bulk", readAll, withBodyLimit(mw, 4096)...)
	e.POST("/tiny", readAll, withBodyLimit(mw, 10)...)
	e.POST("/ignores", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })

	tests := []struct {
		path    string
		size    int
		chunked bool
		status  int
		limit   int
	}{
		{"/default", 1024, false, 200, 0},
		{"/default", 1025, false, 413, 1024},
		{"/default", 1025, true, 413, 1024},
		{"/bulk", 4096, false, 200, 0},
		{"/bulk", 4096, true, 200, 0},
		{"/bulk", 3000, false, 200, 0},
		{"/bulk", 4097, false, 413, 4096},
		{"/bulk", 100_000, true, 413, 4096},
		{"/tiny", 10, false, 200, 0},
		{"/tiny", 11, true, 413, 10},
		{"/ignores", 5000, false, 204, 0},
	}
	for _, tt := range tests {
		name := tt.path + " " + strconv.Itoa(tt.size)
		var body io.Reader = strings.NewReader(strings.Repeat("a", tt.size))
		if tt.chunked {
			body = io.MultiReader(body) // hides the length
		}
		req := httptest.NewRequest(http.MethodPost, tt.path, body)
		if tt.chunked {
			req.ContentLength = -1
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, tt.status, rec.Code, name)
		switch tt.status {
		case http.StatusOK:
			require.Equal(t, strconv.Itoa(tt.size), rec.Body.String(), name)
		case http.StatusRequestEntityTooLarge:
			var out map[string]Error
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), name)
			require.Equal(t, "body_too_large", out["error"].Code, name)
			require.Contains(t, out["error"].Message, strconv.Itoa(tt.limit), name)
		}
	}
	require.Empty(t, mw, "withBodyLimit leaves the route middleware alone")
}

func TestBulkBodyLimitDefault(t *testing.T) {
	t.Parallel()
	require.EqualValues(t, 5<<20, Config{MaxBodyBytes: 1 << 20, MaxBulkBodyBytes: 5 << 20}.bulkBodyLimit())
	require.EqualValues(t, DefaultMaxBulkBodyBytes, Config{MaxBodyBytes: 1 << 20}.bulkBodyLimit())
	require.EqualValues(t, 32<<20, Config{MaxBodyBytes: 32 << 20}.bulkBodyLimit(),
		"never below the limit of a single request")
}
