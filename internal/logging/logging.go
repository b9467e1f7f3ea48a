// Package logging builds mmsgate's zerolog loggers and holds the helpers
// that keep personal data out of logs.
package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

var setGlobals sync.Once

// New returns a JSON logger at the given level ("debug", "info", "warn",
// "error") that writes to w, or to stderr when w is nil.
func New(level string, w io.Writer) zerolog.Logger {
	if w == nil {
		w = os.Stderr
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	setGlobals.Do(func() {
		// zerolog keeps these in package variables: set them once, before
		// any logger writes.
		zerolog.TimeFieldFormat = time.RFC3339Nano
		zerolog.DurationFieldUnit = time.Millisecond
		zerolog.DurationFieldInteger = false
	})
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// digits finds runs that could be phone numbers: six or more digits, with
// the separators people put between them.
var digits = regexp.MustCompile(`\+?\d[\d ().-]{4,}\d`)

// ipv4 matches a dotted address, which digits would otherwise take for a
// number written with dots.
var ipv4 = regexp.MustCompile(`^\d{1,3}(\.\d{1,3}){3}$`)

// minDigits is the fewest digits a phone number has.
const minDigits = 6

// MaskNumbers replaces every phone-number-like run in s (six or more
// digits, with separators) with a form that keeps only its last two digits,
// for text that may quote a request (Sinch's error text, for one). Dotted
// IPv4 addresses and short runs such as versions are left alone.
func MaskNumbers(s string) string {
	return digits.ReplaceAllStringFunc(s, func(m string) string {
		if ipv4.MatchString(m) || countDigits(m) < minDigits {
			return m
		}
		return MaskNumber(m)
	})
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// MaskNumber hides all but the last two digits of a phone number.
func MaskNumber(n string) string {
	var d []byte
	for i := 0; i < len(n); i++ {
		if n[i] >= '0' && n[i] <= '9' {
			d = append(d, n[i])
		}
	}
	if len(d) <= 2 {
		return "**"
	}
	return fmt.Sprintf("***%s", d[len(d)-2:])
}

// Asynq routes asynq's own log lines into a zerolog logger.
type Asynq struct{ L zerolog.Logger }

// Debug logs at debug level.
func (a Asynq) Debug(args ...any) { a.L.Debug().Msg(fmt.Sprint(args...)) }

// Info logs at info level.
func (a Asynq) Info(args ...any) { a.L.Info().Msg(fmt.Sprint(args...)) }

// Warn logs at warn level.
func (a Asynq) Warn(args ...any) { a.L.Warn().Msg(fmt.Sprint(args...)) }

// Error logs at error level.
func (a Asynq) Error(args ...any) { a.L.Error().Msg(fmt.Sprint(args...)) }

// Fatal logs and exits, as asynq expects of it.
func (a Asynq) Fatal(args ...any) { a.L.Fatal().Msg(fmt.Sprint(args...)) }

// Redis routes go-redis's internal log lines (dial failures and the like)
// into zerolog, so they come out as JSON with the rest.
type Redis struct{ L zerolog.Logger }

// Printf logs at warn level, but for the Sentinel client's notes on which
// primary it uses, which are news, not trouble: info.
func (r Redis) Printf(_ context.Context, format string, v ...any) {
	msg := MaskNumbers(fmt.Sprintf(format, v...))
	ev := r.L.Warn()
	if strings.HasPrefix(msg, "sentinel: selected addr") || strings.HasPrefix(msg, "sentinel: new master") {
		ev = r.L.Info()
	}
	ev.Str("component", "go-redis").Msg(msg)
}
