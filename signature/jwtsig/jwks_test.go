package jwtsig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwks"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// jwksServer serves a key set on 127.0.0.1 and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    []byte
	status int
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	js := &jwksServer{status: http.StatusOK}
	js.set(t, keys...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	js.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		js.hits.Add(1)
		js.mu.Lock()
		doc, status := js.doc, js.status
		js.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(doc)
	})}}
	js.Start()
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(t *testing.T, keys ...map[string]any) {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	js.mu.Lock()
	js.doc = b
	js.mu.Unlock()
}

func (js *jwksServer) setRaw(doc []byte, status int) {
	js.mu.Lock()
	js.doc, js.status = doc, status
	js.mu.Unlock()
}

// jwksClock is a clock the test moves.
type jwksClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *jwksClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *jwksClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// jwkOf is the public JWK of k with a kid and alg.
func jwkOf(t *testing.T, k any, kid, alg string) map[string]any {
	t.Helper()
	m, err := signature.PublicJWK(k)
	require.NoError(t, err)
	m["kid"] = kid
	if alg != "" {
		m["alg"] = alg
	}
	m["use"] = "sig"
	return m
}

func newP256Key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// jwksScheme is a jwt scheme whose keys come from js alone, on clock.
func jwksScheme(t *testing.T, js *jwksServer, clock *jwksClock, keys ...signature.Key) (*jwtsig.Scheme, *jwks.Set) {
	t.Helper()
	set, err := jwks.New(js.URL+"/.well-known/jwks.json", jwks.WithClock(clock.Now))
	require.NoError(t, err)
	s, err := jwtsig.New(keys, jwtsig.WithJWKS(set), jwtsig.WithClock(clock.Now), jwtsig.WithBind())
	require.NoError(t, err)
	return s, set
}

func verifyKid(t *testing.T, s *jwtsig.Scheme, sg jwtSigner, clock *jwksClock) error {
	t.Helper()
	r := jwtRequest()
	cl := jwt.MapClaims{"jti": "j-" + time.Now().String(), "iat": clock.Now().Unix()}
	_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
	return err
}

func TestJWKSFetchesOnFirstUseAndCaches(t *testing.T) {
	k1 := newP256Key(t)
	js := newJWKSServer(t, jwkOf(t, k1, "k1", "ES256"))
	clock := &jwksClock{t: jwtNow}
	s, set := jwksScheme(t, js, clock)
	assert.Zero(t, js.hits.Load(), "nothing is fetched before the first lookup")

	sg := jwtSigner{"k1", jwt.SigningMethodES256, k1}
	require.NoError(t, verifyKid(t, s, sg, clock))
	require.NoError(t, verifyKid(t, s, sg, clock))
	assert.EqualValues(t, 1, js.hits.Load())
	assert.Equal(t, []string{"k1"}, set.KeyIDs())

	err := verifyKid(t, s, jwtSigner{"k1", jwt.SigningMethodES384, jwtKeys(t).es3}, clock)
	assert.ErrorIs(t, err, signature.ErrInvalid, "a JWKS key is used with its one algorithm")
}

func TestJWKSRefreshOnUnknownKidIsRateLimited(t *testing.T) {
	k1, k2 := newP256Key(t), newP256Key(t)
	js := newJWKSServer(t, jwkOf(t, k1, "k1", "ES256"))
	clock := &jwksClock{t: jwtNow}
	s, _ := jwksScheme(t, js, clock)
	require.NoError(t, verifyKid(t, s, jwtSigner{"k1", jwt.SigningMethodES256, k1}, clock))
	require.EqualValues(t, 1, js.hits.Load())

	// The issuer rotates in k2.
	js.set(t, jwkOf(t, k1, "k1", "ES256"), jwkOf(t, k2, "k2", "ES256"))
	sg2 := jwtSigner{"k2", jwt.SigningMethodES256, k2}
	clock.Add(time.Second)
	for i := 0; i < 50; i++ {
		assert.ErrorIs(t, verifyKid(t, s, jwtSigner{"invented-" + string(rune('a'+i%26)), jwt.SigningMethodES256, k2}, clock), signature.ErrKeyUnknown)
	}
	assert.ErrorIs(t, verifyKid(t, s, sg2, clock), signature.ErrKeyUnknown, "inside the minimum interval no fetch happens")
	assert.EqualValues(t, 1, js.hits.Load())

	clock.Add(jwks.DefaultMinRefresh)
	require.NoError(t, verifyKid(t, s, sg2, clock), "an unknown kid refreshes the set once the interval passed")
	assert.EqualValues(t, 2, js.hits.Load())

	// A flood of invented kids costs one fetch per interval.
	clock.Add(jwks.DefaultMinRefresh)
	toks := make([]string, 40)
	for i := range toks {
		toks[i] = mintJWT(t, jwtSigner{"flood-" + string(rune('a'+i%26)), jwt.SigningMethodES256, k2}, jwt.MapClaims{"jti": "x", "iat": jwtNow.Unix()}, nil)
	}
	errs := make([]error, len(toks))
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Verify(context.Background(), withBearer(jwtRequest(), tok))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.ErrorIs(t, err, signature.ErrKeyUnknown)
	}
	assert.EqualValues(t, 3, js.hits.Load())
}

