package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// MinRSABits is the smallest RSA modulus accepted for verification keys
// (RFC 7518 §3.3 requires 2048 bits).
const MinRSABits = sigutil.MinRSABits

// ErrPrivateKey reports key material that holds a private key where only a
// public key belongs (a configured verification key, a DPoP proof's jwk).
var ErrPrivateKey = errors.New("signature: private key material where a public key belongs")

// ParsePublicKeyPEM parses a PEM-encoded public key: a "PUBLIC KEY" block
// (PKIX: RSA, ECDSA P-256/P-384/P-521 or Ed25519), an "RSA PUBLIC KEY"
// block (PKCS #1) or a "CERTIFICATE" block, whose public key is returned.
// Private key blocks are refused with ErrPrivateKey.
func ParsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("signature: no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%w: PEM block %q; give the public key", ErrPrivateKey, block.Type)
	default:
		return nil, fmt.Errorf("signature: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("signature: parsing %s: %w", block.Type, err)
	}
	if err := sigutil.CheckPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// JWK is a parsed JSON Web Key (RFC 7517).
type JWK struct {
	// KeyID is the "kid" member; may be empty.
	KeyID string
	// Algorithm is the "alg" member; may be empty.
	Algorithm string
	// Use is the "use" member ("sig", "enc"); may be empty.
	Use string
	// Key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey, or the
	// secret bytes of an "oct" key.
	Key any
}

// Secret returns the bytes of an "oct" key, and false for a public key.
func (j JWK) Secret() ([]byte, bool) { return sigutil.SecretKey(j.Key) }

// Key types are told apart by type switches, never by a type assertion to
// []byte or to a named byte-slice type: the Yaegi interpreter, which runs
// the Traefik plugin, lets v.([]byte) succeed on an ed25519.PublicKey and
// v.(ed25519.PublicKey) on a []byte, while a type switch, its named types
// first, matches the concrete type there as in compiled code.

// jwkSPKIPrefix holds the DER SubjectPublicKeyInfo bytes that precede an
// uncompressed point (0x04 || X || Y) of each curve, so that an EC JWK is
// parsed by crypto/x509, which also checks that the point is on the curve.
var jwkSPKIPrefix = map[string][]byte{
	"P-256": {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00},
	"P-384": {0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
		0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00},
	"P-521": {0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
		0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00},
}

// curveBytes is the coordinate size of each curve.
var curveBytes = map[string]int{"P-256": 32, "P-384": 48, "P-521": 66}

// rsaPrivateMembers and the "d" member mark private JWKs.
var rsaPrivateMembers = []string{"p", "q", "dp", "dq", "qi", "oth"}

// ParseJWK parses a JSON Web Key given as a decoded JSON object. Supported
// key types: "RSA" (at least MinRSABits), "EC" (P-256, P-384, P-521),
// "OKP" (Ed25519) and "oct". A JWK holding private members ("d", and the
// RSA primes) is refused with ErrPrivateKey.
func ParseJWK(m map[string]any) (JWK, error) {
	var j JWK
	var err error
	kty, err := jwkString(m, "kty", true)
	if err != nil {
		return j, err
	}
	if j.KeyID, err = jwkString(m, "kid", false); err != nil {
		return j, err
	}
	if j.Algorithm, err = jwkString(m, "alg", false); err != nil {
		return j, err
	}
	if j.Use, err = jwkString(m, "use", false); err != nil {
		return j, err
	}
	if kty != "oct" {
		if _, ok := m["d"]; ok {
			return j, fmt.Errorf("%w: JWK has a \"d\" member", ErrPrivateKey)
		}
	}
	switch kty {
	case "RSA":
		j.Key, err = jwkRSA(m)
	case "EC":
		j.Key, err = jwkEC(m)
	case "OKP":
		j.Key, err = jwkOKP(m)
	case "oct":
		j.Key, err = jwkBytes(m, "k")
	default:
		err = fmt.Errorf("signature: JWK: unsupported key type %q", kty)
	}
	if err != nil {
		return JWK{}, err
	}
	return j, nil
}

// jwkRSA is the public key of an "RSA" JWK.
func jwkRSA(m map[string]any) (any, error) {
	for _, p := range rsaPrivateMembers {
		if _, ok := m[p]; ok {
			return nil, fmt.Errorf("%w: JWK has a %q member", ErrPrivateKey, p)
		}
	}
	n, err := jwkBytes(m, "n")
	if err != nil {
		return nil, err
	}
	e, err := jwkBytes(m, "e")
	if err != nil {
		return nil, err
	}
	if len(e) > 4 || (len(e) > 0 && e[0] == 0) || (len(n) > 0 && n[0] == 0) {
		return nil, errors.New("signature: JWK: RSA \"n\" or \"e\" is not a minimal big-endian integer")
	}
	exp := 0
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("signature: JWK: RSA exponent must be odd and at least 3")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	if err := sigutil.CheckPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// jwkEC is the public key of an "EC" JWK, checked to lie on its curve.
func jwkEC(m map[string]any) (any, error) {
	crv, err := jwkString(m, "crv", true)
	if err != nil {
		return nil, err
	}
	size, ok := curveBytes[crv]
	if !ok {
		return nil, fmt.Errorf("signature: JWK: unsupported curve %q", crv)
	}
	x, err := jwkBytes(m, "x")
	if err != nil {
		return nil, err
	}
	y, err := jwkBytes(m, "y")
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("signature: JWK: %s coordinates must be %d bytes", crv, size)
	}
	der := make([]byte, 0, len(jwkSPKIPrefix[crv])+1+2*size)
	der = append(der, jwkSPKIPrefix[crv]...)
	der = append(der, 4)
	der = append(der, x...)
	der = append(der, y...)
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("signature: JWK: EC point is not on the curve")
	}
	return pub, nil
}

