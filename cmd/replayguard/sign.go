package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/jwtsig"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// Schemes of the request-signing clients, beside the webhook presets.
const (
	schemeHMAC    = "hmac"
	schemeJWT     = "jwt"
	schemeRFC9421 = "rfc9421"
)

// signFlags are the flags of `replayguard sign`, of every scheme.
type signFlags struct {
	c *cli

	cfgPath, keyID, secret *string
	route                  *string
	scheme, preset         *string
	method, data           *string
	headers                headerFlags
	asCurl, send           *bool
	timeout                *time.Duration

	idemKey   *string
	noIdemKey *bool

	privateKey, algorithm *string

	issuer, subject, audience *string
	ttl                       *time.Duration
	dpopKey, accessToken      *string

	components, label, digest, tag *string

	deliveryID *string
}

const signAbout = `Signs one request and prints its headers as 'Name: value' lines, a complete
curl command (--curl), or sends it and prints the response (--send).

The scheme is --scheme or --preset, else the configuration's (--config), else
the one whose own flags are given (--sub selects jwt, --components rfc9421),
else hmac. A flag of another scheme than the one signing is an error.

Secrets are read as the configuration reads them: a plain string is its UTF-8
bytes, base64:… is decoded, and under --preset standard-webhooks whsec_… is
decoded as Standard Webhooks defines (Stripe's whsec_… secret is used as is).
The secret is --secret, else the key's first secret in --config, else
$REPLAYGUARD_SECRET.

Idempotency (hmac, jwt, rfc9421): a request whose method the configuration's
idempotency covers, when it requires a key (without --config, the defaults:
POST and PATCH), gets a fresh Idempotency-Key (a random UUID) before it is
signed, so hmac and rfc9421 sign it. --idempotency-key K chooses it (retry an
operation with the key it was first sent with); --no-idempotency-key omits it.

Webhook presets sign a delivery as the provider does (always POST, with
Content-Type: application/json unless -H sets one): stripe (Stripe-Signature
t=…,v1=…; the event id is the body's "id"), github (X-Hub-Signature-256 and a
fresh X-GitHub-Delivery), slack (X-Slack-Signature v0=… and
X-Slack-Request-Timestamp), shopify (X-Shopify-Hmac-Sha256 and a fresh
X-Shopify-Webhook-Id), standard-webhooks (webhook-id, webhook-timestamp,
webhook-signature v1,… or, with an Ed25519 --private-key, v1a,…).

--send prints the status line, the response headers and the body, and exits
0 for a 1xx-3xx response, 1 for a 4xx or 5xx one (printed all the same) and
1 when no response came (the error on stderr). Redirects are not followed.`

// signFlagSchemes names the schemes that read a flag; a flag it does not
// list is read by every scheme.
var signFlagSchemes = map[string][]string{
	"idempotency-key":    {schemeHMAC, schemeJWT, schemeRFC9421},
	"no-idempotency-key": {schemeHMAC, schemeJWT, schemeRFC9421},
	"private-key":        {schemeJWT, schemeRFC9421, webhooksig.PresetStandardWebhooks},
	"algorithm":          {schemeJWT, schemeRFC9421},
	"iss":                {schemeJWT},
	"sub":                {schemeJWT},
	"aud":                {schemeJWT},
	"ttl":                {schemeJWT},
	"dpop-key":           {schemeJWT},
	"access-token":       {schemeJWT},
	"components":         {schemeRFC9421},
	"label":              {schemeRFC9421},
	"digest":             {schemeRFC9421},
	"tag":                {schemeRFC9421},
	"delivery-id":        {webhooksig.PresetGitHub, webhooksig.PresetShopify, webhooksig.PresetStandardWebhooks},
}

