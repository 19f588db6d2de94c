package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/replayguard/replayguard/signature"
)

// PublicKey loads a verification key from PEM (see
// ParsePublicKeyPEM) or, when pemData is empty, from a JSON Web Key (see
// ParseJWK; a JWK with private members is refused).
func PublicKey(pemData []byte, jwk map[string]any) (crypto.PublicKey, error) {
	if len(pemData) > 0 {
		return signature.ParsePublicKeyPEM(pemData)
	}
	if len(jwk) > 0 {
		j, err := signature.ParseJWK(jwk)
		if err != nil {
			return nil, err
		}
		switch k := j.Key.(type) {
		case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey:
			return k, nil
		}
		return nil, errors.New("signature: jwk: not a public key (a symmetric key is configured as a secret)")
	}
	return nil, errors.New("signature: no public key given")
}

// PrivateKey loads a signing key from PEM: PKCS#8 ("PRIVATE KEY"),
// PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY").
func PrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("signature: no private key PEM block found")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("signature: private key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("signature: private key of type %T cannot sign", k)
		}
		return s, nil
	}
}
