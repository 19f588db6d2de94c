package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// jwtSigner builds the token signer, and the DPoP signer around it when a
// DPoP key is given.
func (f *signFlags) jwtSigner(cfg *replayguard.Config) (signature.Signer, error) {
	dpop := *f.dpopKey != ""
	if *f.accessToken != "" && !dpop {
		return nil, f.c.fail("--access-token needs --dpop-key")
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
		sec, err := keySecret(cfg, schemeJWT, *f.keyID, *f.secret)
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