func TestJWKSRefreshesStaleSetInBackground(t *testing.T) {
	k1, k2 := newP256Key(t), newP256Key(t)
	js := newJWKSServer(t, jwkOf(t, k1, "k1", "ES256"))
	clock := &jwksClock{t: jwtNow}
	s, set := jwksScheme(t, js, clock)
	sg := jwtSigner{"k1", jwt.SigningMethodES256, k1}
	require.NoError(t, verifyKid(t, s, sg, clock))

	js.set(t, jwkOf(t, k1, "k1", "ES256"), jwkOf(t, k2, "k2", "ES256"))
	clock.Add(jwks.DefaultRefresh)
	require.NoError(t, verifyKid(t, s, sg, clock), "a stale set goes on serving")
	require.Eventually(t, func() bool { return len(set.KeyIDs()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 2, js.hits.Load())
	require.NoError(t, verifyKid(t, s, jwtSigner{"k2", jwt.SigningMethodES256, k2}, clock))
	assert.EqualValues(t, 2, js.hits.Load())
}

func TestJWKSFailedFetchKeepsKeys(t *testing.T) {
	k1 := newP256Key(t)
	js := newJWKSServer(t, jwkOf(t, k1, "k1", "ES256"))
	clock := &jwksClock{t: jwtNow}
	s, set := jwksScheme(t, js, clock)
	sg := jwtSigner{"k1", jwt.SigningMethodES256, k1}
	require.NoError(t, verifyKid(t, s, sg, clock))

	for _, bad := range []struct {
		name   string
		doc    string
		status int
	}{
		{"server error", `{"keys":[]}`, http.StatusInternalServerError},
		{"not JSON", `<html>`, http.StatusOK},
		{"no usable key", `{"keys":[{"kty":"oct","k":"AAAA","kid":"s"}]}`, http.StatusOK},
		{"too large", `{"keys":[],"pad":"` + strings.Repeat("x", jwks.DefaultMaxBytes) + `"}`, http.StatusOK},
	} {
		t.Run(bad.name, func(t *testing.T) {
			js.setRaw([]byte(bad.doc), bad.status)
			clock.Add(jwks.DefaultMinRefresh)
			err := verifyKid(t, s, jwtSigner{"k9", jwt.SigningMethodES256, k1}, clock)
			require.ErrorIs(t, err, signature.ErrKeyUnknown)
			assert.ErrorIs(t, err, jwks.ErrFetch, "the fetch error stays in the chain")
			assert.NotContains(t, err.Error(), "127.0.0.1", "the detail names no address")
			require.NoError(t, verifyKid(t, s, sg, clock), "the cached keys stay")
			require.Error(t, set.Refresh(context.Background()))
		})
	}
}

func TestJWKSConfiguredKeyWins(t *testing.T) {
	k1 := newP256Key(t)
	js := newJWKSServer(t, jwkOf(t, newP256Key(t), "k1", "ES256"))
	clock := &jwksClock{t: jwtNow}
	s, _ := jwksScheme(t, js, clock, signature.Key{ID: "k1", PublicKey: &k1.PublicKey})
	require.NoError(t, verifyKid(t, s, jwtSigner{"k1", jwt.SigningMethodES256, k1}, clock))
	assert.Zero(t, js.hits.Load())
}

func TestParseJWKSSelectsSignatureKeys(t *testing.T) {
	k := jwtKeys(t)
	ed := jwkOf(t, k.ed.Public(), "ed", "")
	rsaNoAlg := jwkOf(t, &k.rsa.PublicKey, "rsa", "")
	ps := jwkOf(t, &k.rsa.PublicKey, "ps", "PS384")
	es := jwkOf(t, &k.es3.PublicKey, "es", "")
	enc := jwkOf(t, &k.es.PublicKey, "enc", "")
	enc["use"] = "enc"
	noKid := jwkOf(t, &k.es.PublicKey, "", "")
	delete(noKid, "kid")
	badAlg := jwkOf(t, &k.es.PublicKey, "bad", "ES512")
	dup := jwkOf(t, &k.es.PublicKey, "ed", "")
	doc, err := json.Marshal(map[string]any{"keys": []any{
		ed, rsaNoAlg, ps, es, enc, noKid, badAlg, dup, "junk",
		map[string]any{"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "kid": "hmac", "alg": "HS256"},
	}})
	require.NoError(t, err)
	set, err := jwks.Parse(doc)
	require.NoError(t, err)
	assert.Equal(t, 4, set.Len())
	assert.Equal(t, "EdDSA", set.Algorithm("ed"))
	assert.Equal(t, "RS256", set.Algorithm("rsa"), "an RSA key without alg is RS256")
	assert.Equal(t, "PS384", set.Algorithm("ps"))
	assert.Equal(t, "ES384", set.Algorithm("es"))
	for _, skipped := range []string{"enc", "bad", "hmac", ""} {
		assert.Empty(t, set.Algorithm(skipped), skipped)
	}
	empty, err := jwks.Parse([]byte(`{"keys":[]}`))
	require.NoError(t, err)
	assert.Zero(t, empty.Len())
}

func TestNewJWKSRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "file:///etc/jwks.json", "ftp://x/jwks", "https://", "::"} {
		_, err := jwks.New(u)
		assert.Error(t, err, u)
	}
}

func TestJWKSFetchTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	set, err := jwks.New(srv.URL, jwks.WithTimeout(50*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	err = set.Refresh(context.Background())
	require.ErrorIs(t, err, jwks.ErrFetch)
	assert.Less(t, time.Since(start), 5*time.Second)
}
