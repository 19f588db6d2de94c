package replayguard_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// identityUpstream answers with a body naming the call, so a stored
// response replayed to another caller would show.
type identityUpstream struct {
	calls  int
	header http.Header
	v      signature.Verified
}

func (u *identityUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls++
	u.header = r.Header.Clone()
	v, _ := replayguard.VerifiedFrom(r.Context())
	u.v = v
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"call": u.calls, "key": v.KeyID, "sub": v.Subject})
}

// TestIdentityIsTheKeyNotTheSub: a key holder mints tokens with any sub. The
// identity is the key entry that verified; a sub only narrows scope within
// that key, so another key's holder can neither read nor pre-empt its
// stored responses by naming the same sub, or the other key's id as sub.
func TestIdentityIsTheKeyNotTheSub(t *testing.T) {
	f := newJWTFixture(t, "")
	g := newJWTGuard(t, f.cfg)
	up := &identityUpstream{}
	h := g.Middleware(up)
	post := func(kid, sub, idemKey string) *httptest.ResponseRecorder {
		t.Helper()
		body := []byte(`{"amount":100}`)
		r := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/charges", bytes.NewReader(body))
		cl := boundClaims(r, body, time.Now())
		if sub == "" {
			delete(cl, "sub")
		} else {
			cl["sub"] = sub
		}
		r.Header.Set("Authorization", "Bearer "+f.rawToken(t, kid, cl, nil))
		r.Header.Set("Idempotency-Key", idemKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	// The victim: key es, subject alice.
	k := uuid.NewString()
	rec := post("es", "alice", k)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "es", up.v.KeyID)
	assert.Equal(t, "alice", up.v.Subject)

	// The holder of key hs names the same subject and Idempotency-Key: its
	// own request runs; alice's stored response is not handed over.
	rec = post("hs", "alice", k)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 2, up.calls)
	assert.Equal(t, "hs", up.v.KeyID, "the identity is the key that verified")
	assert.Equal(t, "alice", up.v.Subject)

	// Nor by naming the other key's id as its sub.
	k2 := uuid.NewString()
	rec = post("es", "", k2)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Empty(t, up.v.Subject)
	rec = post("hs", "es", k2)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 4, up.calls)
	assert.Equal(t, "hs", up.v.KeyID)

	// Within one key, subjects are separate scopes, and the same one
	// replays its own record.
	rec = post("es", "alice", k)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 4, up.calls)
	rec = post("es", "bob", k)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 5, up.calls)
}

