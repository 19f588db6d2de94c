module github.com/replayguard/replayguard/signature/jwtinterop

go 1.26.0

replace github.com/replayguard/replayguard => ../..

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/google/uuid v1.6.0
	github.com/replayguard/replayguard v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	github.com/traefik/yaegi v0.16.1
)

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
