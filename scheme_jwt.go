package replayguard

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwks"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

func validateJWT(c Config) []error {
	var errs []error
	j := c.JWT
	if j.Header != "" && !signature.IsToken(j.Header) {
		errs = append(errs, fieldErr("jwt.header", "%q is not a header name", j.Header))
	}
	if strings.ContainsAny(j.Prefix, " \t") || (j.Prefix != "" && !signature.IsToken(j.Prefix)) {
		errs = append(errs, fieldErr("jwt.prefix", "%q is not an authentication scheme name", j.Prefix))
	}
	if j.JWKSURL != "" {
		if _, err := jwks.New(j.JWKSURL); err != nil {
			errs = append(errs, fieldErr("jwt.jwks_url", "want an http:// or https:// URL, got %q", j.JWKSURL))
		}
		id := jwksID(j)
		if signature.HasControl(id) {
			errs = append(errs, fieldErr("jwt.jwks_id", "%q contains a control byte", id))
		}
		for i, k := range c.Keys {
			if k.ID == id {
				errs = append(errs, fieldErr("jwt.jwks_id", "%q is also the id of keys[%d]; the key set is an entry of its own", id, i))
			}
		}
	}
	if j.DPoP && j.Prefix == "" && j.Header != "" && !strings.EqualFold(j.Header, jwtsig.DefaultHeader) {
		errs = append(errs, fieldErr("jwt.dpop", "DPoP needs a jwt.prefix when the token travels in %q", j.Header))
	}
	if j.Leeway < 0 {
		errs = append(errs, fieldErr("jwt.leeway", "must not be negative"))
	}
	seen := map[string]bool{}
	for i, b := range j.Bind {
		f := fmt.Sprintf("jwt.bind[%d]", i)
		switch b {
		case jwtsig.ClaimHTM, jwtsig.ClaimHTU, jwtsig.ClaimBSH:
			if seen[b] {
				errs = append(errs, fieldErr(f, "%q listed twice", b))
			}
			seen[b] = true
		default:
			errs = append(errs, fieldErr(f, "%q is not one of %s, %s, %s", b, jwtsig.ClaimHTM, jwtsig.ClaimHTU, jwtsig.ClaimBSH))
		}
	}
	_, keyErrs := jwtKeys(c)
	return append(errs, keyErrs...)
}

func buildJWT(c Config, _ []signature.Key, now func() time.Time) (signature.Scheme, error) {
	s, err := newJWTScheme(c, now)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newJWTScheme builds the jwt scheme of c on the clock now, which checks exp
// and nbf and ages the JWKS cache.
func newJWTScheme(c Config, now func() time.Time) (*jwtsig.Scheme, error) {
	keys, errs := jwtKeys(c)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	j := c.JWT
	header, prefix := j.Header, j.Prefix
	if header == "" {
		header = jwtsig.DefaultHeader
	}
	if prefix == "" && strings.EqualFold(header, jwtsig.DefaultHeader) {
		prefix = jwtsig.DefaultPrefix
	}
	opts := []jwtsig.Option{
		jwtsig.WithClock(now),
		jwtsig.WithHeader(header, prefix),
		jwtsig.WithIssuer(j.Issuer),
		jwtsig.WithAudience(j.Audience),
		jwtsig.WithDPoP(j.DPoP),
	}
	if j.Leeway > 0 {
		opts = append(opts, jwtsig.WithLeeway(j.Leeway.D()))
	}
	if j.Bind != nil {
		opts = append(opts, jwtsig.WithBind(j.Bind...))
	}
	if j.JWKSURL != "" {
		set, err := jwks.New(j.JWKSURL, jwks.WithClock(now), jwks.WithID(jwksID(j)))
		if err != nil {
			return nil, wrapField("jwt.jwks_url", err)
		}
		opts = append(opts, jwtsig.WithJWKS(set))
	}
	return jwtsig.New(keys, opts...)
}

// jwksID is the identity of tokens verified with a key of the JWKS.
func jwksID(j JWTConfig) string {
	if j.JWKSID == "" {
		return jwks.DefaultID
	}
	return j.JWKSID
}

// jwtKeys loads the keys of the jwt scheme: secrets, a PEM public key file
// or a JWK per key, each with its one algorithm. Every problem names its
// field.
func jwtKeys(c Config) ([]signature.Key, []error) {
	var (
		keys []signature.Key
		errs []error
	)
	for i, k := range c.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		sources := 0
		if len(k.Secrets) > 0 {
			sources++
		}
		if k.PublicKeyFile != "" {
			sources++
		}
		if k.JWK != nil {
			sources++
		}
		if sources != 1 {
			errs = append(errs, fieldErr(f, "the jwt scheme needs exactly one of secrets, public_key_file or jwk for key %q", k.ID))
			continue
		}
		if k.Algorithm != "" && !supportedJWTAlgorithm(k.Algorithm) {
			errs = append(errs, fieldErr(f+".algorithm", "%q is not one of %s", k.Algorithm, strings.Join(jwtsig.Algorithms(), ", ")))
			continue
		}
		var (
			sk   signature.Key
			kerr []error
		)
		switch {
		case len(k.Secrets) > 0:
			sk, kerr = jwtSecretKey(f, k)
		case k.PublicKeyFile != "":
			sk, kerr = jwtPEMKey(f, k)
		default:
			sk, kerr = jwtJWKKey(f, k)
		}
		if len(kerr) > 0 {
			for _, e := range kerr {
				if !errors.Is(e, errSkipKey) {
					errs = append(errs, e)
				}
			}
			continue
		}
		keys = append(keys, sk)
	}
	return keys, errs
}

