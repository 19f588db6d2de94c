module github.com/replayguard/replayguard/signature/webhookinterop

go 1.26.0

replace github.com/replayguard/replayguard => ../..

require (
	github.com/replayguard/replayguard v0.0.0-00010101000000-000000000000
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1
	github.com/stretchr/testify v1.12.1
	github.com/stripe/stripe-go/v85 v85.0.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