// TestSubjectMustFitAHeader: a sub that cannot travel in a header or scope
// a record unambiguously is a malformed signature, never a 5xx.
func TestSubjectMustFitAHeader(t *testing.T) {
	f := newJWTFixture(t, "")
	g := newJWTGuard(t, f.cfg)
	up := &identityUpstream{}
	h := g.Middleware(up)
	for name, sub := range map[string]string{
		"NUL":          "alice\x00admin",
		"CR LF":        "alice\r\nX-Replayguard-Key-Id: admin",
		"DEL":          "alice\x7f",
		"over 255":     strings.Repeat("a", 256),
		"tab":          "a\tb",
		"unit sep":     "a\x1fb",
		"only control": "\x01",
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/x", nil)
			cl := boundClaims(r, nil, time.Now())
			cl["sub"] = sub
			r.Header.Set("Authorization", "Bearer "+f.rawToken(t, "es", cl, nil))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
			assert.Equal(t, "signature_malformed", decodeProblem(t, rec).Code)
		})
	}
	assert.Zero(t, up.calls)

	// 255 bytes is the most a sub may hold.
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/x", nil)
	cl := boundClaims(r, nil, time.Now())
	cl["sub"] = strings.Repeat("a", 255)
	r.Header.Set("Authorization", "Bearer "+f.rawToken(t, "es", cl, nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// TestJTIWithControlBytesIsMalformed: a jti with a zero byte could read as
// another (key, subject) scope's nonce.
func TestJTIWithControlBytesIsMalformed(t *testing.T) {
	f := newJWTFixture(t, "")
	g := newJWTGuard(t, f.cfg)
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/x", nil)
	cl := boundClaims(r, nil, time.Now())
	cl["jti"] = "a\x00b"
	r.Header.Set("Authorization", "Bearer "+f.rawToken(t, "es", cl, nil))
	rec := httptest.NewRecorder()
	g.Middleware(&identityUpstream{}).ServeHTTP(rec, r)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, "nonce_malformed", decodeProblem(t, rec).Code)
}

// TestJWKSIDIsTheIdentity: with keys from a JWKS, tokens naming different
// kids of the set are one key entry (jwt.jwks_id), which must not collide
// with a configured key's id.
func TestJWKSIDMustDifferFromKeys(t *testing.T) {
	_, err := config.Parse([]byte("scheme: jwt\nkeys: [{id: hs, secrets: [\""+jwtSecret+"\"]}]\njwt:\n  jwks_url: https://idp.example.com/jwks.json\n  jwks_id: hs\n"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "jwt.jwks_id")
}

// TestMiddlewarePassesNoGatewayHeader: whatever a client sends under a name
// an upstream could read as the gateway's (any case, '_' for '-') is gone
// from the request the next handler sees, and so are trailers.
func TestMiddlewarePassesNoGatewayHeader(t *testing.T) {
	g := newGuard(t, testConfig())
	up := &identityUpstream{}
	h := g.Middleware(up)
	r := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodGet, "/v1/x", nil, fixedNow, func(r *http.Request) {
		r.Header[underscored] = []string{"admin"}
		r.Header["x-replayguard-key-id"] = []string{"admin"}
		r.Header["X-REPLAYGUARD-SUBJECT"] = []string{"root"}
		r.Header.Set("X-Replayguard-Role", "admin")
		r.Header.Set("X-Replayguard", "kept: not the prefix")
		r.Header.Set("X-Other", "kept")
		r.Trailer = http.Header{"X-Replayguard-Key-Id": {"admin"}}
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	for name := range up.header {
		assert.False(t, replayguard.IsGatewayHeader(name), "%s reached the upstream", name)
	}
	assert.Equal(t, "kept", up.header.Get("X-Other"))
	assert.Equal(t, "kept: not the prefix", up.header.Get("X-Replayguard"))
	// The caller's request is not modified.
	assert.Equal(t, []string{"admin"}, r.Header[underscored])
}

// underscored is a header name as a CGI-reading client writes it, kept
// out of net/http's canonical form on purpose.
var underscored = "X_Replayguard_Key_Id"

func TestIsGatewayHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Replayguard-Key-Id": true, "x-replayguard-key-id": true, "X_REPLAYGUARD_KEY_ID": true,
		"X-Replayguard_Subject": true, "X-Replayguard-": true, "x_replayguard_anything": true,
		"X-Replayguard": false, "X-Replay-Guard-Key-Id": false, "Replayguard-Key-Id": false, "": false,
		"X-Replayguardx": false,
	} {
		assert.Equal(t, want, replayguard.IsGatewayHeader(name), name)
	}
}

// TestIdentityHeadersCanonical: SetIdentityHeaders sets the identity
// headers by map index, which Header.Get and the upstream read only when
// the names are in canonical form.
func TestIdentityHeadersCanonical(t *testing.T) {
	for _, name := range []string{replayguard.HeaderKeyID, replayguard.HeaderSubject} {
		assert.Equal(t, http.CanonicalHeaderKey(name), name)
	}
	h := http.Header{"X-Replayguard-Key-Id": {"forged"}, underscored: {"forged"}}
	replayguard.SetIdentityHeaders(h, signature.Verified{KeyID: "client-a", Subject: "user-1"})
	assert.Equal(t, http.Header{"X-Replayguard-Key-Id": {"client-a"}, "X-Replayguard-Subject": {"user-1"}}, h)
	assert.Equal(t, "client-a", h.Get(replayguard.HeaderKeyID))
}

// TestVerifyRefusesControlBytes: Guard.Verify on a hand-built request
// refuses CR, LF and other control bytes in every field that enters a
// string to sign, so one signature never verifies a different request
// (here: a host and a target that split their line elsewhere).
func TestVerifyRefusesControlBytes(t *testing.T) {
	g := newGuard(t, testConfig())
	ts := "1750000000"
	signed := func(method, host, target, nonceVal, idem string) *signature.Request {
		h := http.Header{}
		h.Set("X-Key-Id", "client-a")
		h.Set("X-Timestamp", ts)
		h.Set("X-Nonce", nonceVal)
		if idem != "" {
			h["Idempotency-Key"] = []string{idem}
		}
		sts := hmacsig.StringToSign(method, host, target, ts, nonceVal, idem, nil)
		h.Set("X-Signature", hmacsig.Sign([]byte("secret-a-0123456789"), []byte(sts)))
		return &signature.Request{Method: method, Scheme: "http", Host: host, Target: target, Header: h}
	}
	nonceVal := func() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

	// The same string to sign, split differently: a signature over the
	// first request must not verify the second.
	a := signed(http.MethodGet, "api.example.com\n/admin", "/x", nonceVal(), "")
	b := &signature.Request{Method: http.MethodGet, Scheme: "http", Host: "api.example.com", Target: "/admin\n/x", Header: a.Header}
	_, err := g.Verify(context.Background(), b)
	require.ErrorIs(t, err, signature.ErrMalformed)

	tests := map[string]struct {
		r    *signature.Request
		want error
	}{
		"LF in method":           {signed("GET\n", "api.example.com", "/x", nonceVal(), ""), signature.ErrMethodInvalid},
		"space in method":        {signed("GE T", "api.example.com", "/x", nonceVal(), ""), signature.ErrMethodInvalid},
		"CR LF in host":          {signed(http.MethodGet, "api.example.com\r\n", "/x", nonceVal(), ""), signature.ErrMalformed},
		"NUL in target":          {signed(http.MethodGet, "api.example.com", "/x\x00", nonceVal(), ""), signature.ErrMalformed},
		"LF in target":           {signed(http.MethodGet, "api.example.com", "/x\n", nonceVal(), ""), signature.ErrMalformed},
		"LF in Idempotency-Key":  {signed(http.MethodPost, "api.example.com", "/x", nonceVal(), "k\nv"), signature.ErrMalformed},
		"CR in Idempotency-Key":  {signed(http.MethodPost, "api.example.com", "/x", nonceVal(), "k\rv"), signature.ErrMalformed},
		"LF in nonce":            {signed(http.MethodGet, "api.example.com", "/x", nonceVal()+"\n", ""), signature.ErrMalformed},
		"control in header name": {withHeader(signed(http.MethodGet, "api.example.com", "/x", nonceVal(), ""), "X-A\nB", "v"), signature.ErrMalformed},
		"control in header":      {withHeader(signed(http.MethodGet, "api.example.com", "/x", nonceVal(), ""), "X-Other", "a\x01b"), signature.ErrMalformed},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := g.Verify(context.Background(), tt.r)
			require.ErrorIs(t, err, tt.want)
		})
	}

	// The same construction without control bytes verifies: the checks
	// above fail for the bytes, not for the signing.
	_, err = g.Verify(context.Background(), signed(http.MethodPost, "api.example.com", "/x?a=1", nonceVal(), "k-1"))
	require.NoError(t, err)
	_, err = g.Verify(context.Background(), withHeader(signed(http.MethodGet, "api.example.com", "/x", nonceVal(), ""), "X-Other", "a\tb"))
	require.NoError(t, err, "a tab is allowed inside a field value")
}

