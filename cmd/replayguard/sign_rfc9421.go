package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/httpsig"
)

// rfc9421SignFlags are the flags of `replayguard sign` with the rfc9421
// scheme: those of the hmac scheme plus the signature's.
type rfc9421SignFlags struct {
	fs         *flag.FlagSet
	cfgPath    *string
	keyID      *string
	secret     *string
	method     *string
	data       *string
	asCurl     *bool
	headers    headerFlags
	scheme     *string
	privateKey *string
	algorithm  *string
	components *string
	label      *string
	digest     *string
	tag        *string
}

func newRFC9421SignFlags(out io.Writer) *rfc9421SignFlags {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(out)
	f := &rfc9421SignFlags{fs: fs}
	f.cfgPath = fs.String("config", "", "configuration file holding the key (its scheme selects rfc9421)")
	f.keyID = fs.String("key-id", "", "key id to sign with (the keyid parameter)")
	f.secret = fs.String("secret", "", "hmac-sha256 secret instead of --config (plain, or base64:…); prefer $REPLAYGUARD_SECRET")
	f.method = fs.String("X", "", "request method (default GET, or POST with -d)")
	f.data = fs.String("d", "", "request body, or @FILE to read it from a file")
	f.asCurl = fs.Bool("curl", false, "print a complete curl command instead of the headers")
	fs.Var(&f.headers, "H", "extra header 'Name: value' (repeatable; Idempotency-Key is covered)")
	f.scheme = fs.String("scheme", "", "signature scheme: rfc9421 here (default: the configuration's)")
	f.privateKey = fs.String("private-key", "", "PEM private key (ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256) instead of a secret")
	f.algorithm = fs.String("algorithm", "", "the key's algorithm (default: the configured one; hmac-sha256 for a secret; implied by an EC or Ed25519 key)")
	f.components = fs.String("components", "", "covered components, comma-separated (default @method, @target-uri, content-digest with a body, idempotency-key when sent)")
	f.label = fs.String("label", httpsig.DefaultLabel, "signature label")
	f.digest = fs.String("digest", httpsig.DigestSHA256, "Content-Digest algorithm: sha-256 or sha-512")
	f.tag = fs.String("tag", "", "tag parameter")
	return f
}

// cmdSignRFC9421 runs `replayguard sign` for the rfc9421 scheme when
// --scheme rfc9421 or a configuration whose scheme is rfc9421 asks for it.
// It reports handled=false otherwise, leaving the arguments to the other
// signers.
func cmdSignRFC9421(args []string, stdout, stderr io.Writer) (handled bool, err error) {
	probe := newRFC9421SignFlags(io.Discard)
	if probe.fs.Parse(reorderFlags(args, probe.fs)) != nil {
		return false, nil
	}
	want, cfg, err := schemeAsked("rfc9421", probe.fs, *probe.scheme, *probe.cfgPath, nil)
	if !want {
		return false, nil
	}
	if err != nil {
		return true, err
	}

	f := newRFC9421SignFlags(stderr)
	if err := f.fs.Parse(reorderFlags(args, f.fs)); err != nil {
		return true, errUsage
	}
	if f.fs.NArg() != 1 || *f.keyID == "" {
		fmt.Fprintln(stderr, "sign: want --key-id and exactly one URL")
		f.fs.Usage()
		return true, errUsage
	}
	raw := f.fs.Arg(0)
	if err := checkSignURL(raw); err != nil {
		return true, err
	}
	s, err := f.signer(cfg)
	if err != nil {
		return true, err
	}
	return true, signAndPrint(stdout, s, *f.method, raw, *f.data, f.headers, *f.asCurl)
}

// signer returns the RFC9421Signer of the flags: a --private-key signs
// with the key's asymmetric algorithm, otherwise the key's secret (from
// --secret, $REPLAYGUARD_SECRET or the configuration) with hmac-sha256.
func (f *rfc9421SignFlags) signer(cfg *replayguard.Config) (*httpsig.Signer, error) {
	s := &httpsig.Signer{KeyID: *f.keyID, Label: *f.label, Digest: *f.digest, Tag: *f.tag, Algorithm: *f.algorithm}
	if *f.components != "" {
		for _, c := range strings.Split(*f.components, ",") {
			s.Components = append(s.Components, strings.TrimSpace(c))
		}
	}
	if cfg != nil && s.Algorithm == "" {
		for _, k := range cfg.Keys {
			if k.ID == *f.keyID {
				s.Algorithm = k.Algorithm
			}
		}
	}
	if *f.privateKey != "" {
		b, err := os.ReadFile(*f.privateKey)
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		if s.PrivateKey, err = httpsig.PrivateKey(b); err != nil {
			return nil, fmt.Errorf("sign: --private-key: %w", err)
		}
		return s, nil
	}
	if alg, _ := httpsig.Algorithm(s.Algorithm); alg != "" && alg != httpsig.AlgHMACSHA256 {
		return nil, errors.New("sign: key " + *f.keyID + " uses " + alg + ": give its --private-key")
	}
	sec, err := signingSecret(*f.cfgPath, *f.keyID, *f.secret)
	if err != nil {
		return nil, err
	}
	s.Secret = sec
	return s, nil
}
