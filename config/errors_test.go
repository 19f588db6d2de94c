package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
)

// key is a valid keys section, for documents about other fields.
const key = "keys: [{id: a, secrets: [a-secret-0123456789]}]\n"

// TestErrorsNameFieldAndLine: every class of error names the field path
// and the place in the file, one error a line, sorted by line.
func TestErrorsNameFieldAndLine(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []string // every line of the error, in order
	}{
		{
			name: "bad duration",
			doc:  key + "timestamp:\n  tolerance: five minutes\n",
			want: []string{`config: line 3, column 14: timestamp.tolerance: want a duration such as "300ms", "5m" or "7d", got "five minutes"`},
		},
		{
			name: "duration without a unit",
			doc:  key + "idempotency: {ttl: 300}\n",
			want: []string{`config: line 2, column 20: idempotency.ttl: want a duration such as "300ms", "5m" or "7d", got "300"`},
		},
		{
			name: "number expected",
			doc:  key + "max_body_bytes: 1MB\n",
			want: []string{`config: line 2, column 17: max_body_bytes: want a whole number, got "1MB"`},
		},
		{
			name: "bool expected",
			doc:  key + "nonce:\n  local_shield: maybe\n",
			want: []string{`config: line 3, column 17: nonce.local_shield: want true or false, got "maybe"`},
		},
		{
			name: "list where text is wanted",
			doc:  key + "redis: {db: 1, master_name: [a, b]}\n",
			want: []string{`config: line 2, column 29: redis.master_name: want text, got a list`},
		},
		{
			name: "text where a section is wanted",
			doc:  key + "nonce: fast\n",
			want: []string{`config: line 2, column 8: nonce: want a section of fields (name: value), got "fast"`},
		},
		{
			name: "section where a list is wanted, not also reported missing",
			doc:  "keys:\n  id: a\n  secrets: [a-secret-0123456789]\n",
			want: []string{`config: line 1, column 1: keys: want a list, got a section of fields`},
		},
		{
			name: "enum value",
			doc:  key + "nonce:\n  store: memory\n  mode: fuzzy\n",
			want: []string{`config: line 4, column 9: nonce.mode: "fuzzy" is not one of exact, bloom`},
		},
		{
			name: "unknown top-level field, suggested",
			doc:  key + "timestmp: {tolerance: 1m}\n",
			want: []string{`config: line 2, column 1: timestmp: unknown field, did you mean "timestamp"?`},
		},
		{
			name: "unknown nested field, suggested at its level",
			doc:  key + "nonce:\n  stroe: memory\n",
			want: []string{`config: line 3, column 3: nonce.stroe: unknown field, did you mean "store"?`},
		},
		{
			name: "unknown field in a list item",
			doc:  "keys:\n  - id: a\n    secret: [a-secret-0123456789]\n",
			want: []string{
				`config: line 2, column 5: keys[0].secrets (not set in keys[0]): the hmac scheme needs at least one secret for key "a"`,
				`config: line 3, column 5: keys[0].secret: unknown field, did you mean "secrets"?`,
			},
		},
		{
			name: "unknown field, nothing near",
			doc:  key + "colour: blue\n",
			want: []string{`config: line 2, column 1: colour: unknown field`},
		},
		{
			name: "field set twice",
			doc:  key + "scheme: hmac\nscheme: jwt\n",
			want: []string{`config: line 3, column 1: scheme: set twice (first at line 2)`},
		},
		{
			name: "nested list index",
			doc:  "keys:\n  - id: a\n    secrets: [a-secret-0123456789]\n  - id: b\n    secrets:\n      - \"base64:!!\"\n",
			want: []string{`config: line 6, column 9: keys[1].secrets[0]: signature: secret: invalid base64: illegal base64 data at input byte 0`},
		},
		{
			name: "list index of a method",
			doc:  key + "idempotency:\n  methods: [POST, PATCH, post]\n",
			want: []string{`config: line 3, column 26: idempotency.methods[2]: want an upper-case method name, got "post"`},
		},
		{
			name: "validation error at its line",
			doc:  key + "\n\nscheme: md5\n",
			want: []string{`config: line 4, column 9: scheme: unknown scheme "md5" (supported: github, hmac, jwt, rfc9421, shopify, slack, standard-webhooks, stripe)`},
		},
		{
			name: "required field missing from the file",
			doc:  "listen: 127.0.0.1:8080\n",
			want: []string{`config: keys (not set): at least one key is required (or jwt.jwks_url with scheme jwt)`},
		},
		{
			name: "required field missing from its section",
			doc:  key + "nonce: {store: redis}\nredis:\n  db: 1\n",
			want: []string{`config: line 3, column 1: redis.addrs (not set in redis): required when a store is "redis"`},
		},
		{
			name: "unset variable, at its field",
			doc:  "keys:\n  - id: a\n    secrets: [\"${MISSING_SECRET}\"]\n",
			want: []string{`config: line 3, column 15: keys[0].secrets[0]: environment variable MISSING_SECRET is not set`},
		},
		{
			name: "lines stay right after a multi-line value is expanded",
			doc:  "keys:\n  - id: a\n    secrets: [\"${S}\"]\nnonce:\n  capacity: lots\n",
			env:  map[string]string{"S": "a-secret\n0123\n456789\n"},
			want: []string{`config: line 5, column 13: nonce.capacity: want a whole number, got "lots"`},
		},
		{
			name: "several errors, sorted by line",
			doc:  "nonce:\n  mode: fuzzy\ntimestmp: 1\nkeys:\n  - id: a\n    secrets: [a-secret-0123456789]\n  - id: a\n    secrets: [b-secret-0123456789]\nmax_body_bytes: x\n",
			want: []string{
				`config: line 2, column 9: nonce.mode: "fuzzy" is not one of exact, bloom`,
				`config: line 3, column 1: timestmp: unknown field, did you mean "timestamp"?`,
				`config: line 7, column 9: keys[1].id: duplicate id "a"`,
				`config: line 9, column 17: max_body_bytes: want a whole number, got "x"`,
			},
		},
		{
			name: "an alias is placed where its value is written",
			doc:  key + "timestamp: {tolerance: &d soon}\nidempotency: {ttl: *d}\n",
			want: []string{`config: line 2, column 24: timestamp.tolerance: want a duration such as "300ms", "5m" or "7d", got "soon"`},
		},
		{
			name: "a merged section is checked",
			doc:  key + "nonce: &n {capacity: 10}\nidempotency: {<<: *n, ttl: 1h}\n",
			want: []string{`config: line 2, column 12: idempotency.capacity: unknown field`},
		},
		{
			name: "not a section",
			doc:  "just text\n",
			want: []string{`config: line 1, column 1: want a section of fields (name: value), got "just text"`},
		},
		{
			name: "not YAML",
			doc:  "keys: [\n",
			want: []string{`config: line 1: did not find expected node content`},
		},
		{
			name: "empty",
			doc:  "",
			want: []string{`config: empty file`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.doc), env(tt.env))
			require.Error(t, err)
			assert.Equal(t, tt.want, strings.Split(err.Error(), "\n"))
			var errs config.Errors
			require.ErrorAs(t, err, &errs)
			assert.Len(t, errs, len(tt.want))
		})
	}
}

