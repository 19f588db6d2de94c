package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/httpsig"
)

// rfc9421Signer returns the RFC 9421 signer of the flags: a --private-key
// signs with the key's asymmetric algorithm, otherwise the key's secret
// (see keySecret) with hmac-sha256.
func (f *signFlags) rfc9421Signer(cfg *replayguard.Config) (*httpsig.Signer, error) {
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
	sec, err := keySecret(cfg, schemeRFC9421, *f.keyID, *f.secret)
	if err != nil {
		return nil, err
	}
	s.Secret = sec
	return s, nil
}
