package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
)

const keygenAbout = `Prints a new random secret in a keys: snippet for the configuration.

The secret is N random bytes (--bytes, default 32) written as hex. The hex
string itself is the secret, used as its UTF-8 bytes: paste it as it is
everywhere, into the configuration's secrets, into --secret or
$REPLAYGUARD_SECRET, and into a client (openssl dgst -hmac "$SECRET",
Python's SECRET = b"…", Go's []byte(secret)). Do not hex-decode it.`

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	c := newCLI("keygen", "keygen [--id ID] [--bytes N]", keygenAbout, stderr)
	id := c.fs.String("id", "client-a", "key `id` of the printed configuration snippet")
	size := c.fs.Int("bytes", 32, "random bytes in the secret, 16 to 1024")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(0, 0, ""); err != nil {
		return err
	}
	if *size < 16 || *size > 1024 {
		return c.fail("--bytes must be between 16 and 1024")
	}
	sec, err := newSecret(*size)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `# A new secret for key %[1]s: the string itself is the secret, as it is
# (in the configuration, --secret, $REPLAYGUARD_SECRET and the client).
# Give it to the client; keep it out of version control.
# replayguard.yaml:
keys:
  - id: %[1]s
    secrets: ["%[2]s"]
`, *id, sec)
	return nil
}

// newSecret returns n random bytes in hex: a secret that is used as its
// UTF-8 bytes, as it is printed.
func newSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
