// Package replayguard is a request-freshness and exactly-once layer for HTTP
// APIs and webhook receivers.
//
// Every request runs through one pipeline:
//
//	body limit -> signature -> timestamp window -> nonce (replay) -> upstream
//
// New builds a Guard from a Config. Guard.Middleware wraps a net/http
// handler; Guard.Verify runs the same checks on a signature.Request outside
// HTTP, for example inside a message consumer. Rejections are RFC 9457
// problem+json responses whose codes ProblemFor maps from the sentinel
// errors of the signature, timestamp and nonce packages.
//
// Nothing is written to any store before a signature has verified.
package replayguard
