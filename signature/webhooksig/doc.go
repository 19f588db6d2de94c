// Package webhooksig is the webhook receiver presets: Standard Webhooks
// (Svix), Stripe, GitHub, Slack and Shopify, each verified as the vendor
// signs, tried against every configured key, with the vendor's delivery id
// as the idempotency key. Presets sign no method, so they accept POST only.
// Signer signs deliveries as the vendors do, for tests.
package webhooksig
