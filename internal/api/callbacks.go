package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/reports"
)

// ReportsConfig sets up the endpoint that takes Sinch's delivery reports.
type ReportsConfig struct {
	// Path is where Sinch posts, followed by "/" and URLSecret.
	Path      string
	URLSecret string
	// WebhookSecret, when set, is the service plan's HMAC secret: every
	// callback must carry a valid signature.
	WebhookSecret string
}

// Sinch's signature headers.
const (
	hdrSignature = "X-Sinch-Webhook-Signature"
	hdrNonce     = "X-Sinch-Webhook-Signature-Nonce"
	hdrTimestamp = "X-Sinch-Webhook-Signature-Timestamp"
)

// takeReports stores one delivery-report callback. Sinch drops a callback
// that gets a 4xx and retries on a 5xx, so only what can never succeed is a
// 4xx (a wrong secret, a bad signature, a body that is not a report); a
// report that could not be stored is a 503, and a 2xx comes only once it is
// stored.
func (s *server) takeReports(c echo.Context) error {
	cfg := s.cfg.Reports
	if subtle.ConstantTimeCompare([]byte(c.Param("secret")), []byte(cfg.URLSecret)) != 1 {
		return echo.ErrNotFound
	}
	body, err := readBody(c.Request().Body)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret != "" && !signed(c.Request().Header, body, cfg.WebhookSecret) {
		reqLog(c, s.deps.Log).Warn().Msg("delivery report refused: missing or wrong signature")
		return newError(http.StatusUnauthorized, "bad_signature",
			"the callback's "+hdrSignature+" does not match its body")
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	out, err := reports.Take(ctx, s.deps.Store, body, time.Now())
	log := reqLog(c, s.deps.Log)
	switch {
	case errors.Is(err, reports.ErrMalformed):
		log.Warn().Err(err).Msg("delivery report refused")
		return invalid("invalid_report", "the body is not a delivery report", "body", err.Error())
	case err != nil:
		log.Warn().Err(err).Msg("delivery report not stored; Sinch will send it again")
		return errUnavailable()
	}
	s.deps.Metrics.Jobs().DeliveryReports(out.ByStatus)
	log.Info().Str("type", out.Type).Str("job_id", out.JobID).Int("stored", out.Stored).
		Int("repeats", out.Repeats).Bool("pending", out.Pending).Bool("ignored", out.Ignored).
		Msg("delivery report taken")
	return c.JSON(http.StatusOK, map[string]any{"stored": out.Stored, "repeats": out.Repeats,
		"pending": out.Pending, "ignored": out.Ignored})
}

// signed checks Sinch's HMAC signature: Base64(HMAC-SHA256(secret,
// body + "." + nonce + "." + timestamp)).
func signed(h http.Header, body []byte, secret string) bool {
	sig, nonce, ts := h.Get(hdrSignature), h.Get(hdrNonce), h.Get(hdrTimestamp)
	if sig == "" || nonce == "" || ts == "" {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	m.Write([]byte("." + nonce + "." + ts))
	return hmac.Equal(m.Sum(nil), want)
}