func newSignFlags(stderr io.Writer) *signFlags {
	c := newCLI("sign", "sign [flags] URL", signAbout, stderr)
	c.interspersed = true
	fs := c.fs
	f := &signFlags{c: c}
	f.cfgPath = fs.String("config", "", "configuration `file`: the key's secret, the scheme and its settings")
	f.route = fs.String("route", "", "with --config of several routes: the route `name` whose scheme, keys and settings sign (default: the route the URL matches)")
	f.keyID = fs.String("key-id", "", "key `id` to sign with (hmac, jwt, rfc9421); with a preset, the key of --config to sign with (default: its only key)")
	f.secret = fs.String("secret", "", "the key's `secret` instead of --config (plain, base64:…, or whsec_… under standard-webhooks); prefer $REPLAYGUARD_SECRET")
	f.scheme = fs.String("scheme", "", "signature `scheme`: hmac, jwt, rfc9421 or a preset (default: the configuration's, else hmac)")
	f.preset = fs.String("preset", "", "webhook `preset`: "+strings.Join(webhooksig.Presets(), ", "))
	f.method = fs.String("X", "", "request `method` (default GET, or POST with -d; POST under a preset)")
	f.data = fs.String("d", "", "request body, or @FILE to read it from a file")
	fs.Var(&f.headers, "H", "extra header 'Name: value' (repeatable)")
	f.asCurl = fs.Bool("curl", false, "print a complete curl command instead of the headers")
	f.send = fs.Bool("send", false, "send the request and print the response's status, headers and body")
	f.timeout = fs.Duration("timeout", 30*time.Second, "with --send: how long to wait for the response")

	f.idemKey = fs.String("idempotency-key", "", "the Idempotency-Key to send (and sign) instead of a fresh one")
	f.noIdemKey = fs.Bool("no-idempotency-key", false, "send no Idempotency-Key")

	f.privateKey = fs.String("private-key", "", "PEM private key `file` instead of a secret: jwt (ES256/384/512, EdDSA, RS*, PS*), rfc9421 (ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256), standard-webhooks (Ed25519: v1a)")
	f.algorithm = fs.String("algorithm", "", "the key's algorithm (default: the configured one; HS256 / hmac-sha256 for a secret; implied by an EC or Ed25519 key; required for RSA)")

	f.issuer = fs.String("iss", "", "iss claim (default: the configuration's jwt.issuer)")
	f.subject = fs.String("sub", "", "sub claim: a subject within the key")
	f.audience = fs.String("aud", "", "aud claim (default: the configuration's jwt.audience)")
	f.ttl = fs.Duration("ttl", jwtsig.DefaultSignerTTL, "token lifetime (exp - iat)")
	f.dpopKey = fs.String("dpop-key", "", "PEM private key `file` of DPoP proofs: send 'Authorization: DPoP' and a DPoP proof")
	f.accessToken = fs.String("access-token", "", "with --dpop-key: the DPoP-bound access `token` to present (default: mint one with --key-id, bound to the DPoP key)")

	f.components = fs.String("components", "", "covered components, comma-separated (default @method, @target-uri, content-digest with a body, idempotency-key when sent)")
	f.label = fs.String("label", httpsig.DefaultLabel, "signature label")
	f.digest = fs.String("digest", httpsig.DigestSHA256, "Content-Digest algorithm: sha-256 or sha-512")
	f.tag = fs.String("tag", "", "tag parameter")

	f.deliveryID = fs.String("delivery-id", "", "the delivery `id`: X-GitHub-Delivery, X-Shopify-Webhook-Id, webhook-id (default: a fresh one)")

	c.groups = []flagGroup{
		{"Every scheme", []string{"config", "route", "key-id", "secret", "scheme", "preset", "X", "d", "H", "curl", "send", "timeout"}},
		{"Idempotency (hmac, jwt, rfc9421)", []string{"idempotency-key", "no-idempotency-key"}},
		{"Private keys (jwt, rfc9421; standard-webhooks v1a)", []string{"private-key", "algorithm"}},
		{"jwt (--scheme jwt)", []string{"iss", "sub", "aud", "ttl", "dpop-key", "access-token"}},
		{"rfc9421 (--scheme rfc9421)", []string{"components", "label", "digest", "tag"}},
		{"Webhook presets (--preset github, shopify, standard-webhooks)", []string{"delivery-id"}},
	}
	return f
}

func cmdSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newSignFlags(stderr)
	if err := f.c.parse(args, stdout); err != nil {
		return err
	}
	if err := f.c.positional(1, 1, "one URL"); err != nil {
		return err
	}
	raw := f.c.fs.Arg(0)
	if err := checkSignURL(raw); err != nil {
		return f.c.fail("%v", err)
	}
	if *f.asCurl && *f.send {
		return f.c.fail("--curl and --send: choose one")
	}
	if f.set("timeout") && !*f.send {
		return f.c.fail("--timeout applies to --send")
	}
	if f.set("route") && *f.cfgPath == "" {
		return f.c.fail("--route needs --config")
	}
	cfg, err := loadRouteConfig(*f.cfgPath, *f.route, raw)
	if err != nil {
		return err
	}
	scheme, err := f.resolveScheme(cfg)
	if err != nil {
		return err
	}
	req, body, err := f.request(raw, scheme, cfg)
	if err != nil {
		return err
	}
	s, err := f.signer(scheme, cfg)
	if err != nil {
		return err
	}
	if err := s.Sign(req, body); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	switch {
	case *f.send:
		return sendSigned(ctx, stdout, req, *f.timeout)
	case *f.asCurl:
		fmt.Fprintln(stdout, curlLine(req, *f.data))
	default:
		printHeaders(stdout, req.Header)
	}
	return nil
}

