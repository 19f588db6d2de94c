package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func cmdSign(args []string, stdout, stderr io.Writer) error {
	if handled, err := cmdSignRFC9421(args, stdout, stderr); handled {
		return err
	}
	if handled, err := cmdSignJWT(args, stdout, stderr); handled {
		return err
	}
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file holding the key's secret")
	keyID := fs.String("key-id", "", "key id to sign with")
	secret := fs.String("secret", "", "secret instead of --config (plain, or base64:…); prefer $REPLAYGUARD_SECRET")
	method := fs.String("X", "", "request method (default GET, or POST with -d)")
	data := fs.String("d", "", "request body, or @FILE to read it from a file")
	asCurl := fs.Bool("curl", false, "print a complete curl command instead of the headers")
	var headers headerFlags
	fs.Var(&headers, "H", "extra header 'Name: value' (repeatable; Idempotency-Key is signed)")
	if err := fs.Parse(reorderFlags(args, fs)); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 || *keyID == "" {
		fmt.Fprintln(stderr, "sign: want --key-id and exactly one URL")
		fs.Usage()
		return errUsage
	}
	raw := fs.Arg(0)
	if err := checkSignURL(raw); err != nil {
		return err
	}
	sec, err := signingSecret(*cfgPath, *keyID, *secret)
	if err != nil {
		return err
	}
	return signAndPrint(stdout, &hmacsig.Signer{KeyID: *keyID, Secret: sec}, *method, raw, *data, headers, *asCurl)
}

func checkSignURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sign: want an http(s) URL, got %q", raw)
	}
	return nil
}

// signAndPrint builds the request (data is the body, or @FILE), signs it
// and prints its headers, or with asCurl a whole curl command.
func signAndPrint(stdout io.Writer, s signature.Signer, method, raw, data string, headers []string, asCurl bool) error {
	var body []byte
	var err error
	if strings.HasPrefix(data, "@") {
		if body, err = os.ReadFile(data[1:]); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
	} else if data != "" {
		body = []byte(data)
	}
	// The hmac scheme signs the method byte for byte as sent: the request
	// built here, signed and printed (or sent by the curl line) carries the
	// one upper-cased method.
	m := strings.ToUpper(method)
	if m == "" {
		m = http.MethodGet
		if body != nil {
			m = http.MethodPost
		}
	}
	req, err := http.NewRequest(m, raw, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("sign: header %q: want 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if err := s.Sign(req, body); err != nil {
		return err
	}
	if asCurl {
		fmt.Fprintln(stdout, curlLine(req, data))
		return nil
	}
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range req.Header[k] {
			fmt.Fprintf(stdout, "%s: %s\n", k, v)
		}
	}
	return nil
}

// reorderFlags lets flags follow the URL, as in curl.
func reorderFlags(args []string, fs *flag.FlagSet) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, pos...)
}

func signingSecret(cfgPath, keyID, secret string) ([]byte, error) {
	if secret == "" {
		secret = os.Getenv("REPLAYGUARD_SECRET")
	}
	if secret != "" {
		return signature.ParseSecret(secret)
	}
	if cfgPath == "" {
		return nil, errors.New("sign: give --config, --secret or $REPLAYGUARD_SECRET")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	for _, k := range cfg.Keys {
		if k.ID == keyID {
			if len(k.Secrets) == 0 {
				return nil, fmt.Errorf("sign: key %q has no secret", keyID)
			}
			// The first secret is the current one; the others are kept
			// for verification during a rotation.
			return signature.ParseSecret(k.Secrets[0])
		}
	}
	return nil, fmt.Errorf("sign: key %q is not in %s", keyID, cfgPath)
}

// curlLine renders req as a shell-safe curl command.
func curlLine(req *http.Request, data string) string {
	var b strings.Builder
	b.WriteString("curl -sS -i -X ")
	b.WriteString(req.Method)
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range req.Header[k] {
			b.WriteString(" -H ")
			b.WriteString(shellQuote(k + ": " + v))
		}
	}
	if data != "" {
		b.WriteString(" --data-binary ")
		b.WriteString(shellQuote(data))
	}
	b.WriteString(" ")
	b.WriteString(shellQuote(req.URL.String()))
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "client-a", "key id for the printed configuration snippet")
	size := fs.Int("bytes", 32, "secret length in bytes (at least 16)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *size < 16 || *size > 1024 {
		return errors.New("keygen: --bytes must be between 16 and 1024")
	}
	b := make([]byte, *size)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	sec := "base64:" + base64.StdEncoding.EncodeToString(b)
	fmt.Fprintf(stdout, "# Give the client this secret; keep it out of version control.\n# replayguard.yaml:\nkeys:\n  - id: %s\n    secrets: [\"%s\"]\n", *id, sec)
	return nil
}
