package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/config"
)

func TestLiteralSecrets(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"references only", "keys: [{id: a, secrets: [\"${A}\", \"base64:${B}\"]}]\nredis: {password: \"${P}\"}\n", nil},
		{"literal secret", "keys:\n  - id: a\n    secrets: [\"${A}\", literal-secret-0123]\n", []string{"keys[0].secrets[1] (line 3)"}},
		{"second key", "keys:\n  - id: a\n    secrets: [\"${A}\"]\n  - id: b\n    secrets:\n      - base64:c2VjcmV0LWItMDEyMzQ1Njc4OQ==\n", []string{"keys[1].secrets[0] (line 6)"}},
		{"symmetric jwk", "keys: [{id: a, jwk: {kty: oct, k: c2VjcmV0}}]\n", []string{"keys[0].jwk.k (line 1)"}},
		{"public jwk", "keys: [{id: a, jwk: {kty: OKP, crv: Ed25519, x: abc}}]\n", nil},
		{"redis password", "keys: [{id: a, secrets: [\"${A}\"]}]\nredis: {password: hunter2}\n", []string{"redis.password (line 2)"}},
		{"empty redis password", "keys: [{id: a, secrets: [\"${A}\"]}]\nredis: {password: \"\"}\n", nil},
		{"postgres url with password", "postgres: {dsn: \"postgres://rg:pw@db/rg\"}\n", []string{"postgres.dsn (line 1)"}},
		{"postgres key-value with password", "postgres: {dsn: \"host=db password=pw\"}\n", []string{"postgres.dsn (line 1)"}},
		{"postgres without password", "postgres: {dsn: \"postgres://rg@db/rg\"}\n", nil},
		{"postgres password from env", "postgres: {dsn: \"postgres://rg:${PW}@db/rg\"}\n", nil},
		{"not yaml", "keys: [\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, config.LiteralSecrets([]byte(tt.doc)))
		})
	}
}

func TestCheckExposure(t *testing.T) {
	const literal = "keys: [{id: a, secrets: [literal-secret-0123]}]\n"
	const fromEnv = "keys: [{id: a, secrets: [\"${A}\"]}]\n"
	tests := []struct {
		name    string
		doc     string
		mode    os.FileMode
		exposed bool
	}{
		{"literal, owner only", literal, 0o600, false},
		{"literal, owner read-only", literal, 0o400, false},
		{"literal, group-readable", literal, 0o640, true},
		{"literal, world-readable", literal, 0o644, true},
		{"literal, others only", literal, 0o604, true},
		{"references, world-readable", fromEnv, 0o644, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rg.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tt.doc), 0o600))
			require.NoError(t, os.Chmod(p, tt.mode))
			e, err := config.CheckExposure(p)
			require.NoError(t, err)
			if !tt.exposed {
				assert.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			assert.Equal(t, p, e.Path)
			assert.Equal(t, tt.mode, e.Mode)
			assert.Equal(t, []string{"keys[0].secrets[0] (line 1)"}, e.Fields)
		})
	}
	_, err := config.CheckExposure(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.Error(t, err)
}
