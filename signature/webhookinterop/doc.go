// Package webhookinterop holds the tests that verify, with the webhook
// presets of package signature, deliveries signed by the providers' own Go
// libraries: the Standard Webhooks reference library and stripe-go's test
// helper. It is a module of its own so that their dependencies stay out of
// the core go.mod.
package webhookinterop
