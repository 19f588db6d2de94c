// Package replayguardcaddy is the Caddy v2 module http.handlers.replayguard
// and its Caddyfile directive replayguard.
//
// The handler struct is the JSON configuration: it embeds
// replayguard.Config, so the module's JSON fields are the YAML fields of
// the replayguard binary (keys, timestamp, nonce, idempotency, redis,
// postgres, disk, fail_mode, ...). The Caddyfile subdirectives mirror them.
//
// Stores are kept in a caddy.UsagePool keyed by the store-relevant part of
// the configuration, so recorded nonces and idempotency records survive
// `caddy reload` as long as the store sections do not change. They are in
// memory unless configured otherwise; "disk" keeps them in a file under
// Caddy's data directory (DefaultDiskPath) across restarts. A directory
// is opened once per process: handlers naming it share the open store, a
// reload hands it over, and a handler naming it with other store settings
// is refused at provisioning.
//
// Plug it into Caddy with xcaddy:
//
//	xcaddy build --with github.com/replayguard/replayguard/plugin/caddy
//
// or with a main package that imports Caddy's standard modules and this
// package (see cmd/caddy).
package replayguardcaddy
