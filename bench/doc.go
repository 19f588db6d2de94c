// Package bench measures replayguard against its baselines in the same run:
// a bare net/http handler and the HMAC-SHA256 floor. `make bench` runs it
// with -count and prints benchstat tables and the goal ratios.
package bench
