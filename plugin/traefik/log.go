package traefik

import (
	"context"
	"fmt"
	"log"
	"log/slog"
)

// newLogger is the logger of middleware name. Traefik's interpreter gives a
// plugin two of Traefik's own loggers: what the standard log package writes
// (log.Writer) is logged at ERROR, what fmt.Print writes at DEBUG.
// Warnings (a request passed under fail_mode open) and errors (a store that
// failed) go to the first, so Traefik's default level shows them, with
// their own level in the line; the rest to the second.
func newLogger(name string) *slog.Logger {
	return slog.New(&levelSplit{
		low:  slog.NewTextHandler(debugStream{}, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: dropTime}),
		high: slog.NewTextHandler(errorStream{}, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime}),
	}).With(slog.String("plugin", "replayguard"), slog.String("middleware", name))
}

// dropTime leaves the time out of a line: Traefik stamps its own.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// errorStream writes to the log package's output, looked up at each write:
// under Traefik, its ERROR logger.
type errorStream struct{}

func (errorStream) Write(p []byte) (int, error) { return log.Writer().Write(p) }

// debugStream writes through fmt.Print: under Traefik, its DEBUG logger.
type debugStream struct{}

func (debugStream) Write(p []byte) (int, error) {
	if _, err := fmt.Print(string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// levelSplit sends records of slog.LevelWarn and above to high, the rest
// to low.
type levelSplit struct {
	low, high slog.Handler
}

func (h *levelSplit) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelWarn {
		return h.high.Enabled(ctx, l)
	}
	return h.low.Enabled(ctx, l)
}

func (h *levelSplit) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.high.Handle(ctx, r)
	}
	return h.low.Handle(ctx, r)
}

func (h *levelSplit) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &levelSplit{low: h.low.WithAttrs(attrs), high: h.high.WithAttrs(attrs)}
}

func (h *levelSplit) WithGroup(name string) slog.Handler {
	return &levelSplit{low: h.low.WithGroup(name), high: h.high.WithGroup(name)}
}
