module github.com/replayguard/replayguard/plugin/traefik

go 1.26.0

replace github.com/replayguard/replayguard => ../..

require (
	github.com/bits-and-blooms/bloom/v3 v3.7.1
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/google/uuid v1.6.0
	github.com/mitchellh/mapstructure v1.5.0
	github.com/replayguard/replayguard v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	github.com/traefik/yaegi v0.16.1
	go.yaml.in/yaml/v3 v3.0.6
)

require github.com/bits-and-blooms/bitset v1.24.2 // indirect
