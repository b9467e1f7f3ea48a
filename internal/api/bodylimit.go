package api

import (
	"io"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// bodyLimit caps request bodies at n bytes. Given to e.Use it sets the
// limit of every route; given to one route as well, it replaces that limit
// for the route, so a bulk endpoint can take larger bodies than the rest:
//
//	e.POST("/api/mms/suppressions", s.importSuppressions, withBodyLimit(mw, cfg.bulkBodyLimit())...)
//
// The limit holds when the body is read, which is why the route's own
// limit can still take the place of the global one: a Content-Length over
// the limit fails the first read at once, without reading anything, and a
// body sent without a length fails as it passes the limit. Either way the
// read returns an *http.MaxBytesError, which the error handler answers with
// 413 body_too_large, and net/http reads no more of the body. A handler
// that never reads the body is not troubled by its size.
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if b, ok := req.Body.(*limitedBody); ok && b.r == nil {
				b.limit = n // a route's own limit, before anything was read
				return next(c)
			}
			req.Body = &limitedBody{body: req.Body, w: c.Response().Writer, length: req.ContentLength, limit: n}
			return next(c)
		}
	}
}

// withBodyLimit returns the route middleware mw followed by a body limit of
// n bytes, leaving mw itself as it was.
func withBodyLimit(mw []echo.MiddlewareFunc, n int64) []echo.MiddlewareFunc {
	return append(slices.Clip(mw), bodyLimit(n))
}

// bulkBodyLimit is the body limit of bulk endpoints.
func (c Config) bulkBodyLimit() int64 {
	if c.MaxBulkBodyBytes > 0 {
		return c.MaxBulkBodyBytes
	}
	return max(DefaultMaxBulkBodyBytes, c.MaxBodyBytes)
}

// limitedBody applies the limit in force when the body is first read.
type limitedBody struct {
	body   io.ReadCloser
	w      http.ResponseWriter
	length int64 // the request's Content-Length; -1 when unknown
	limit  int64
	r      io.ReadCloser // the limiting reader, from the first read on
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.r == nil {
		if b.length > b.limit {
			return 0, &http.MaxBytesError{Limit: b.limit}
		}
		// With net/http's own writer, going over the limit also tells the
		// server to close the connection rather than read on.
		b.r = http.MaxBytesReader(b.w, b.body, b.limit)
	}
	return b.r.Read(p)
}

func (b *limitedBody) Close() error { return b.body.Close() }