// set reports whether the flag name was given.
func (f *signFlags) set(name string) bool {
	found := false
	f.c.fs.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// resolveScheme picks the scheme that signs: --preset or --scheme, else
// the configuration's, else the one scheme whose own flags are given,
// else hmac. Every flag given must be one the scheme reads.
func (f *signFlags) resolveScheme(cfg *replayguard.Config) (string, error) {
	scheme := *f.scheme
	if scheme != "" && !knownScheme(scheme) {
		return "", f.c.fail("unknown scheme %q (hmac, jwt, rfc9421, %s)", scheme, strings.Join(webhooksig.Presets(), ", "))
	}
	if p := *f.preset; p != "" {
		if !isPreset(p) {
			return "", f.c.fail("unknown preset %q (%s)", p, strings.Join(webhooksig.Presets(), ", "))
		}
		if scheme != "" && scheme != p {
			return "", f.c.fail("--scheme %s and --preset %s: choose one", scheme, p)
		}
		scheme = p
	}
	if scheme == "" && cfg != nil {
		scheme = cfg.WithDefaults().Scheme
	}
	if scheme == "" {
		inferred := map[string]bool{}
		f.c.fs.Visit(func(fl *flag.Flag) {
			if s := signFlagSchemes[fl.Name]; len(s) == 1 {
				inferred[s[0]] = true
			}
		})
		switch len(inferred) {
		case 0:
			scheme = schemeHMAC
		case 1:
			for s := range inferred {
				scheme = s
			}
		default:
			return "", f.c.fail("flags of the jwt and the rfc9421 scheme are given: choose one with --scheme")
		}
	}
	var wrong error
	f.c.fs.Visit(func(fl *flag.Flag) {
		readers, ok := signFlagSchemes[fl.Name]
		if !ok || wrong != nil || contains(readers, scheme) {
			return
		}
		wrong = f.c.fail("--%s is not a flag of the %s scheme (it is one of %s)", fl.Name, scheme, strings.Join(readers, ", "))
	})
	if wrong != nil {
		return "", wrong
	}
	// A preset names no key on the wire; a DPoP proof presenting a given
	// access token needs none either.
	presentsToken := scheme == schemeJWT && *f.accessToken != ""
	if *f.keyID == "" && !isPreset(scheme) && !presentsToken {
		return "", f.c.fail("want --key-id: the key the %s scheme names on the wire", scheme)
	}
	return scheme, nil
}

func knownScheme(s string) bool {
	return s == schemeHMAC || s == schemeJWT || s == schemeRFC9421 || isPreset(s)
}

func isPreset(s string) bool { return contains(webhooksig.Presets(), s) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// loadSignConfig loads the configuration at path, or returns nil for no
// path.
func loadSignConfig(path string) (*replayguard.Config, error) {
	return loadRouteConfig(path, "", "")
}

// loadRouteConfig loads the configuration at path (nil for no path) and
// returns the configuration a request to rawURL is verified with: of a
// configuration with routes, the route named name, or else the one the
// URL's host and path match.
func loadRouteConfig(path, name, rawURL string) (*replayguard.Config, error) {
	if path == "" {
		return nil, nil
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if len(f.Routes) == 0 {
		if name != "" {
			return nil, fmt.Errorf("sign: --route %s: %s has no routes", name, path)
		}
		return &f.Config, nil
	}
	rt := &router{}
	for _, r := range f.Routes {
		if name != "" && r.Name == name {
			return &r.Config, nil
		}
		rt.routes = append(rt.routes, &route{name: r.Name, host: normalHost(r.Match.Host), prefix: strings.TrimSuffix(r.Match.PathPrefix, "/"), cfg: r.Config})
	}
	if name != "" {
		return nil, fmt.Errorf("sign: %s has no route %q", path, name)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	rt.order()
	r, err := rt.route(u.Host, u.RequestURI())
	if err != nil {
		return nil, fmt.Errorf("sign: %s: %w; name one with --route", path, err)
	}
	return &r.cfg, nil
}

func checkSignURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL, got %q", raw)
	}
	return nil
}

// request builds the request to sign: its method, body (-d, or @FILE),
// the -H headers and, for the request-signing schemes, the
// Idempotency-Key, set before signing so that the schemes that sign it
// (hmac, rfc9421) cover it.
func (f *signFlags) request(raw, scheme string, cfg *replayguard.Config) (*http.Request, []byte, error) {
	var body []byte
	data := *f.data
	if strings.HasPrefix(data, "@") {
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, nil, fmt.Errorf("sign: %w", err)
		}
		body = b
	} else if data != "" {
		body = []byte(data)
	}
	// The hmac scheme signs the method byte for byte as sent: the request
	// built here, signed and printed (or sent) carries the one upper-cased
	// method.
	m := strings.ToUpper(*f.method)
	if m == "" {
		m = http.MethodGet
		if body != nil || isPreset(scheme) {
			m = http.MethodPost
		}
	}
	req, err := http.NewRequest(m, raw, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, nil, f.c.fail("-H %q: want 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if isPreset(scheme) {
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, body, nil
	}
	given := req.Header.Get(signature.IdempotencyKeyHeader) != ""
	switch {
	case *f.idemKey != "" && *f.noIdemKey:
		return nil, nil, f.c.fail("--idempotency-key and --no-idempotency-key: choose one")
	case given && (*f.idemKey != "" || *f.noIdemKey):
		return nil, nil, f.c.fail("-H Idempotency-Key and --idempotency-key or --no-idempotency-key: choose one")
	case *f.idemKey != "":
		req.Header.Set(signature.IdempotencyKeyHeader, *f.idemKey)
	case !given && !*f.noIdemKey && requiresIdempotencyKey(cfg, m):
		req.Header.Set(signature.IdempotencyKeyHeader, uuid.NewString())
	}
	return req, body, nil
}

// requiresIdempotencyKey reports whether the configuration (the defaults
// without one) requires a client's Idempotency-Key on method: idempotency
// enabled and required, the method covered, no key derived by the gateway.
func requiresIdempotencyKey(cfg *replayguard.Config, method string) bool {
	var c replayguard.Config
	if cfg != nil {
		c = *cfg
	}
	id := c.WithDefaults().Idempotency
	if !*id.Enabled || !*id.Required || id.DeriveKey == "fingerprint" {
		return false
	}
	for _, covered := range id.Methods {
		if strings.EqualFold(covered, method) {
			return true
		}
	}
	return false
}

// signer returns the signer of scheme.
func (f *signFlags) signer(scheme string, cfg *replayguard.Config) (signature.Signer, error) {
	switch scheme {
	case schemeJWT:
		return f.jwtSigner(cfg)
	case schemeRFC9421:
		return f.rfc9421Signer(cfg)
	case schemeHMAC:
		sec, err := keySecret(cfg, scheme, *f.keyID, *f.secret)
		if err != nil {
			return nil, err
		}
		s := &hmacsig.Signer{KeyID: *f.keyID, Secret: sec}
		if cfg != nil {
			s.Headers = hmacsig.Headers{KeyID: cfg.HMAC.KeyIDHeader, Timestamp: cfg.HMAC.TimestampHeader,
				Nonce: cfg.HMAC.NonceHeader, Signature: cfg.HMAC.SignatureHeader}
		}
		return s, nil
	}
	return f.webhookSigner(scheme, cfg)
}

// keySecret returns the secret that signs under scheme, decoded as the
// configuration decodes it for that scheme: --secret, else the first
// secret of the key keyID in cfg (the current one; the others are kept
// for verification during a rotation), else $REPLAYGUARD_SECRET.
func keySecret(cfg *replayguard.Config, scheme, keyID, secret string) ([]byte, error) {
	if secret == "" && cfg != nil {
		k, err := configKey(cfg, keyID)
		if err != nil {
			return nil, err
		}
		if len(k.Secrets) == 0 {
			return nil, fmt.Errorf("sign: key %q has no secret", k.ID)
		}
		secret = k.Secrets[0]
		if scheme == webhooksig.PresetStandardWebhooks && strings.HasPrefix(secret, webhooksig.StandardWebhooksPublicKeyPrefix) {
			return nil, fmt.Errorf("sign: key %q holds a public key: sign v1a deliveries with its --private-key", k.ID)
		}
	}
	if secret == "" {
		secret = os.Getenv("REPLAYGUARD_SECRET")
	}
	if secret == "" {
		return nil, errors.New("sign: give --secret, --config or $REPLAYGUARD_SECRET")
	}
	// webhooksig.ParseSecret reads a secret as the Guard does: whsec_ as
	// Standard Webhooks defines under that preset, every other secret (and
	// every secret of the other schemes) as signature.ParseSecret does.
	b, err := webhooksig.ParseSecret(scheme, secret)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return b, nil
}

// configKey finds the key entry keyID of cfg; an empty keyID names the
// only key entry.
func configKey(cfg *replayguard.Config, keyID string) (replayguard.KeyConfig, error) {
	if keyID == "" {
		if len(cfg.Keys) == 1 {
			return cfg.Keys[0], nil
		}
		ids := make([]string, len(cfg.Keys))
		for i, k := range cfg.Keys {
			ids[i] = k.ID
		}
		return replayguard.KeyConfig{}, fmt.Errorf("sign: the configuration has %d keys (%s): name one with --key-id", len(cfg.Keys), strings.Join(ids, ", "))
	}
	for _, k := range cfg.Keys {
		if k.ID == keyID {
			return k, nil
		}
	}
	return replayguard.KeyConfig{}, fmt.Errorf("sign: key %q is not in the configuration", keyID)
}

// sendSigned sends req and prints the response: status line, headers,
// body. A 4xx or 5xx response is printed, then returned as an error.
func sendSigned(ctx context.Context, stdout io.Writer, req *http.Request, timeout time.Duration) error {
	client := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	fmt.Fprintf(stdout, "%s %s\n", resp.Proto, resp.Status)
	printHeaders(stdout, resp.Header)
	fmt.Fprintln(stdout)
	if _, werr := stdout.Write(body); werr != nil {
		return werr
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		return fmt.Errorf("sign: reading the response: %w", err)
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("sign: the server answered %s", resp.Status)
	}
	return nil
}

// printHeaders prints h as 'Name: value' lines, sorted by name.
func printHeaders(w io.Writer, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
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
