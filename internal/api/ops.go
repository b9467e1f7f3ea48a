package api

import (
	"encoding/json"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/logging"
	"github.com/mmsgate/mmsgate/internal/task"
)

// OpsConfig configures the queue UI.
type OpsConfig struct {
	User, Password string
	ReadWrite      bool
	Redis          asynq.RedisConnOpt
}

// mountOps serves asynqmon under /ops/ behind basic auth.
func mountOps(e *echo.Echo, cfg OpsConfig, log zerolog.Logger) {
	h := asynqmon.New(asynqmon.Options{
		RootPath:         "/ops",
		RedisConnOpt:     cfg.Redis,
		ReadOnly:         !cfg.ReadWrite,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(formatPayload),
		ResultFormatter: asynqmon.ResultFormatterFunc(func(_ string, b []byte) string {
			return logging.MaskNumbers(string(b))
		}),
	})
	g := e.Group("/ops", basicAuth(cfg.User, cfg.Password))
	g.Any("", echo.WrapHandler(h))
	g.Any("/*", echo.WrapHandler(h))
	e.Server.RegisterOnShutdown(func() { _ = h.Close() })
	log.Info().Bool("read_write", cfg.ReadWrite).Msg("queue UI served under /ops/")
}

// formatPayload shows send payloads as they are (they hold IDs, a count and
// a hash of the sender, no number or text)
// and masks anything that looks like a phone number in any other payload.
func formatPayload(taskType string, b []byte) string {
	if taskType == task.TypeSend {
		if p, err := task.DecodeSend(b); err == nil {
			out, _ := json.Marshal(p)
			return string(out)
		}
	}
	return logging.MaskNumbers(string(b))
}
