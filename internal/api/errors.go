package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// Error is the body of every error answer:
// {"error":{"code":"...","message":"...","fields":[...]}}.
type Error struct {
	Status  int              `json:"-"`
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Fields  []mms.FieldError `json:"fields,omitempty"`
	// RetryAfter, when set, becomes a Retry-After header in seconds.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// errUnavailable is what a client sees when Redis is away or slow. Nothing
// was stored, so the request may simply be sent again.
func errUnavailable() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "the job store is unavailable; nothing was accepted, try again", RetryAfter: 1}
}

// statusCodes names the codes of the errors Echo itself raises.
var statusCodes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

// errorHandler turns every error a handler returns into the one JSON shape
// and logs only what a client cannot have caused.
func errorHandler(log zerolog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}

		var (
			out  *Error
			verr *mms.ValidationError
			he   *echo.HTTPError
			mbe  *http.MaxBytesError
		)
		switch {
		case errors.As(err, &out):
		case errors.As(err, &verr):
			out = &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
				Message: "the request has invalid fields", Fields: verr.Fields}
		case errors.As(err, &mbe):
			out = newError(http.StatusRequestEntityTooLarge, "body_too_large",
				"the body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
		case errors.As(err, &he):
			code, ok := statusCodes[he.Code]
			if !ok {
				code = "error"
			}
			out = newError(he.Code, code, http.StatusText(he.Code))
		default:
			reqLog(c, log).Error().Err(err).Str("route", c.Path()).Msg("request failed")
			out = newError(http.StatusInternalServerError, "internal_error", "internal error")
		}

		if out.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(out.RetryAfter))
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(out.Status)
			return
		}
		_ = c.JSON(out.Status, map[string]*Error{"error": out})
	}
}
