package main

func init() {
	goals = append(goals,
		goal{"standard-webhooks preset vs HMAC-SHA256 floor, 1 KiB", "WebhookVerify/replayguard/1KiB", "WebhookVerify/floor/1KiB", "ns/op", 1.2},
		goal{"standard-webhooks preset vs HMAC-SHA256 floor, 64 KiB", "WebhookVerify/replayguard/64KiB", "WebhookVerify/floor/64KiB", "ns/op", 1.2},
		goal{"same, fastest of interleaved batches, 1 KiB", "WebhookVerifyInterleaved/1KiB", "", "x-floor", 1.2},
		goal{"same, fastest of interleaved batches, 64 KiB", "WebhookVerifyInterleaved/64KiB", "", "x-floor", 1.2},
		goal{"Standard Webhooks library, fastest interleaved, 1 KiB", "WebhookVerifyInterleaved/1KiB", "", "stdwh-x-floor", 0},
		goal{"Standard Webhooks library, fastest interleaved, 64 KiB", "WebhookVerifyInterleaved/64KiB", "", "stdwh-x-floor", 0},
		goal{"Svix Go library, fastest interleaved, 1 KiB", "WebhookVerifyInterleaved/1KiB", "", "svix-x-floor", 0},
		goal{"Svix Go library, fastest interleaved, 64 KiB", "WebhookVerifyInterleaved/64KiB", "", "svix-x-floor", 0},
		goal{"stripe-go ValidatePayload, fastest interleaved, 1 KiB", "WebhookVerifyInterleaved/1KiB", "", "stripe-x-floor", 0},
		goal{"stripe-go ValidatePayload, fastest interleaved, 64 KiB", "WebhookVerifyInterleaved/64KiB", "", "stripe-x-floor", 0},
		goal{"Standard Webhooks Go library vs floor, 1 KiB", "WebhookVerify/standardwebhooks/1KiB", "WebhookVerify/floor/1KiB", "ns/op", 0},
		goal{"Standard Webhooks Go library vs floor, 64 KiB", "WebhookVerify/standardwebhooks/64KiB", "WebhookVerify/floor/64KiB", "ns/op", 0},
		goal{"Svix Go library vs floor, 1 KiB", "WebhookVerify/svix/1KiB", "WebhookVerify/floor/1KiB", "ns/op", 0},
		goal{"Svix Go library vs floor, 64 KiB", "WebhookVerify/svix/64KiB", "WebhookVerify/floor/64KiB", "ns/op", 0},
		goal{"stripe-go ValidatePayload vs floor, 1 KiB", "WebhookVerify/stripe/1KiB", "WebhookVerify/floor/1KiB", "ns/op", 0},
		goal{"stripe-go ValidatePayload vs floor, 64 KiB", "WebhookVerify/stripe/64KiB", "WebhookVerify/floor/64KiB", "ns/op", 0},
		goal{"stripe preset vs floor, 1 KiB", "WebhookVerify/replayguard-stripe/1KiB", "WebhookVerify/floor/1KiB", "ns/op", 0},
		goal{"stripe preset vs floor, 64 KiB", "WebhookVerify/replayguard-stripe/64KiB", "WebhookVerify/floor/64KiB", "ns/op", 0},
	)
}