// TestErrorsNeverEchoSecrets: a secret's value appears in no message,
// whether the error is about the secret's own field or another field
// that happens to hold it.
func TestErrorsNeverEchoSecrets(t *testing.T) {
	const secret = "s3cret-value-0123456789"
	const pgPass = "pg-pass-9876"
	const long = "base64:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODkrLw=="
	tests := []struct {
		name, doc, field string
	}{
		{"secret that is not base64", "keys: [{id: a, secrets: [\"base64:${S}!\"]}]\n", "keys[0].secrets[0]"},
		{"secret in a number field", key + "redis: {password: \"${S}\", db: \"${S}\"}\n", "redis.db"},
		{"long secret in a number field", "keys: [{id: a, secrets: [\"${L}\"]}]\nredis: {db: \"${L}\"}\n", "redis.db"},
		{"secret in an address", key + "redis: {password: \"${S}\", addrs: [\"${S}\"]}\n", "redis.addrs[0]"},
		{"secret written again in a duration", "keys: [{id: a, secrets: [\"${S}\"]}]\ntimestamp: {tolerance: \"${S}\"}\nidempotency: {ttl: " + secret + "}\n", "idempotency.ttl"},
		{"dsn password in another field", key + "postgres: {dsn: \"postgres://rg:" + pgPass + "@db/rg\"}\nupstream: \"ftp://rg:" + pgPass + "@db/rg\"\n", "upstream"},
		{"key=value dsn password in another field", key + "postgres: {dsn: \"host=db password=" + pgPass + "\"}\nlisten: \"" + pgPass + "\"\n", "listen"},
		{"jwk private member", key + "scheme: jwt\nkeys: [{id: a, algorithm: HS256, jwk: {kty: oct, k: [\"${S}\"]}}]\n", "keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.doc), env(map[string]string{"S": secret, "L": long}))
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg, tt.field)
			for _, s := range []string{secret, pgPass, long[:16], long[16:32], long[32:48], long[48:64], long[64:80]} {
				assert.NotContains(t, msg, s)
			}
		})
	}
}

// TestLoadErrorsNameTheFile: errors of a file read with Load name it in
// the file:line:column form editors link to, and keep the cause.
func TestLoadErrorsNameTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rg.yaml")
	require.NoError(t, os.WriteFile(p, []byte(key+"nonce:\n  mode: fuzzy\n"), 0o600))
	_, err := config.Load(p)
	require.Error(t, err)
	assert.Equal(t, p+`:3:9: nonce.mode: "fuzzy" is not one of exact, bloom`, err.Error())
	var fe *replayguard.FieldError
	require.ErrorAs(t, err, &fe, "the cause stays in the chain")
	assert.Equal(t, "nonce.mode", fe.Field)
	var e *config.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, config.Error{File: p, Line: 3, Column: 9, Field: "nonce.mode", Message: `"fuzzy" is not one of exact, bloom`, Err: fe}, *e)
}

