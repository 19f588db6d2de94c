package main

// A request that fails verification costs at most 4× a valid verification
// of the same request whose key is tried last: 1 MiB bodies, four keys of
// two secrets each (BenchmarkFailedVerificationCost).
func init() {
	for _, c := range []struct{ name, bench string }{
		{"hmac", "hmac"},
		{"jwt (HS256)", "jwt"},
		{"rfc9421 (hmac-sha256)", "rfc9421"},
		{"standard-webhooks (v1, HMAC)", "standard-webhooks"},
		{"standard-webhooks (v1a, Ed25519)", "standard-webhooks-v1a"},
		{"standard-webhooks (v1a beside v1)", "standard-webhooks-v1a-mixed"},
		{"stripe", "stripe"},
		{"github", "github"},
		{"slack", "slack"},
		{"shopify", "shopify"},
	} {
		goals = append(goals, goal{
			"failed vs valid verification, key tried last, 1 MiB, " + c.name,
			"FailedVerificationCost/" + c.bench, "", "x-valid", 4,
		})
	}
}