// jwkOKP is the public key of an "OKP" (Ed25519) JWK.
func jwkOKP(m map[string]any) (any, error) {
	crv, err := jwkString(m, "crv", true)
	if err != nil {
		return nil, err
	}
	if crv != "Ed25519" {
		return nil, fmt.Errorf("signature: JWK: unsupported OKP curve %q", crv)
	}
	x, err := jwkBytes(m, "x")
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, errors.New("signature: JWK: Ed25519 \"x\" must be 32 bytes")
	}
	return ed25519.PublicKey(x), nil
}

// ParseJWKJSON parses a JSON Web Key from its JSON text.
func ParseJWKJSON(data []byte) (JWK, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return JWK{}, fmt.Errorf("signature: JWK: %w", err)
	}
	return ParseJWK(m)
}

func jwkString(m map[string]any, name string, required bool) (string, error) {
	v, ok := m[name]
	if !ok {
		if required {
			return "", fmt.Errorf("signature: JWK: %q is required", name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("signature: JWK: %q is not a string", name)
	}
	if required && s == "" {
		return "", fmt.Errorf("signature: JWK: %q is empty", name)
	}
	return s, nil
}

func jwkBytes(m map[string]any, name string) ([]byte, error) {
	s, err := jwkString(m, name, true)
	if err != nil {
		return nil, err
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature: JWK: %q is not unpadded base64url", name)
	}
	return b, nil
}

// PublicJWK returns the public JWK members of a public key (or of the public
// half of a private key): exactly the members RFC 7638 hashes, so that
// {"kty", "crv", "x", "y"} for EC, {"kty", "n", "e"} for RSA and
// {"kty", "crv", "x"} for Ed25519.
func PublicJWK(key any) (map[string]any, error) {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := key.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		crv := sigutil.CurveName(k.Curve)
		if crv == "" {
			return nil, errors.New("signature: unsupported elliptic curve")
		}
		ek, err := k.ECDH()
		if err != nil {
			return nil, fmt.Errorf("signature: %w", err)
		}
		pt := ek.Bytes()
		size := curveBytes[crv]
		return map[string]any{"kty": "EC", "crv": crv, "x": b64(pt[1 : 1+size]), "y": b64(pt[1+size:])}, nil
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(k)}, nil
	}
	return nil, fmt.Errorf("signature: unsupported public key type %T", key)
}

// JWKThumbprint returns the RFC 7638 SHA-256 thumbprint of a public key,
// base64url without padding: the "jkt" of RFC 9449.
func JWKThumbprint(key any) (string, error) {
	m, err := PublicJWK(key)
	if err != nil {
		return "", err
	}
	return thumbprintOf(m), nil
}

// thumbprintOf hashes the required members of a public JWK in the
// lexicographic order RFC 7638 §3.2 prescribes. encoding/json sorts map
// keys and escapes nothing a base64url value or a curve name contains.
func thumbprintOf(m map[string]any) string {
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// keyAlgorithm returns the one algorithm key is used with: alg, checked
// against the key's type and size, or the algorithm an ECDSA curve or an
// Ed25519 key implies when alg is empty. Secrets are []byte.
func keyAlgorithm(key any, alg string) (string, error) {
	// The named byte-slice type comes before []byte (see secretKey).
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return alg, nil
		case "":
			return "", errors.New("an RSA key needs its algorithm (RS256, RS384, RS512, PS256, PS384 or PS512)")
		}
		return "", fmt.Errorf("algorithm %q does not take an RSA key", alg)
	case *ecdsa.PublicKey:
		want := ""
		switch sigutil.CurveName(k.Curve) {
		case "P-256":
			want = "ES256"
		case "P-384":
			want = "ES384"
		case "P-521":
			want = "ES512"
		default:
			return "", errors.New("unsupported elliptic curve")
		}
		if alg != "" && alg != want {
			return "", fmt.Errorf("algorithm %q does not take a %s key (want %s)", alg, sigutil.CurveName(k.Curve), want)
		}
		return want, nil
	case ed25519.PublicKey:
		if alg != "" && alg != "EdDSA" {
			return "", fmt.Errorf("algorithm %q does not take an Ed25519 key (want EdDSA)", alg)
		}
		return "EdDSA", nil
	case []byte:
		need := 0
		switch alg {
		case "HS256":
			need = 32
		case "HS384":
			need = 48
		case "HS512":
			need = 64
		default:
			return "", fmt.Errorf("algorithm %q does not take a shared secret (want HS256, HS384 or HS512)", alg)
		}
		if len(k) < need {
			return "", fmt.Errorf("%s needs a secret of at least %d bytes (RFC 7518 §3.2), got %d", alg, need, len(k))
		}
		return alg, nil
	}
	return "", fmt.Errorf("unsupported key type %T", key)
}

// KeyAlgorithm returns the one JOSE algorithm key is used with: alg checked
// against the key's type and size, or the algorithm the key implies.
// Secrets are []byte.
func KeyAlgorithm(key any, alg string) (string, error) {
	a, err := keyAlgorithm(key, alg)
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	return a, nil
}
