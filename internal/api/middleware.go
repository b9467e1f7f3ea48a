package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/metrics"
)

const (
	ctxLogger = "mmsgate.logger"
	ctxKeyID  = "mmsgate.key_id"
	ctxJobID  = "mmsgate.job_id"
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes the caller's X-Request-ID when it is sane, or makes one,
// echoes it, and gives the request a logger that carries it.
func requestID(log zerolog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !requestIDPattern.MatchString(id) {
				id = strings.ToLower(ulid.Make().String())
			}
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			c.Set(ctxLogger, log.With().Str("request_id", id).Logger())
			return next(c)
		}
	}
}

// reqLog returns the request's logger.
func reqLog(c echo.Context, fallback zerolog.Logger) *zerolog.Logger {
	if l, ok := c.Get(ctxLogger).(zerolog.Logger); ok {
		return &l
	}
	return &fallback
}

// accessLog writes one line per request. It names the route pattern, not
// the path, and never the query, headers or body.
// It also counts the request in m.
func accessLog(log zerolog.Logger, m *metrics.API) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}

			status := c.Response().Status
			l := reqLog(c, log)
			ev := l.Info()
			if status >= 500 {
				ev = l.Warn()
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			took := time.Since(start)
			m.Request(route, c.Request().Method, status, took)
			ev = ev.Str("method", c.Request().Method).Str("route", route).Int("status", status).
				Dur("duration_ms", took).Int64("bytes_out", c.Response().Size)
			if k, ok := c.Get(ctxKeyID).(string); ok {
				ev = ev.Str("key_id", k)
			}
			if j, ok := c.Get(ctxJobID).(string); ok {
				ev = ev.Str("job_id", j)
			}
			ev.Msg("request")
			return nil
		}
	}
}

// securityHeaders sets headers that suit a JSON API; the queue UI, which
// serves its own scripts, gets all but the content policy.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(c.Request().URL.Path, "/ops") {
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// keyring holds the accepted API keys as SHA-256 digests, so that comparing
// takes the same time whatever the length or content of the key offered.
type keyring struct{ digests [][sha256.Size]byte }

func newKeyring(keys []string) keyring {
	var k keyring
	for _, key := range keys {
		if key = strings.TrimSpace(key); key != "" {
			k.digests = append(k.digests, sha256.Sum256([]byte(key)))
		}
	}
	return k
}

// match reports whether key is one of the ring's; it checks every key, so
// the time taken does not say which one matched.
func (k keyring) match(key string) bool {
	d := sha256.Sum256([]byte(key))
	found := 0
	for i := range k.digests {
		found |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return found == 1 && key != ""
}

// keyID is a short, stable, non-secret name for a key, for logs and rate
// limits.
func keyID(key string) string {
	d := sha256.Sum256([]byte("mmsgate-key-id:" + key))
	return hex.EncodeToString(d[:6])
}

// presentedKey reads X-API-Key, or else a Bearer token.
func presentedKey(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

func authenticate(ring keyring) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key := presentedKey(c.Request())
			if !ring.match(key) {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="mmsgate"`)
				return newError(http.StatusUnauthorized, "unauthorized",
					"missing or invalid API key: send it in X-API-Key or Authorization: Bearer")
			}
			c.Set(ctxKeyID, keyID(key))
			return next(c)
		}
	}
}

// rateLimit counts each key's requests in Redis, so the limit holds across
// every API process. If Redis cannot answer, the answer is 503 at once: the
// handler would meet the same Redis, and waiting for it twice would double
// the time a client waits for its 503.
func rateLimit(limiter *redis_rate.Limiter, limit redis_rate.Limit, timeout time.Duration,
	log zerolog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id, _ := c.Get(ctxKeyID).(string)
			ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
			res, err := limiter.Allow(ctx, "mmsgate:ratelimit:api:{"+id+"}", limit)
			cancel()
			if err != nil {
				reqLog(c, log).Warn().Err(err).Msg("rate limiter cannot reach redis")
				return errUnavailable()
			}

			h := c.Response().Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(limit.Rate))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
			if res.Allowed == 0 {
				wait := int((res.RetryAfter + time.Second - 1) / time.Second)
				return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
					Message: "too many requests for this API key", RetryAfter: max(wait, 1)}
			}
			return next(c)
		}
	}
}

// basicAuth guards the queue UI with its own credentials.
func basicAuth(user, password string) echo.MiddlewareFunc {
	wantU, wantP := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u, p, ok := c.Request().BasicAuth()
			gotU, gotP := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			okU := subtle.ConstantTimeCompare(gotU[:], wantU[:])
			okP := subtle.ConstantTimeCompare(gotP[:], wantP[:])
			if !ok || okU&okP != 1 {
				c.Response().Header().Set("WWW-Authenticate", `Basic realm="mmsgate ops", charset="UTF-8"`)
				return newError(http.StatusUnauthorized, "unauthorized", "operator credentials required")
			}
			return next(c)
		}
	}
}
