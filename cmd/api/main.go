// Command api serves mmsgate's HTTP API. It is configured by environment
// variables; see the README.
package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/app"
	"github.com/mmsgate/mmsgate/internal/config"
)

func main() {
	app.Main("api", config.LoadAPI, func(ctx context.Context, cfg config.API, log zerolog.Logger) error {
		return app.RunAPI(ctx, cfg, log, nil)
	})
}