func withHeader(r *signature.Request, name, value string) *signature.Request {
	r.Header[name] = append(r.Header[name], value)
	return r
}

// TestCoveredMethodInAnyCase: a client that lowercases a covered method
// is still covered: without a key it is refused when keys are required,
// and a retry with its key is answered from the record.
func TestCoveredMethodInAnyCase(t *testing.T) {
	g := newGuard(t, testConfig())
	up := &identityUpstream{}
	h := g.Middleware(up)
	for _, method := range []string{"post", "Post", "pOST", "patch"} {
		r := signedRequest(t, "client-a", "secret-a-0123456789", method, "/v1/charges", []byte(`{}`), fixedNow, func(r *http.Request) {
			r.Header.Del("Idempotency-Key")
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, http.StatusBadRequest, rec.Code, method+" "+rec.Body.String())
		assert.Equal(t, "idempotency_key_missing", decodeProblem(t, rec).Code)
	}
	assert.Zero(t, up.calls)

	// The same operation resent with another spelling of the method does
	// not run twice: the fingerprint covers the method as sent, so the key
	// is refused as reused with another request.
	key := uuid.NewString()
	send := func(method string) *httptest.ResponseRecorder {
		r := signedRequest(t, "client-a", "secret-a-0123456789", method, "/v1/charges", []byte(`{}`), fixedNow, func(r *http.Request) {
			r.Header.Set("Idempotency-Key", key)
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	require.Equal(t, http.StatusOK, send("post").Code)
	rec := send("POST")
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	assert.Equal(t, "idempotency_key_reused", decodeProblem(t, rec).Code)
	rec = send("post")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 1, up.calls)
}

// TestPresetWithoutMethodAcceptsPOSTOnly: a captured GitHub delivery
// resent as PUT, DELETE or post is refused with 405 and Allow: POST before
// any store is touched, so it cannot run a second time with no record.
func TestPresetWithoutMethodAcceptsPOSTOnly(t *testing.T) {
	cfg := replayguard.Config{Scheme: "github", Keys: []replayguard.KeyConfig{{ID: "gh", Secrets: []string{"gh-webhook-secret-0123456789"}}}}
	g := newGuard(t, cfg)
	up := &identityUpstream{}
	h := g.Middleware(up)
	body := []byte(`{"action":"opened"}`)
	deliver := func(method string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://api.example.com/hooks/github", bytes.NewReader(body))
		r.Header.Set("X-GitHub-Delivery", "d-1")
		r.Header.Set("X-Hub-Signature-256", "sha256="+hexHMAC([]byte("gh-webhook-secret-0123456789"), body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	require.Equal(t, http.StatusOK, deliver(http.MethodPost).Code)
	for _, m := range []string{http.MethodPut, http.MethodDelete, "post", "Post", http.MethodPatch} {
		rec := deliver(m)
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, m)
		assert.Equal(t, "method_not_allowed", decodeProblem(t, rec).Code)
		assert.Equal(t, "POST", rec.Header().Get("Allow"))
	}
	assert.Equal(t, 1, up.calls)
}

func hexHMAC(secret, msg []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}