// errSkipKey leaves a key out without an error of its own: Config.Validate
// reports the problem.
var errSkipKey = errors.New("skip")

// jwtSecretKey is the key entry k (field f) of HMAC secrets.
func jwtSecretKey(f string, k KeyConfig) (signature.Key, []error) {
	sk := signature.Key{ID: k.ID}
	var err error
	if sk.Algorithm, err = secretAlgorithm(k.Algorithm); err != nil {
		return sk, []error{wrapField(f+".algorithm", err)}
	}
	var errs []error
	for j, s := range k.Secrets {
		b, err := signature.ParseSecret(s)
		if err != nil {
			// Config.Validate reports unparsable secrets; the key is
			// left out all the same.
			errs = append(errs, errSkipKey)
			continue
		}
		if _, err := signature.KeyAlgorithm(b, sk.Algorithm); err != nil {
			errs = append(errs, wrapField(fmt.Sprintf("%s.secrets[%d]", f, j), err))
			continue
		}
		sk.Secrets = append(sk.Secrets, b)
	}
	return sk, errs
}

// jwtPEMKey is the key entry k (field f) of a PEM public key file.
func jwtPEMKey(f string, k KeyConfig) (signature.Key, []error) {
	sk := signature.Key{ID: k.ID}
	data, err := os.ReadFile(k.PublicKeyFile)
	if err != nil {
		return sk, []error{wrapField(f+".public_key_file", err)}
	}
	if sk.PublicKey, err = signature.ParsePublicKeyPEM(data); err != nil {
		return sk, []error{wrapField(f+".public_key_file", err)}
	}
	if sk.Algorithm, err = signature.KeyAlgorithm(sk.PublicKey, k.Algorithm); err != nil {
		return sk, []error{wrapField(f+".algorithm", err)}
	}
	return sk, nil
}

// jwtJWKKey is the key entry k (field f) given as a JWK: a public key, or
// an "oct" secret.
func jwtJWKKey(f string, k KeyConfig) (signature.Key, []error) {
	sk := signature.Key{ID: k.ID}
	jk, err := signature.ParseJWK(k.JWK)
	if err != nil {
		return sk, []error{wrapField(f+".jwk", err)}
	}
	if jk.KeyID != "" && jk.KeyID != k.ID {
		return sk, []error{fieldErr(f+".jwk", "kid %q differs from the key id %q", jk.KeyID, k.ID)}
	}
	alg := k.Algorithm
	if alg == "" {
		alg = jk.Algorithm
	} else if jk.Algorithm != "" && jk.Algorithm != alg {
		return sk, []error{fieldErr(f+".algorithm", "%q differs from the jwk's alg %q", alg, jk.Algorithm)}
	}
	if secret, ok := jk.Secret(); ok {
		if sk.Algorithm, err = secretAlgorithm(alg); err == nil {
			_, err = signature.KeyAlgorithm(secret, sk.Algorithm)
		}
		sk.Secrets = [][]byte{secret}
	} else {
		sk.PublicKey = jk.Key
		sk.Algorithm, err = signature.KeyAlgorithm(jk.Key, alg)
	}
	if err != nil {
		return sk, []error{wrapField(f+".algorithm", err)}
	}
	return sk, nil
}

func secretAlgorithm(alg string) (string, error) {
	switch alg {
	case "":
		return "HS256", nil
	case "HS256", "HS384", "HS512":
		return alg, nil
	}
	return "", fmt.Errorf("%q does not take a shared secret (want HS256, HS384 or HS512)", alg)
}

func supportedJWTAlgorithm(alg string) bool {
	for _, a := range jwtsig.Algorithms() {
		if a == alg {
			return true
		}
	}
	return false
}