// TestLocate: errors found after Load (building keys, opening stores)
// are placed in the file the same way; an error that names no field is
// left as it is.
func TestLocate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rg.yaml")
	require.NoError(t, os.WriteFile(p, []byte("keys:\n  - id: a\n    public_key_file: /nonexistent.pem\nredis:\n  password: hunter2-hunter2\n"), 0o600))

	err := config.Locate(p, errors.Join(
		&replayguard.FieldError{Field: "keys[0].public_key_file", Err: errors.New("open /nonexistent.pem: no such file")},
		&replayguard.FieldError{Field: "redis.addrs", Err: errors.New("redis at hunter2-hunter2 does not answer")},
		&replayguard.FieldError{Field: "upstream", Err: errors.New("required by serve")},
	))
	assert.Equal(t, strings.Join([]string{
		p + ": upstream (not set): required by serve",
		p + ":3:22: keys[0].public_key_file: open /nonexistent.pem: no such file",
		p + ":4:1: redis.addrs (not set in redis): redis at <redacted> does not answer",
	}, "\n"), err.Error())

	plain := errors.New("listen tcp: address already in use")
	assert.Same(t, plain, config.Locate(p, plain))
	assert.NoError(t, config.Locate(p, nil))
}

// TestAliasesAreNotExpandedWhileChecking: aliases standing for billions
// of values, in a field that takes anything and in a list, are refused at
// once, never expanded.
func TestAliasesAreNotExpandedWhileChecking(t *testing.T) {
	var b strings.Builder
	b.WriteString("keys:\n  - id: a\n    secrets: [a-secret-0123456789]\n    jwk:\n")
	b.WriteString("      a0: &a0 {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x, j: x}\n")
	b.WriteString("      l0: &l0 [a, b, c, d, e, f, g, h, i, j]\n")
	for i := 1; i < 10; i++ {
		for _, kind := range []string{"a", "l"} {
			b.WriteString("      " + kind + strconv.Itoa(i) + ": &" + kind + strconv.Itoa(i) + " [")
			for j := 0; j < 10; j++ {
				b.WriteString("*" + kind + strconv.Itoa(i-1) + ", ")
			}
			b.WriteString("]\n")
		}
	}
	b.WriteString("idempotency: {methods: *l9}\n")
	_, err := config.Parse([]byte(b.String()), env(nil))
	require.Error(t, err)
	assert.Equal(t, []string{
		"config: line 4, column 5: keys[0].jwk: document contains excessive aliasing",
		"config: line 24, column 16: idempotency.methods[0]: want text, got a list",
	}, strings.Split(err.Error(), "\n"))
}

// FuzzErrorsPlaced: whatever the bytes, Parse never panics, and each error
// it reports is one line, at a line the input has, in the order of lines.
func FuzzErrorsPlaced(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte(key + "timestamp:\n  tolerance: five minutes\n"))
	f.Add([]byte("keys:\n  - id: a\n    secret: [x]\n  - id: a\n    secrets: [\"${S}\", {a: b}]\n"))
	f.Add([]byte(key + "nonce: &n {capacity: 10}\nidempotency: {<<: [*n, {ttl: x}], ttl: 1h}\n"))
	f.Add([]byte("a: &a [*a]\nkeys: *a\n"))
	f.Add([]byte("? [a, b]\n: c\nredis: {password: ${S}, db: ${S}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := config.Parse(data, env(map[string]string{"S": "fuzz-secret-0123456789"}))
		if err == nil {
			return
		}
		var errs config.Errors
		require.ErrorAs(t, err, &errs)
		lines := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) +
			bytes.Count(data, []byte("\u0085")) + bytes.Count(data, []byte("\u2028")) + bytes.Count(data, []byte("\u2029"))
		prev := 0
		for _, e := range errs {
			msg := e.Error()
			require.NotContains(t, msg, "\n", "one error, one line")
			require.LessOrEqual(t, e.Line, lines, msg)
			require.GreaterOrEqual(t, e.Line, prev, "sorted by line")
			prev = e.Line
		}
	})
}

// TestDocsErrorsExample: the example of docs/configuration.md's "Errors"
// is what Load reports for its file.
func TestDocsErrorsExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "\n## Errors\n")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```yaml\n")
	require.True(t, ok)
	file, after, ok := strings.Cut(after, "```")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```text\n$ replayguard check --config gw.yaml\nreplayguard: ")
	require.True(t, ok)
	want, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(file), 0o600))
	t.Chdir(dir)
	t.Setenv("CLIENT_A_SECRET", "docs-secret-0123456789")
	_, err = config.Load("gw.yaml")
	require.Error(t, err)
	assert.Equal(t, want, err.Error()+"\n")
}
