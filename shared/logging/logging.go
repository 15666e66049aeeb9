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
)

// Level is the minimum level a logger writes (LOG_LEVEL).
type Level string

// The levels.
const (
	LevelError Level = "error"
	LevelWarn  Level = "warn"
	LevelInfo  Level = "info"
	LevelDebug Level = "debug"
)

// Config configures a logger: Level and Format ("json" or "simple").
type Config struct {
	Level  Level  `json:"level"`
	Format string `json:"format"`
}

// ParseLevel maps a Level to a slog level.
func ParseLevel(l Level) (slog.Level, error) {
	switch Level(strings.ToLower(string(l))) {
	case LevelError:
		return slog.LevelError, nil
	case LevelWarn, "warning":
		return slog.LevelWarn, nil
	case LevelInfo, "":
		return slog.LevelInfo, nil
	case LevelDebug:
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want error, warn, info or debug)", l)
}

// New returns a logger writing to stderr.
func New(cfg Config) (*slog.Logger, error) {
	return NewTo(os.Stderr, cfg)
}

// NewTo returns a logger writing to w.
func NewTo(w io.Writer, cfg Config) (*slog.Logger, error) {
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
