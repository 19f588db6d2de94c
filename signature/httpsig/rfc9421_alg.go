package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// RFC 9421 signature algorithms (HTTP Signature Algorithms registry).
const (
	AlgHMACSHA256       = "hmac-sha256"
	AlgEd25519          = "ed25519"
	AlgECDSAP256SHA256  = "ecdsa-p256-sha256"
	AlgECDSAP384SHA384  = "ecdsa-p384-sha384"
	AlgRSAPSSSHA512     = "rsa-pss-sha512"
	AlgRSAV15SHA256     = "rsa-v1_5-sha256"
	rsaPSSSaltLength    = 64
	maxRFC9421Signature = 1024
)

// Algorithm returns the registry name of an algorithm given by its
// registry name or its JOSE name (HS256, EdDSA, ES256, ES384, PS512,
// RS256), case-insensitively.
func Algorithm(name string) (string, bool) {
	switch strings.ToLower(name) {
	case AlgHMACSHA256, "hs256":
		return AlgHMACSHA256, true
	case AlgEd25519, "eddsa":
		return AlgEd25519, true
	case AlgECDSAP256SHA256, "es256":
		return AlgECDSAP256SHA256, true
	case AlgECDSAP384SHA384, "es384":
		return AlgECDSAP384SHA384, true
	case AlgRSAPSSSHA512, "ps512":
		return AlgRSAPSSSHA512, true
	case AlgRSAV15SHA256, "rs256":
		return AlgRSAV15SHA256, true
	}
	return "", false
}

// algorithmFor returns the algorithm a verification key is used with:
// the configured one, else the only one its type allows.
func algorithmFor(configured string, pub crypto.PublicKey, hasSecrets bool) (string, error) {
	if configured != "" {
		alg, ok := Algorithm(configured)
		if !ok {
			return "", fmt.Errorf("unknown algorithm %q", configured)
		}
		return alg, nil
	}
	switch k := pub.(type) {
	case nil:
		if hasSecrets {
			return AlgHMACSHA256, nil
		}
		return "", errors.New("no secret and no public key")
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return AlgECDSAP256SHA256, nil
		case elliptic.P384():
			return AlgECDSAP384SHA384, nil
		}
		return "", errors.New("unsupported elliptic curve")
	case *rsa.PublicKey:
		return "", errors.New("an RSA key needs its algorithm (rsa-pss-sha512 or rsa-v1_5-sha256)")
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// checkKeyFits reports whether a verification key suits alg.
func checkKeyFits(alg string, pub crypto.PublicKey, secrets int) error {
	ok := false
	switch alg {
	case AlgHMACSHA256:
		ok = secrets > 0
	case AlgEd25519:
		_, ok = sigutil.Ed25519Public(pub)
	case AlgECDSAP256SHA256, AlgECDSAP384SHA384:
		k, isEC := pub.(*ecdsa.PublicKey)
		want := elliptic.P256()
		if alg == AlgECDSAP384SHA384 {
			want = elliptic.P384()
		}
		ok = isEC && k.Curve == want
	case AlgRSAPSSSHA512, AlgRSAV15SHA256:
		_, ok = pub.(*rsa.PublicKey)
	}
	if !ok {
		if alg == AlgHMACSHA256 {
			return errors.New("hmac-sha256 needs at least one secret")
		}
		return fmt.Errorf("%s needs a matching public key, got %T", alg, pub)
	}
	return nil
}

// verifyAsymmetric checks sig over base with pub under alg.
func verifyAsymmetric(alg string, pub crypto.PublicKey, base, sig []byte) bool {
	switch alg {
	case AlgEd25519:
		k, ok := sigutil.Ed25519Public(pub)
		return ok && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, base, sig)
	case AlgECDSAP256SHA256, AlgECDSAP384SHA384:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, ecdsaDigest(alg, base), r, s)
	case AlgRSAPSSSHA512:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false
		}
		d := sha512.Sum512(base)
		return rsa.VerifyPSS(k, crypto.SHA512, d[:], sig, &rsa.PSSOptions{SaltLength: rsaPSSSaltLength, Hash: crypto.SHA512}) == nil
	case AlgRSAV15SHA256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false
		}
		d := sha256.Sum256(base)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	}
	return false
}

func ecdsaDigest(alg string, base []byte) []byte {
	if alg == AlgECDSAP384SHA384 {
		d := sha512.Sum384(base)
		return d[:]
	}
	d := sha256.Sum256(base)
	return d[:]
}

// canonicalSignature returns the bytes that identify a verified signature
// for replay detection. An ECDSA signature (r, s) is also valid as
// (r, n−s), so its s is brought to the lower half; every other algorithm
// here admits one encoding only.
func canonicalSignature(alg string, pub crypto.PublicKey, sig []byte) []byte {
	if alg != AlgECDSAP256SHA256 && alg != AlgECDSAP384SHA384 {
		return sig
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return sig
	}
	size := len(sig) / 2
	n := k.Curve.Params().N
	s := new(big.Int).SetBytes(sig[size:])
	half := new(big.Int).Rsh(n, 1)
	if s.Cmp(half) <= 0 {
		return sig
	}
	s.Sub(n, s)
	out := make([]byte, len(sig))
	copy(out, sig[:size])
	s.FillBytes(out[size:])
	return out
}

// signRFC9421 signs base under alg with a secret (hmac-sha256) or a
// private key.
func signRFC9421(alg string, secret []byte, key crypto.Signer, rnd io.Reader, base []byte) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	switch alg {
	case AlgHMACSHA256:
		if len(secret) == 0 {
			return nil, errors.New("signature: rfc9421: hmac-sha256 needs a secret")
		}
		m := hmac.New(sha256.New, secret)
		m.Write(base)
		return m.Sum(nil), nil
	case AlgEd25519:
		k, ok := sigutil.Ed25519Private(key)
		if !ok {
			return nil, fmt.Errorf("signature: rfc9421: ed25519 needs an Ed25519 private key, got %T", key)
		}
		return ed25519.Sign(k, base), nil
	case AlgECDSAP256SHA256, AlgECDSAP384SHA384:
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signature: rfc9421: %s needs an ECDSA private key, got %T", alg, key)
		}
		if err := checkKeyFits(alg, &k.PublicKey, 0); err != nil {
			return nil, fmt.Errorf("signature: rfc9421: %w", err)
		}
		r, s, err := ecdsa.Sign(rnd, k, ecdsaDigest(alg, base))
		if err != nil {
			return nil, fmt.Errorf("signature: rfc9421: %w", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case AlgRSAPSSSHA512:
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signature: rfc9421: rsa-pss-sha512 needs an RSA private key, got %T", key)
		}
		d := sha512.Sum512(base)
		return rsa.SignPSS(rnd, k, crypto.SHA512, d[:], &rsa.PSSOptions{SaltLength: rsaPSSSaltLength, Hash: crypto.SHA512})
	case AlgRSAV15SHA256:
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signature: rfc9421: rsa-v1_5-sha256 needs an RSA private key, got %T", key)
		}
		d := sha256.Sum256(base)
		return rsa.SignPKCS1v15(rnd, k, crypto.SHA256, d[:])
	}
	return nil, fmt.Errorf("signature: rfc9421: unknown algorithm %q", alg)
}
