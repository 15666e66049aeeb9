// Package logging builds the services' structured logger on log/slog: a
// level (error, warn, info, debug) and a format (json, or simple text), to the
// console. It must never log secrets: callers pass ids, never tokens or keys.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// ParseLevel maps a LogLevel to a slog level.
func ParseLevel(l wire.LogLevel) (slog.Level, error) {
	switch wire.LogLevel(strings.ToLower(string(l))) {
	case wire.LogError:
		return slog.LevelError, nil
	case wire.LogWarn, "warning":
		return slog.LevelWarn, nil
	case wire.LogInfo, "":
		return slog.LevelInfo, nil
	case wire.LogDebug:
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want error, warn, info or debug)", l)
}

// New returns a logger writing to stderr.
func New(cfg wire.LoggerConfig) (*slog.Logger, error) {
	return NewTo(os.Stderr, cfg)
}

// NewTo returns a logger writing to w.
func NewTo(w io.Writer, cfg wire.LoggerConfig) (*slog.Logger, error) {
	lvl, err := ParseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(cfg.Format) {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "simple", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want json or simple)", cfg.Format)
}

// Discard is a logger that writes nothing, for tests.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
