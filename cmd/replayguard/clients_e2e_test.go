package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireTools finds the executables a test runs: a missing one fails the
// test under CI=true and skips it otherwise.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required (apt-get install -y %s)", tool, tool)
			}
			t.Skipf("%s not installed (apt-get install -y %s)", tool, tool)
		}
	}
}

// keygenLine reads the secret out of what `replayguard keygen` prints.
var keygenLine = regexp.MustCompile(`secrets: \["([^"]+)"\]`)

// keygen runs `replayguard keygen` and returns what it prints (the keys
// section of a configuration, for key client-a) and the secret in it, as
// a user would copy it.
func keygen(t *testing.T) (keys, secret string) {
	t.Helper()
	out, err := exec.Command(binary(t), "keygen").Output()
	require.NoError(t, err)
	m := keygenLine.FindStringSubmatch(string(out))
	require.NotNil(t, m, string(out))
	return string(out), m[1]
}

// TestExampleShellClientWithKeygenSecret: examples/clients/shell signs with
// a secret exactly as keygen prints it, and the gateway configured with
// keygen's output verbatim accepts it.
func TestExampleShellClientWithKeygenSecret(t *testing.T) {
	requireTools(t, "bash", "openssl", "curl")
	keys, secret := keygen(t)
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\n%s", up.URL, keys))
	cmd := exec.Command("bash", "../../examples/clients/shell/rg_sign.sh", "--key-id", "client-a", "--secret", secret,
		"--idempotency-key", "order-42", "-X", "POST", "-d", `{"amount":100}`, "http://"+g.addr+"/v1/charges?currency=eur")
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "200\n"+`upstream saw POST /v1/charges?currency=eur "{\"amount\":100}"`, string(out))
	assert.Equal(t, int64(1), up.hits.Load())
}

// TestDocsGoClient runs the Go client of docs/wire-format.md, with the
// secret in its environment exactly as keygen prints it, against the
// real binary.
func TestDocsGoClient(t *testing.T) {
	doc, err := os.ReadFile("../../docs/wire-format.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "### A client in Go")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```go\n")
	require.True(t, ok)
	snippet, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	keys, secret := keygen(t)
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\n%s", up.URL, keys))
	snippet = strings.Replace(snippet, "https://api.example.com", "http://"+g.addr, 1)
	program := `package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

var _, _, _ = os.Getenv, strings.NewReader, log.Fatal

func main() {
` + snippet + `	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(b))
}
`
	path := filepath.Join(t.TempDir(), "main.go")
	require.NoError(t, os.WriteFile(path, []byte(program), 0o600))
	cmd := exec.Command("go", "run", path)
	cmd.Env = append(os.Environ(), "CLIENT_A_SECRET="+secret)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", out, program)
	assert.Equal(t, `200 upstream saw POST /v1/charges "{\"amount\":100}"`, string(out))
	assert.Equal(t, int64(1), up.hits.Load())
}
