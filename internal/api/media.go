package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// MediaChecker checks a media URL as Sinch will fetch it; *media.Checker is
// one.
type MediaChecker interface {
	Check(ctx context.Context, rawURL string) media.Result
}

// checkMedia runs the media pre-flight on one URL: POST
// /api/mms/media/check with {"url": "..."}. The answer is 200 with the
// result, passing or not; only a URL that is not a URL at all is a 422.
func (s *server) checkMedia(c echo.Context) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	var req struct {
		URL string `json:"url"`
	}
	if err := mms.DecodeStrict(c.Request().Body, &req); err != nil {
		return badJSON(err)
	}
	if err := media.ValidateURL(req.URL); err != nil {
		return &mms.ValidationError{Fields: []mms.FieldError{{Field: "url", Message: err.Error()}}}
	}
	if s.deps.Media == nil {
		return newError(http.StatusServiceUnavailable, "unavailable", "media checks are not set up")
	}
	return c.JSON(http.StatusOK, s.deps.Media.Check(c.Request().Context(), req.URL))
}
