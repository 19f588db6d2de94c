package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// seenRequest is what the echo upstream reports of the request it ran.
type seenRequest struct {
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Header     map[string][]string `json:"header"`
	Trailer    map[string][]string `json:"trailer"`
	// CGI holds the HTTP_* variables a CGI, WSGI or PHP upstream would
	// build from the headers ('-' read as '_', upper-cased).
	CGI map[string][]string `json:"cgi"`
}

func newEchoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = bufio.NewReader(r.Body).WriteTo(new(strings.Builder))
		s := seenRequest{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header, Trailer: r.Trailer, CGI: map[string][]string{}}
		for name, vs := range r.Header {
			cgi := "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			s.CGI[cgi] = append(s.CGI[cgi], vs...)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func decodeSeen(t *testing.T, r response) seenRequest {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, r.body)
	var s seenRequest
	require.NoError(t, json.Unmarshal([]byte(r.body), &s), r.body)
	return s
}

const trustSecret = "trust-secret-0123456789abcdef"

const trustHMACConfig = `
listen: 127.0.0.1:0
upstream: %s
auth_listen: 127.0.0.1:0
idempotency: {required: false}
keys:
  - id: client-a
    secrets: ["` + trustSecret + `"]
`

// TestBinaryPassesNoGatewayHeader: a client's X_Replayguard_Key_Id (or any
// other spelling an upstream could read as the gateway's header) never
// reaches the upstream; the gateway's own headers carry the verified key.
func TestBinaryPassesNoGatewayHeader(t *testing.T) {
	up := newEchoUpstream(t)
	g := startGateway(t, fmt.Sprintf(trustHMACConfig, up.URL))
	r := signed(t, g, "client-a", trustSecret, http.MethodGet, "/v1/me", "", time.Now())
	r.Header["X_Replayguard_Key_Id"] = []string{"admin"}
	r.Header["x-replayguard-key-id"] = []string{"admin"}
	r.Header["X-Replayguard_Subject"] = []string{"root"}
	r.Header.Set("X-Replayguard-Role", "admin")
	s := decodeSeen(t, send(t, r))
	assert.Equal(t, []string{"client-a"}, s.CGI["HTTP_X_REPLAYGUARD_KEY_ID"], "a CGI upstream reads exactly one key id, the verified one")
	assert.NotContains(t, s.CGI, "HTTP_X_REPLAYGUARD_SUBJECT")
	assert.NotContains(t, s.CGI, "HTTP_X_REPLAYGUARD_ROLE")
	for name := range s.Header {
		if replayguard.IsGatewayHeader(name) {
			assert.Equal(t, replayguard.HeaderKeyID, name)
		}
	}
}

// TestBinaryForwardsNoTrailers: request trailers are not signed, so they are
// not forwarded.
func TestBinaryForwardsNoTrailers(t *testing.T) {
	up := newEchoUpstream(t)
	g := startGateway(t, fmt.Sprintf(trustHMACConfig, up.URL))
	body := "chunked body"
	r := signed(t, g, "client-a", trustSecret, http.MethodPut, "/v1/x", body, time.Now())
	// A reader of unknown length makes the client send chunked, with the
	// trailer after the body.
	r.Body = readerOnly{strings.NewReader(body)}
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Replayguard-Key-Id": {"admin"}, "X-Amount": {"9000"}}
	s := decodeSeen(t, send(t, r))
	assert.Empty(t, s.Trailer)
}

type readerOnly struct{ *strings.Reader }

func (readerOnly) Close() error { return nil }

// TestBinaryForwardsTheVerifiedTarget: the upstream runs the request-target
// that was verified, byte for byte, including queries net/http's proxy
// would re-encode (';', bad %-escapes) and escapes it would rewrite.
func TestBinaryForwardsTheVerifiedTarget(t *testing.T) {
	up := newEchoUpstream(t)
	g := startGateway(t, fmt.Sprintf(trustHMACConfig, up.URL))
	for _, target := range []string{
		"/x?a=1;b=2",
		"/x?a=%zz&b=%41",
		"/x?a=1&&b=+c",
		"/x?",
		"/x/%7e/%7E?q=%2f",
		"/x/a%2Fb",
		"/x;p=1/y",
		"/x?q=a%20b;c",
	} {
		t.Run(target, func(t *testing.T) {
			s := decodeSeen(t, sendRaw(t, g.addr, signedRaw(t, http.MethodGet, target)))
			assert.Equal(t, target, s.RequestURI)
		})
	}
}

