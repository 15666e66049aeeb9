// Package logging builds the structured logger of the services and of any Go
// program that wants the controller's log lines: a level (error, warn, info,
// debug), a format (simple text, or json) and one or more transports
// (console = stderr, file:<path>). It must never log secrets: callers pass
// ids, never tokens or keys.
//
// The original controller exports a Logger class configured with
// {level, format, transports}. Its Go form is a *slog.Logger: log/slog is the
// standard library's structured logger, so a logger made here plugs into
// every library that takes one (slog.SetDefault, http.Server.ErrorLog via
// slog.NewLogLogger, OpenTelemetry bridges), carries key-value attributes
// instead of formatted strings, and needs no type of ours in any signature.
// Config keeps the original's three fields; New turns them into a handler
// (one per transport, fanned out with slog.NewMultiHandler when there are
// several).
package logging

import (
	"errors"
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

// The formats (LOG_FORMAT).
const (
	FormatSimple = "simple"
	FormatJSON   = "json"
)

// The transports (LOG_TRANSPORTS): TransportConsole writes to stderr;
// TransportFilePrefix followed by a path appends to that file (mode 0600,
// created when missing).
const (
	TransportConsole    = "console"
	TransportFilePrefix = "file:"
)

// Config configures a logger: Level, Format ("simple" or "json"; empty is
// simple) and Transports (empty is console alone).
type Config struct {
	Level      Level    `json:"level"`
	Format     string   `json:"format"`
	Transports []string `json:"transports,omitempty"`
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

// CheckFormat reports whether f is a known format.
func CheckFormat(f string) error {
	switch strings.ToLower(f) {
	case FormatJSON, FormatSimple, "text", "":
		return nil
	}
	return fmt.Errorf("unknown log format %q (want simple or json)", f)
}

// CheckTransports reports every transport that is neither console nor
// file:<path>, and a transport given twice.
func CheckTransports(ts []string) error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range ts {
		t = strings.TrimSpace(t)
		switch {
		case t == TransportConsole:
		case strings.HasPrefix(t, TransportFilePrefix):
			if strings.TrimPrefix(t, TransportFilePrefix) == "" {
				errs = append(errs, fmt.Errorf("transport %q names no file (want file:<path>)", t))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown transport %q (want console or file:<path>)", t))
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("transport %q given twice", t))
		}
		seen[t] = true
	}
	return errors.Join(errs...)
}

// New returns the logger cfg describes. Files it opens stay open for the
// life of the process (a service logs until it exits); use Open to close them.
func New(cfg Config) (*slog.Logger, error) {
	l, _, err := Open(cfg)
	return l, err
}

// Open is New that also returns what closes the files the transports opened.
func Open(cfg Config) (*slog.Logger, io.Closer, error) {
	if err := CheckTransports(cfg.Transports); err != nil {
		return nil, nil, err
	}
	ts := cfg.Transports
	if len(ts) == 0 {
		ts = []string{TransportConsole}
	}
	var files closers
	var ws []io.Writer
	for _, t := range ts {
		t = strings.TrimSpace(t)
		if t == TransportConsole {
			ws = append(ws, os.Stderr)
			continue
		}
		path := strings.TrimPrefix(t, TransportFilePrefix)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			_ = files.Close()
			return nil, nil, fmt.Errorf("logging: transport %s: %w", t, err)
		}
		files = append(files, f)
		ws = append(ws, f)
	}
	l, err := NewTo(cfg, ws...)
	if err != nil {
		_ = files.Close()
		return nil, nil, err
	}
	return l, files, nil
}

// NewTo returns a logger writing cfg's level and format to every w (its
// Transports are ignored): one handler per writer, fanned out when several.
// A record logged with a context carrying a span gets trace_id and span_id
// (WithTrace).
func NewTo(cfg Config, ws ...io.Writer) (*slog.Logger, error) {
	lvl, err := ParseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	if err := CheckFormat(cfg.Format); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	hs := make([]slog.Handler, 0, len(ws))
	for _, w := range ws {
		if strings.EqualFold(cfg.Format, FormatJSON) {
			hs = append(hs, slog.NewJSONHandler(w, opts))
		} else {
			hs = append(hs, slog.NewTextHandler(w, opts))
		}
	}
	switch len(hs) {
	case 0:
		return Discard(), nil
	case 1:
		return slog.New(WithTrace(hs[0])), nil
	}
	return slog.New(WithTrace(slog.NewMultiHandler(hs...))), nil
}

// Discard is a logger that writes nothing, for tests.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type closers []*os.File

func (c closers) Close() error {
	var errs []error
	for _, f := range c {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
