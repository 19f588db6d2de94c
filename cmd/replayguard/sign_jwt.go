package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// jwtSignFlags are the flags of `replayguard sign` with the jwt scheme:
// those of the hmac scheme plus the token's.
type jwtSignFlags struct {
	fs          *flag.FlagSet
	cfgPath     *string
	keyID       *string
	secret      *string
	method      *string
	data        *string
	asCurl      *bool
	headers     headerFlags
	scheme      *string
	privateKey  *string
	algorithm   *string
	issuer      *string
	subject     *string
	audience    *string
	ttl         *time.Duration
	dpopKey     *string
	accessToken *string
}

func newJWTSignFlags(out io.Writer) *jwtSignFlags {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(out)
	f := &jwtSignFlags{fs: fs}
	f.cfgPath = fs.String("config", "", "configuration file holding the key (its scheme selects jwt)")
	f.keyID = fs.String("key-id", "", "key id to sign with (the token's kid)")
	f.secret = fs.String("secret", "", "HMAC secret instead of --config (plain, or base64:…); prefer $REPLAYGUARD_SECRET")
	f.method = fs.String("X", "", "request method (default GET, or POST with -d)")
	f.data = fs.String("d", "", "request body, or @FILE to read it from a file")
	f.asCurl = fs.Bool("curl", false, "print a complete curl command instead of the headers")
	fs.Var(&f.headers, "H", "extra header 'Name: value' (repeatable)")
	f.scheme = fs.String("scheme", "", "signature scheme: hmac or jwt (default: the configuration's, else hmac)")
	f.privateKey = fs.String("private-key", "", "PEM private key signing the token (ES256/384/512, EdDSA, RS*, PS*) instead of an HMAC secret")
	f.algorithm = fs.String("algorithm", "", "the key's algorithm (default: HS256 for a secret, implied by an EC or Ed25519 key; required for RSA)")
	f.issuer = fs.String("iss", "", "iss claim (default: the configuration's jwt.issuer)")
	f.subject = fs.String("sub", "", "sub claim, the principal")
	f.audience = fs.String("aud", "", "aud claim (default: the configuration's jwt.audience)")
	f.ttl = fs.Duration("ttl", jwtsig.DefaultSignerTTL, "token lifetime (exp - iat)")
	f.dpopKey = fs.String("dpop-key", "", "PEM private key of DPoP proofs: send 'Authorization: DPoP' and a DPoP proof")
	f.accessToken = fs.String("access-token", "", "with --dpop-key: the DPoP-bound access token to present (default: mint one with --key-id, bound to the DPoP key)")
	return f
}

// jwtOnlyFlags ask for the jwt scheme when neither --scheme nor a
// configuration names one.
var jwtOnlyFlags = []string{"iss", "sub", "aud", "ttl", "dpop-key", "access-token"}

// cmdSignJWT runs `replayguard sign` for the jwt scheme and DPoP when
// --scheme jwt, else a configuration whose scheme is jwt, else (without
// either) a flag only the jwt scheme has asks for it. It reports
// handled=false otherwise, leaving the arguments to the other signers.
func cmdSignJWT(args []string, stdout, stderr io.Writer) (handled bool, err error) {
	probe := newJWTSignFlags(io.Discard)
	if probe.fs.Parse(reorderFlags(args, probe.fs)) != nil {
		return false, nil
	}
	want, cfg, err := schemeAsked("jwt", probe.fs, *probe.scheme, *probe.cfgPath, jwtOnlyFlags)
	if !want {
		return false, nil
	}
	if err != nil {
		return true, err
	}

	f := newJWTSignFlags(stderr)
	if err := f.fs.Parse(reorderFlags(args, f.fs)); err != nil {
		return true, errUsage
	}
	if f.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "sign: want exactly one URL")
		f.fs.Usage()
		return true, errUsage
	}
	raw := f.fs.Arg(0)
	if err := checkSignURL(raw); err != nil {
		return true, err
	}
	signer, err := f.signer(cfg)
	if err != nil {
		return true, err
	}
	return true, signAndPrint(stdout, signer, *f.method, raw, *f.data, f.headers, *f.asCurl)
}

// signer builds the token signer, and the DPoP signer around it when a
// DPoP key is given.
func (f *jwtSignFlags) signer(cfg *replayguard.Config) (signature.Signer, error) {
	dpop := *f.dpopKey != ""
	if *f.accessToken != "" && !dpop {
		return nil, errors.New("sign: --access-token needs --dpop-key")
	}
	var proofKey crypto.Signer
	if dpop {
		k, err := readPrivateKey(*f.dpopKey)
		if err != nil {
			return nil, fmt.Errorf("sign: --dpop-key: %w", err)
		}
		proofKey = k
		if *f.accessToken != "" {
			return &jwtsig.DPoPSigner{Key: proofKey, AccessToken: *f.accessToken}, nil
		}
	}
	if *f.keyID == "" {
		return nil, errors.New("sign: want --key-id (the token's kid)")
	}
	js := &jwtsig.Signer{
		KeyID: *f.keyID, Algorithm: *f.algorithm, Issuer: *f.issuer, Subject: *f.subject,
		Audience: *f.audience, TTL: *f.ttl,
	}
	if cfg != nil {
		if js.Issuer == "" {
			js.Issuer = cfg.JWT.Issuer
		}
		if js.Audience == "" {
			js.Audience = cfg.JWT.Audience
		}
		if cfg.JWT.Bind != nil {
			js.Bind = cfg.JWT.Bind
		}
		js.Header, js.Prefix = cfg.JWT.Header, cfg.JWT.Prefix
		for _, k := range cfg.Keys {
			if k.ID == *f.keyID && js.Algorithm == "" {
				js.Algorithm = k.Algorithm
			}
		}
	}
	if *f.privateKey != "" {
		k, err := readPrivateKey(*f.privateKey)
		if err != nil {
			return nil, fmt.Errorf("sign: --private-key: %w", err)
		}
		js.Key = k
	} else {
		sec, err := signingSecret(*f.cfgPath, *f.keyID, *f.secret)
		if err != nil {
			return nil, fmt.Errorf("%w (or give --private-key)", err)
		}
		js.Key = sec
	}
	if !dpop {
		return js, nil
	}
	// A minted DPoP-bound token needs no request binding of its own: the
	// proof binds the request.
	js.Bind = []string{}
	js.Header, js.Prefix = "", ""
	return &jwtsig.DPoPSigner{Key: proofKey, Mint: js}, nil
}

// readPrivateKey reads a PEM private key: PKCS #8 (RSA, ECDSA, Ed25519),
// SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA PRIVATE KEY".
func readPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return s, nil
}

// schemeAsked decides whether a `replayguard sign` invocation is for
// scheme: --scheme names it; else the configuration (cfgPath) has it; else,
// without either, one of onlyFlags was given (flags only that scheme has).
// A configuration that does not load is the caller's error only when the
// scheme was asked for by --scheme; otherwise the invocation is not
// scheme's. fs has parsed the arguments.
func schemeAsked(scheme string, fs *flag.FlagSet, flagScheme, cfgPath string, onlyFlags []string) (bool, *replayguard.Config, error) {
	want := flagScheme == scheme
	if flagScheme != "" && !want {
		return false, nil, nil
	}
	if cfgPath != "" {
		c, err := config.Load(cfgPath)
		if err != nil {
			return want, nil, err
		}
		return want || c.Scheme == scheme, &c.Config, nil
	}
	if !want {
		fs.Visit(func(fl *flag.Flag) {
			for _, name := range onlyFlags {
				if fl.Name == name {
					want = true
				}
			}
		})
	}
	return want, nil, nil
}