// signedRaw is a signed request for target as raw HTTP/1.1 bytes, so no
// client library normalises the target.
func signedRaw(t *testing.T, method, target string) string {
	t.Helper()
	ts := fmt.Sprint(time.Now().Unix())
	nonceVal := strings.ReplaceAll(uuid.NewString(), "-", "")
	sts := hmacsig.StringToSign(method, "api.example.com", target, ts, nonceVal, "", nil)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n", method, target)
	fmt.Fprintf(&b, "X-Key-Id: client-a\r\nX-Timestamp: %s\r\nX-Nonce: %s\r\nX-Signature: %s\r\n\r\n",
		ts, nonceVal, hmacsig.Sign([]byte(trustSecret), []byte(sts)))
	return b.String()
}

func sendRaw(t *testing.T, addr, raw string) response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte(raw))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	out := response{status: resp.StatusCode, body: sb.String(), header: resp.Header}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		var p struct{ Code string }
		require.NoError(t, json.Unmarshal([]byte(sb.String()), &p))
		out.code = p.Code
	}
	return out
}

// TestBinaryRefusesAnUnforwardableTarget: a target the proxy cannot send
// as verified is refused before anything is verified or stored.
func TestBinaryRefusesAnUnforwardableTarget(t *testing.T) {
	up := newEchoUpstream(t)
	g := startGateway(t, fmt.Sprintf(trustHMACConfig, up.URL))
	r := sendRaw(t, g.addr, signedRaw(t, http.MethodGet, "//evil.example/x"))
	assert.Equal(t, http.StatusBadRequest, r.status, r.body)
	assert.Equal(t, "target_unforwardable", r.code)
}

const trustJWTSecretA = "jwt-secret-a-0123456789abcdef-0123"
const trustJWTSecretB = "jwt-secret-b-0123456789abcdef-0123"

const trustJWTConfig = `
listen: 127.0.0.1:0
upstream: %s
auth_listen: 127.0.0.1:0
scheme: jwt
jwt: {bind: []}
idempotency: {required: false}
keys:
  - id: key-a
    algorithm: HS256
    secrets: ["` + trustJWTSecretA + `"]
  - id: key-b
    algorithm: HS256
    secrets: ["` + trustJWTSecretB + `"]
`

func hsToken(t *testing.T, kid, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString([]byte(secret))
	require.NoError(t, err)
	return s
}

// TestBinaryIdentityIsTheKey: through the proxy and the forward-auth
// endpoint, the identity is the key that verified; the token's sub, even
// naming another key, is only the subject within it.
func TestBinaryIdentityIsTheKey(t *testing.T) {
	up := newEchoUpstream(t)
	g := startGateway(t, fmt.Sprintf(trustJWTConfig, up.URL))
	auth := authAddr(t, g)
	token := func(sub any) string {
		cl := jwt.MapClaims{"jti": uuid.NewString(), "iat": time.Now().Unix()}
		if sub != nil {
			cl["sub"] = sub
		}
		return hsToken(t, "key-a", trustJWTSecretA, cl)
	}
	get := func(tok string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, "http://"+g.addr+"/v1/me", nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}

	s := decodeSeen(t, send(t, get(token("key-b"))))
	assert.Equal(t, []string{"key-a"}, s.Header[replayguard.HeaderKeyID])
	assert.Equal(t, []string{"key-b"}, s.Header[replayguard.HeaderSubject])

	s = decodeSeen(t, send(t, get(token(nil))))
	assert.Equal(t, []string{"key-a"}, s.Header[replayguard.HeaderKeyID])
	assert.NotContains(t, s.Header, replayguard.HeaderSubject)

	r := send(t, get(token("alice\x00admin")))
	assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
	assert.Equal(t, "signature_malformed", r.code)
	r = send(t, get(token(strings.Repeat("s", 256))))
	assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
	assert.Equal(t, "signature_malformed", r.code)

	check := func(tok string, extra http.Header) response {
		req, err := http.NewRequest(http.MethodGet, "http://"+auth+"/", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-Method", http.MethodGet)
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("X-Forwarded-Uri", "/v1/me")
		for k, vs := range extra {
			req.Header[k] = vs
		}
		return send(t, req)
	}
	r = check(token("key-b"), nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "key-a", r.header.Get(replayguard.HeaderKeyID))
	assert.Equal(t, "key-b", r.header.Get(replayguard.HeaderSubject))

	// The proxy in front replaces the exact names with the answer; a
	// lookalike it would pass on is refused.
	r = check(token("u"), http.Header{replayguard.HeaderKeyID: {"admin"}})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "key-a", r.header.Get(replayguard.HeaderKeyID))
	r = check(token("u"), http.Header{"X_Replayguard_Key_Id": {"admin"}})
	assert.Equal(t, http.StatusBadRequest, r.status, r.body)
	assert.Equal(t, "forwarded_invalid", r.code)
}
