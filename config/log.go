package config

import (
	"errors"
	"log/slog"
)

// Log configures the binary's logs.
type Log struct {
	// Level is the least severe level written: "debug", "info" (default),
	// "warn" or "error". Access and rejection lines are info.
	Level string `yaml:"level"`
	// Format is "json" (default: one JSON object per line) or "text"
	// (key=value pairs, for people).
	Format string `yaml:"format"`
	// Access writes one line per request. Default true. Rejections are
	// logged without it.
	Access *bool `yaml:"access"`
	// RejectionsPerSecond bounds the rejection lines written per second
	// (with a burst of as many); those past it are dropped and counted in
	// replayguard_log_dropped_total. Default 100; 0: no bound.
	RejectionsPerSecond *int `yaml:"rejections_per_second"`
}

// Defaults of Log.
const (
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "json"
	DefaultRejectionsPerSecond = 100
)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// WithDefaults returns l with every unset field at its default.
func (l Log) WithDefaults() Log {
	if l.Level == "" {
		l.Level = DefaultLogLevel
	}
	if l.Format == "" {
		l.Format = DefaultLogFormat
	}
	if l.Access == nil {
		access := true
		l.Access = &access
	}
	if l.RejectionsPerSecond == nil {
		n := DefaultRejectionsPerSecond
		l.RejectionsPerSecond = &n
	}
	return l
}

// Validate checks l (after WithDefaults), naming the field of each
// problem.
func (l Log) Validate() error {
	var errs []error
	if _, ok := logLevels[l.Level]; !ok {
		errs = append(errs, fieldErr("log.level", "want debug, info, warn or error, got %q", l.Level))
	}
	if l.Format != "json" && l.Format != "text" {
		errs = append(errs, fieldErr("log.format", "want json or text, got %q", l.Format))
	}
	if l.RejectionsPerSecond != nil && *l.RejectionsPerSecond < 0 {
		errs = append(errs, fieldErr("log.rejections_per_second", "must be 0 (no bound) or more, got %d", *l.RejectionsPerSecond))
	}
	return errors.Join(errs...)
}

// SlogLevel is Level as a slog.Level; info when Level is not one.
func (l Log) SlogLevel() slog.Level {
	return logLevels[l.Level]
}
