// Command worker sends queued MMS jobs to Sinch. It is configured by
// environment variables; see the README.
package main

import (
	"github.com/mmsgate/mmsgate/internal/app"
	"github.com/mmsgate/mmsgate/internal/config"
)

func main() {
	app.Main("worker", config.LoadWorker, app.RunWorker)
}
