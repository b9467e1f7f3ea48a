package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// openAPIDoc is the OpenAPI description of the API, served at
// /openapi.yaml. Its tests check it against the routes New registers and,
// in internal/app, its examples against the running API.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPIContentType is the media type the document is served with.
const OpenAPIContentType = "application/yaml"

// openAPICacheControl lets clients and proxies keep the document for a
// while: it changes only with a new release, and its ETag makes checking
// for a new one cheap.
const openAPICacheControl = "public, max-age=300"

// openAPIETag names this version of the document.
var openAPIETag = func() string {
	d := sha256.Sum256(openAPIDoc)
	return `"` + hex.EncodeToString(d[:12]) + `"`
}()

// serveOpenAPI answers GET and HEAD /openapi.yaml, with 304 when the
// client's If-None-Match names the current version.
func serveOpenAPI(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", openAPICacheControl) // in place of the API's no-store
	h.Set("ETag", openAPIETag)
	if etagMatches(c.Request().Header.Get("If-None-Match"), openAPIETag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, OpenAPIContentType, openAPIDoc)
}

// etagMatches reports whether an If-None-Match value names etag, compared
// weakly as RFC 9110 asks for this header.
func etagMatches(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}
