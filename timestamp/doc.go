// Package timestamp enforces the freshness window on a signed timestamp.
//
// A request is fresh when its signed timestamp lies in
// [now - Tolerance, now + FutureSkew]. The clock is never read here: callers
// pass the current time, so the window is deterministic under test.
package timestamp
