package replayguard

import (
	"time"

	"github.com/replayguard/replayguard/confval"
)

// Duration is a time.Duration that reads and writes as a string such as
// "5m", "200ms" or "24h" (see confval.Duration).
type Duration = confval.Duration

// ParseDuration parses a Go duration string, also accepting a whole number
// of days with the suffix "d" ("30d").
func ParseDuration(s string) (time.Duration, error) { return confval.ParseDuration(s) }
