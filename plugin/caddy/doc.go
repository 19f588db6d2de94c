// Package replayguardcaddy is the Caddy v2 module http.handlers.replayguard
// and its Caddyfile directive replayguard.
//
// The handler struct is the JSON configuration: it embeds
// replayguard.Config, so the module's JSON fields are the YAML fields of
// the replayguard binary (keys, timestamp, nonce, idempotency, redis,
// postgres, fail_mode, ...). The Caddyfile subdirectives mirror them.
//
// Stores are kept in a caddy.UsagePool keyed by the store-relevant part of
// the configuration, so recorded nonces and idempotency records survive
// `caddy reload` as long as the store sections do not change.
//
// Plug it into Caddy with xcaddy:
//
//	xcaddy build --with github.com/replayguard/replayguard/plugin/caddy
//
// or with a main package that imports Caddy's standard modules and this
// package (see cmd/caddy).
package replayguardcaddy
