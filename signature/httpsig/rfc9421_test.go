package httpsig_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/internal/sfv"
	"github.com/replayguard/replayguard/timestamp"
)

// rfcVector is one signed message of RFC 9421 (testdata/rfc9421/vectors.json).
type rfcVector struct {
	Name           string      `json:"name"`
	Source         string      `json:"source"`
	Key            string      `json:"key"`
	Label          string      `json:"label"`
	Method         string      `json:"method"`
	Target         string      `json:"target"`
	Host           string      `json:"host"`
	Status         int         `json:"status"`
	Headers        [][2]string `json:"headers"`
	Body           string      `json:"body"`
	SignatureInput string      `json:"signature_input"`
	Signature      string      `json:"signature"`
}

// rfcCreated is the created parameter of the RFC 9421 test cases.
const rfcCreated = 1618884473

func loadVectors(t *testing.T) []rfcVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc9421", "vectors.json"))
	require.NoError(t, err)
	var vs []rfcVector
	require.NoError(t, json.Unmarshal(b, &vs))
	return vs
}

func rfcVectorFor(t *testing.T, source, label string) rfcVector {
	t.Helper()
	for _, v := range loadVectors(t) {
		if v.Source == source && v.Label == label {
			return v
		}
	}
	t.Fatalf("no vector %s %s", source, label)
	return rfcVector{}
}

func (v rfcVector) request(signed bool) *signature.Request {
	h := http.Header{}
	for _, kv := range v.Headers {
		h.Add(kv[0], kv[1])
	}
	if signed {
		h.Set("Signature-Input", v.SignatureInput)
		h.Set("Signature", v.Signature)
	}
	return &signature.Request{Method: v.Method, Scheme: "https", Host: v.Host, Target: v.Target, Header: h, Body: []byte(v.Body)}
}

func testdataFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc9421", name))
	require.NoError(t, err)
	return b
}

// rfcKey returns the RFC 9421 Appendix B.1 key name as a verification key.
func rfcKey(t *testing.T, name string, fromJWK bool) signature.Key {
	t.Helper()
	switch name {
	case "test-shared-secret":
		sec, err := signature.ParseSecret("base64:" + strings.TrimSpace(string(testdataFile(t, name+".b64"))))
		require.NoError(t, err)
		return signature.Key{ID: name, Secrets: [][]byte{sec}}
	}
	var pub crypto.PublicKey
	var err error
	if fromJWK {
		var jwk map[string]any
		require.NoError(t, json.Unmarshal(testdataFile(t, name+".jwk.json"), &jwk))
		_, err = httpsig.PublicKey(nil, jwk)
		require.ErrorIs(t, err, signature.ErrPrivateKey, "the Appendix B.1 JWKs hold the private key")
		pub, err = httpsig.PublicKey(nil, publicMembers(jwk))
	} else {
		pub, err = httpsig.PublicKey(testdataFile(t, name+".pub.pem"), nil)
	}
	require.NoError(t, err)
	alg := map[string]string{
		"test-key-rsa-pss":  httpsig.AlgRSAPSSSHA512,
		"test-key-rsa":      httpsig.AlgRSAV15SHA256,
		"test-key-ecc-p256": httpsig.AlgECDSAP256SHA256,
		"test-key-ed25519":  httpsig.AlgEd25519,
	}[name]
	return signature.Key{ID: name, Algorithm: alg, PublicKey: pub}
}

func rfcScheme(t *testing.T, v rfcVector, fromJWK bool, opts ...httpsig.Option) *httpsig.Scheme {
	t.Helper()
	opts = append([]httpsig.Option{
		httpsig.WithRequiredComponents(nil),
		httpsig.WithSignatureLabel(v.Label),
		httpsig.WithClock(func() time.Time { return time.Unix(rfcCreated+60, 0) }),
	}, opts...)
	s, err := httpsig.New([]signature.Key{rfcKey(t, v.Key, fromJWK)}, opts...)
	require.NoError(t, err)
	return s
}

// Every signed request of RFC 9421 Appendix B.2 (B.2.1, B.2.2, B.2.3,
// B.2.5, B.2.6), Appendix B.4, Section 3.2 and Section 4.3 verifies with
// the Appendix B.1 keys, loaded from PEM and from JWK.
func TestRFC9421PublishedRequestsVerify(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Status != 0 {
			continue
		}
		for _, fromJWK := range []bool{false, true} {
			if fromJWK && v.Key == "test-shared-secret" {
				continue
			}
			name := v.Source + " " + v.Name
			if fromJWK {
				name += " (JWK)"
			}
			t.Run(name, func(t *testing.T) {
				got, err := rfcScheme(t, v, fromJWK).Verify(context.Background(), v.request(true))
				require.NoError(t, err)
				assert.Equal(t, v.Key, got.KeyID)
				assert.Equal(t, v.Key, got.KeyID)
				assert.NotEmpty(t, got.ReplayKey)
				assert.True(t, got.Timestamp.Unix() >= rfcCreated, got.Timestamp)
			})
		}
	}
}

// RFC 9421 Appendix B.2.4: the ecdsa-p256-sha256 signature of
// test-response verifies over the signature base built with @status.
func TestRFC9421B24ResponseVerifies(t *testing.T) {
	v := rfcVectorFor(t, "RFC 9421 Appendix B.2.4", "sig-b24")
	h := http.Header{}
	for _, kv := range v.Headers {
		h.Add(kv[0], kv[1])
	}
	in, err := sfv.ParseDictionary(v.SignatureInput)
	require.NoError(t, err)
	m, _ := in.Get("sig-b24")
	base, err := httpsig.SignatureBase(&httpsig.HTTPMessage{Status: v.Status, Header: h}, m.Inner, nil)
	require.NoError(t, err)
	assert.Equal(t, `"@status": 200
"content-type": application/json
"content-digest": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:
"content-length": 23
"@signature-params": ("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`, string(base))
	sigs, err := sfv.ParseDictionary(v.Signature)
	require.NoError(t, err)
	sm, _ := sigs.Get("sig-b24")
	sig := sm.Item.Value.Bytes
	require.Len(t, sig, 64)
	key := rfcKey(t, "test-key-ecc-p256", false)
	digest := sha256Sum(base)
	assert.True(t, ecdsa.Verify(key.PublicKey.(*ecdsa.PublicKey), digest, bigInt(sig[:32]), bigInt(sig[32:])))
	require.NoError(t, httpsig.CheckContentDigest(h.Values("Content-Digest"), []byte(v.Body)))
}

// The signature bases printed in RFC 9421 Appendix B.2.2, B.2.5 and B.2.6.
func TestRFC9421PublishedSignatureBases(t *testing.T) {
	tests := []struct{ source, label, want string }{
		{"RFC 9421 Appendix B.2.2", "sig-b22", `"@authority": example.com
"content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:
"@query-param";name="Pet": dog
"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`},
		{"RFC 9421 Appendix B.2.5", "sig-b25", `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@authority": example.com
"content-type": application/json
"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`},
		{"RFC 9421 Appendix B.2.6", "sig-b26", `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			v := rfcVectorFor(t, tc.source, tc.label)
			in, err := sfv.ParseDictionary(v.SignatureInput)
			require.NoError(t, err)
			m, _ := in.Get(tc.label)
			base, err := httpsig.SignatureBase(httpsig.MessageFromRequest(v.request(false)), m.Inner, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(base))
		})
	}
}

// RFC 9421 Appendix B.2.5 (hmac-sha256) and B.2.6 (ed25519) are
// deterministic: signing test-request reproduces both fields byte for byte.
func TestRFC9421SignerReproducesB25AndB26(t *testing.T) {
	edPriv, err := httpsig.PrivateKey(testdataFile(t, "test-key-ed25519.priv.pem"))
	require.NoError(t, err)
	secret := rfcKey(t, "test-shared-secret", false).Secrets[0]
	tests := []struct {
		source, label string
		signer        *httpsig.Signer
	}{
		{"RFC 9421 Appendix B.2.5", "sig-b25", &httpsig.Signer{
			KeyID: "test-shared-secret", Secret: secret, Components: []string{"date", "@authority", "content-type"}}},
		{"RFC 9421 Appendix B.2.6", "sig-b26", &httpsig.Signer{
			KeyID: "test-key-ed25519", PrivateKey: edPriv, Components: []string{"date", "@method", "@path", "@authority", "content-type", "content-length"}}},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			v := rfcVectorFor(t, tc.source, tc.label)
			req, err := http.NewRequest(v.Method, "https://"+v.Host+v.Target, strings.NewReader(v.Body))
			require.NoError(t, err)
			for _, kv := range v.Headers {
				req.Header.Add(kv[0], kv[1])
			}
			tc.signer.Label = tc.label
			tc.signer.OmitNonce = true
			tc.signer.Now = func() time.Time { return time.Unix(rfcCreated, 0) }
			require.NoError(t, tc.signer.Sign(req, []byte(v.Body)))
			assert.Equal(t, v.SignatureInput, req.Header.Get("Signature-Input"))
			assert.Equal(t, v.Signature, req.Header.Get("Signature"))
		})
	}
}

// RFC 9421 Section 4.3: rsa-v1_5-sha256 is deterministic too, so the
// proxy's signature is reproduced with test-key-rsa (Appendix B.1.1).
func TestRFC9421SignerReproducesProxySignature(t *testing.T) {
	v := rfcVectorFor(t, "RFC 9421 Section 4.3", "proxy_sig")
	priv, err := httpsig.PrivateKey(testdataFile(t, "test-key-rsa.priv.pem"))
	require.NoError(t, err)
	req, err := http.NewRequest(v.Method, "https://"+v.Host+v.Target, strings.NewReader(v.Body))
	require.NoError(t, err)
	for _, kv := range v.Headers {
		req.Header.Add(kv[0], kv[1])
	}
	s := &httpsig.Signer{KeyID: "test-key-rsa", PrivateKey: priv, Algorithm: "rsa-v1_5-sha256", IncludeAlg: true,
		Label: "proxy_sig", OmitNonce: true, Expires: 60 * time.Second,
		Components: []string{"@method", "@authority", "@path", "content-digest", "content-type", "content-length", "forwarded"},
		Now:        func() time.Time { return time.Unix(1618884480, 0) }}
	require.NoError(t, s.Sign(req, []byte(v.Body)))
	in, _ := sfv.ParseDictionary(v.SignatureInput)
	want, _ := in.Get("proxy_sig")
	wantIn, err := sfv.MarshalDictionary(sfv.Dictionary{{Key: "proxy_sig", Value: want}})
	require.NoError(t, err)
	assert.Equal(t, wantIn, req.Header.Get("Signature-Input"))
	sigs, _ := sfv.ParseDictionary(v.Signature)
	wantSig, _ := sigs.Get("proxy_sig")
	got, err := sfv.ParseDictionary(req.Header.Get("Signature"))
	require.NoError(t, err)
	gotSig, _ := got.Get("proxy_sig")
	assert.Equal(t, wantSig.Item.Value.Bytes, gotSig.Item.Value.Bytes)
}

// RFC 9421 Appendix B.4: transformations that keep the covered components
// keep the signature valid; changing the method, the authority or the
// order of the Accept field lines breaks it.
func TestRFC9421B4Transformations(t *testing.T) {
	v := rfcVectorFor(t, "RFC 9421 Appendix B.4", "transform")
	s := rfcScheme(t, v, false)
	verify := func(method, host, target string, headers [][2]string) error {
		h := http.Header{}
		for _, kv := range headers {
			h.Add(kv[0], kv[1])
		}
		h.Set("Signature-Input", v.SignatureInput)
		h.Set("Signature", v.Signature)
		_, err := s.Verify(context.Background(), &signature.Request{Method: method, Scheme: "https", Host: host, Target: target, Header: h})
		return err
	}
	date := [2]string{"Date", "Fri, 15 Jul 2022 14:24:55 GMT"}
	json1, any1 := [2]string{"Accept", "application/json"}, [2]string{"Accept", "*/*"}
	require.NoError(t, verify("GET", "example.org", "/demo?name1=Value1&Name2=value2", [][2]string{date, json1, any1}))
	require.NoError(t, verify("GET", "example.org", "/demo?name1=Value1&Name2=value2&param=added",
		[][2]string{date, json1, any1, {"Accept-Language", "en-US,en;q=0.5"}}))
	require.NoError(t, verify("GET", "example.org", "/demo?name1=Value1&Name2=value2",
		[][2]string{{"Referer", "https://developer.example.org/demo"}, {"Accept", "application/json, */*"}}))
	require.NoError(t, verify("GET", "example.org", "/demo?name1=Value1&Name2=value2", [][2]string{json1, any1, date}))
	require.ErrorIs(t, verify("POST", "example.com", "/demo?name1=Value1&Name2=value2", [][2]string{date, json1, any1}), signature.ErrInvalid)
	require.ErrorIs(t, verify("GET", "example.org", "/demo?name1=Value1&Name2=value2", [][2]string{date, any1, json1}), signature.ErrInvalid)
}

// RFC 9421 Section 2.1: field values are trimmed and multiple lines are
// combined; Sections 2.1.1-2.1.3: ";sf", ";key" and ";bs".
func TestRFC9421FieldComponents(t *testing.T) {
	h := http.Header{}
	h.Add("Host", "www.example.com")
	h.Add("Date", "Tue, 20 Apr 2021 02:07:56 GMT")
	h.Add("X-OWS-Header", "   Leading and trailing whitespace.   ")
	h.Add("Cache-Control", "max-age=60")
	h.Add("Cache-Control", "   must-revalidate")
	h.Add("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)")
	h.Add("X-Empty-Header", "")
	h.Add("Example-Header", "value, with, lots")
	h.Add("Example-Header", "of, commas")
	h.Add("Example-Dict2", "a=1, b=2;x=1;y=2, c=(a   b    c), d")
	m := &httpsig.HTTPMessage{Method: "GET", Scheme: "https", Authority: "www.example.com", Target: "/", Header: h}
	types := map[string]httpsig.FieldType{"example-dict": httpsig.FieldDictionary, "example-dict2": httpsig.FieldDictionary}
	tests := []struct{ component, want string }{
		{`"host"`, `"host": www.example.com`},
		{`"date"`, `"date": Tue, 20 Apr 2021 02:07:56 GMT`},
		{`"x-ows-header"`, `"x-ows-header": Leading and trailing whitespace.`},
		{`"cache-control"`, `"cache-control": max-age=60, must-revalidate`},
		{`"example-dict"`, `"example-dict": a=1,    b=2;x=1;y=2,   c=(a   b   c)`},
		{`"x-empty-header"`, `"x-empty-header": `},
		{`"example-dict";sf`, `"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c)`},
		{`"example-dict2";key="a"`, `"example-dict2";key="a": 1`},
		{`"example-dict2";key="d"`, `"example-dict2";key="d": ?1`},
		{`"example-dict2";key="b"`, `"example-dict2";key="b": 2;x=1;y=2`},
		{`"example-dict2";key="c"`, `"example-dict2";key="c": (a b c)`},
		{`"example-header";bs`, `"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:`},
	}
	for _, tc := range tests {
		t.Run(tc.component, func(t *testing.T) {
			it, err := sfv.ParseItem(tc.component)
			require.NoError(t, err)
			base, err := httpsig.SignatureBase(m, sfv.InnerList{Items: []sfv.Item{it}}, types)
			require.NoError(t, err)
			line, _, _ := strings.Cut(string(base), "\n")
			assert.Equal(t, tc.want, line)
		})
	}
	h2 := http.Header{"Example-Header": {"value, with, lots, of, commas"}}
	it, _ := sfv.ParseItem(`"example-header";bs`)
	base, err := httpsig.SignatureBase(&httpsig.HTTPMessage{Header: h2}, sfv.InnerList{Items: []sfv.Item{it}}, nil)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(base), `"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHMsIG9mLCBjb21tYXM=:`+"\n"), string(base))
}

// RFC 9421 Sections 2.2.1-2.2.8: the derived components of a request.
func TestRFC9421DerivedComponents(t *testing.T) {
	m := func(target string) *httpsig.HTTPMessage {
		return &httpsig.HTTPMessage{Method: "POST", Scheme: "https", Authority: "www.example.com", Target: target, Header: http.Header{}}
	}
	tests := []struct {
		msg       *httpsig.HTTPMessage
		component string
		want      string
	}{
		{m("/path?param=value"), `"@method"`, `POST`},
		{m("/path?param=value"), `"@target-uri"`, `https://www.example.com/path?param=value`},
		{m("/path?param=value"), `"@authority"`, `www.example.com`},
		{m("/path?param=value"), `"@scheme"`, `https`},
		{m("/path?param=value"), `"@request-target"`, `/path?param=value`},
		{m("/path?param=value"), `"@path"`, `/path`},
		{m("/path?param=value&foo=bar&baz=bat%2Dman"), `"@query"`, `?param=value&foo=bar&baz=bat%2Dman`},
		{m("/path?queryString"), `"@query"`, `?queryString`},
		{m("/path"), `"@query"`, `?`},
		{m("/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="baz"`, `batman`},
		{m("/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="qux"`, ``},
		{m("/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="param"`, `value`},
		{m("/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"), `"@query-param";name="var"`, `this%20is%20a%20big%0Amultiline%20value`},
		{m("/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"), `"@query-param";name="bar"`, `with%20plus%20whitespace`},
		{m("/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"), `"@query-param";name="fa%C3%A7ade%22%3A%20"`, `something`},
		{&httpsig.HTTPMessage{Method: "GET", Scheme: "HTTP", Authority: "WWW.Example.com:80", Target: "", Header: http.Header{}}, `"@authority"`, `www.example.com`},
		{&httpsig.HTTPMessage{Method: "GET", Scheme: "https", Authority: "example.com:8443", Target: "", Header: http.Header{}}, `"@path"`, `/`},
		{&httpsig.HTTPMessage{Method: "OPTIONS", Scheme: "https", Authority: "example.com", Target: "*", Header: http.Header{}}, `"@request-target"`, `*`},
	}
	for _, tc := range tests {
		t.Run(tc.component+" "+tc.msg.Target, func(t *testing.T) {
			it, err := sfv.ParseItem(tc.component)
			require.NoError(t, err)
			base, err := httpsig.SignatureBase(tc.msg, sfv.InnerList{Items: []sfv.Item{it}}, nil)
			require.NoError(t, err)
			line, _, _ := strings.Cut(string(base), "\n")
			assert.Equal(t, tc.component+": "+tc.want, line)
		})
	}
}

func TestRFC9421SignatureBaseErrors(t *testing.T) {
	msg := &httpsig.HTTPMessage{Method: "GET", Scheme: "https", Authority: "a.example", Target: "/p?a=1&a=2&b=%C3%A9", Header: http.Header{"X-Nl": {"a\nb"}, "X-Utf": {"caf\xc3\xa9"}, "X-List": {"a, b"}}}
	bad := []string{
		`"@unknown"`, `"@method";sf`, `"@query-param"`, `"@query-param";name="a"`, `"@query-param";name="zz"`,
		`"@path";name="x"`, `"x-absent"`, `"x-list";sf`, `"x-list";bs;sf`, `"x-list";req`, `"x-list";tr`,
		`"x-list";foo`, `"x-list";key="zz"`, `"@status"`, `"x-nl"`, `"x-utf"`, `"Upper"`, `1`, `"x-list";sf=?0`, `"x-list";key=1`,
	}
	for _, c := range bad {
		it, err := sfv.ParseItem(c)
		require.NoError(t, err, c)
		_, err = httpsig.SignatureBase(msg, sfv.InnerList{Items: []sfv.Item{it}}, nil)
		require.ErrorIs(t, err, httpsig.ErrSignatureBase, c)
	}
	dup, _ := sfv.ParseInnerList(`("x-list";bs;sf "x-list";sf;bs)`)
	_, err := httpsig.SignatureBase(msg, dup, nil)
	require.ErrorIs(t, err, httpsig.ErrSignatureBase)
	dup2, _ := sfv.ParseInnerList(`("@method" "@method")`)
	_, err = httpsig.SignatureBase(msg, dup2, nil)
	require.ErrorIs(t, err, httpsig.ErrSignatureBase)
	resp := &httpsig.HTTPMessage{Status: 200, Header: http.Header{}}
	m, _ := sfv.ParseInnerList(`("@method")`)
	_, err = httpsig.SignatureBase(resp, m, nil)
	require.ErrorIs(t, err, httpsig.ErrSignatureBase)
}

func TestParseComponent(t *testing.T) {
	c, err := httpsig.ParseComponent("Content-Digest")
	require.NoError(t, err)
	assert.Equal(t, `"content-digest"`, c.String())
	c, err = httpsig.ParseComponent(`"@query-param";name="id"`)
	require.NoError(t, err)
	assert.Equal(t, `"@query-param";name="id"`, c.String())
	for _, bad := range []string{"", "a b", `"@Method"`, `"x`, `"a";`} {
		_, err := httpsig.ParseComponent(bad)
		require.ErrorIs(t, err, httpsig.ErrSignatureBase, bad)
	}
}

// rfcKeyPair is a freshly generated key of each algorithm for round trips.
type rfcKeyPair struct {
	alg    string
	key    signature.Key
	signer *httpsig.Signer
}

func rfcKeyPairs(t *testing.T) []rfcKeyPair {
	t.Helper()
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	secret := []byte("a shared secret of some length!!")
	return []rfcKeyPair{
		{httpsig.AlgHMACSHA256, signature.Key{ID: "k-hmac", Secrets: [][]byte{[]byte("older"), secret}}, &httpsig.Signer{KeyID: "k-hmac", Secret: secret}},
		{httpsig.AlgEd25519, signature.Key{ID: "k-ed", PublicKey: edPub}, &httpsig.Signer{KeyID: "k-ed", PrivateKey: edPriv}},
		{httpsig.AlgECDSAP256SHA256, signature.Key{ID: "k-p256", Algorithm: "ES256", PublicKey: &p256.PublicKey}, &httpsig.Signer{KeyID: "k-p256", PrivateKey: p256}},
		{httpsig.AlgECDSAP384SHA384, signature.Key{ID: "k-p384", PublicKey: &p384.PublicKey}, &httpsig.Signer{KeyID: "k-p384", PrivateKey: p384}},
		{httpsig.AlgRSAPSSSHA512, signature.Key{ID: "k-pss", Algorithm: "rsa-pss-sha512", PublicKey: &rsaKey.PublicKey}, &httpsig.Signer{KeyID: "k-pss", PrivateKey: rsaKey, Algorithm: "PS512"}},
		{httpsig.AlgRSAV15SHA256, signature.Key{ID: "k-v15", Algorithm: "rsa-v1_5-sha256", PublicKey: &rsaKey.PublicKey}, &httpsig.Signer{KeyID: "k-v15", PrivateKey: rsaKey, Algorithm: "rsa-v1_5-sha256"}},
	}
}

func signedHTTP(t *testing.T, s signature.Signer, method, url string, body []byte, mutate ...func(*http.Request)) *signature.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	require.NoError(t, err)
	for _, m := range mutate {
		m(req)
	}
	require.NoError(t, s.Sign(req, body))
	return &signature.Request{Method: req.Method, Scheme: req.URL.Scheme, Host: req.URL.Host, Target: req.URL.RequestURI(), Header: req.Header, Body: body}
}

func TestRFC9421RoundTripEveryAlgorithm(t *testing.T) {
	pairs := rfcKeyPairs(t)
	keys := make([]signature.Key, 0, len(pairs))
	for _, p := range pairs {
		keys = append(keys, p.key)
	}
	s, err := httpsig.New(keys)
	require.NoError(t, err)
	now := time.Unix(1_750_000_000, 0)
	for _, p := range pairs {
		t.Run(p.alg, func(t *testing.T) {
			p.signer.Now = func() time.Time { return now }
			body := []byte(`{"amount":100}`)
			r := signedHTTP(t, p.signer, http.MethodPost, "https://api.example.com/v1/charges?x=1", body, func(r *http.Request) {
				r.Header.Set("Idempotency-Key", "op-1")
			})
			assert.Contains(t, r.Header.Get("Signature-Input"), `("@method" "@target-uri" "content-digest" "idempotency-key");created=1750000000;keyid="`+p.key.ID+`";nonce="`)
			assert.True(t, strings.HasPrefix(r.Header.Get("Content-Digest"), "sha-256=:"))
			v, err := s.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, p.key.ID, v.KeyID)
			assert.Equal(t, now, v.Timestamp)
			assert.True(t, strings.HasPrefix(v.ReplayKey, "n:"), v.ReplayKey)

			tampered := *r
			tampered.Body = []byte(`{"amount":999}`)
			_, err = s.Verify(context.Background(), &tampered)
			require.ErrorIs(t, err, signature.ErrInvalid)
			moved := *r
			moved.Target = "/v1/refunds?x=1"
			_, err = s.Verify(context.Background(), &moved)
			require.ErrorIs(t, err, signature.ErrInvalid)
		})
	}
}

// An ECDSA signature (r, s) is also valid as (r, n-s); without a nonce the
// replay key must be the same for both.
func TestRFC9421ECDSAReplayKeyIsMalleabilityProof(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s, err := httpsig.New([]signature.Key{{ID: "k", PublicKey: &priv.PublicKey}})
	require.NoError(t, err)
	signer := &httpsig.Signer{KeyID: "k", PrivateKey: priv, OmitNonce: true}
	r := signedHTTP(t, signer, http.MethodGet, "https://api.example.com/x", nil)
	v1, err := s.Verify(context.Background(), r)
	require.NoError(t, err)
	d, err := sfv.ParseDictionary(r.Header.Get("Signature"))
	require.NoError(t, err)
	sig := append([]byte(nil), d[0].Value.Item.Value.Bytes...)
	n := elliptic.P256().Params().N
	sv := bigInt(sig[32:])
	sv.Sub(n, sv)
	sv.FillBytes(sig[32:])
	flipped, err := sfv.MarshalDictionary(sfv.Dictionary{{Key: "sig1", Value: sfv.ItemMember(sfv.Item{Value: sfv.ByteSequence(sig)})}})
	require.NoError(t, err)
	r.Header.Set("Signature", flipped)
	v2, err := s.Verify(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, v1.ReplayKey, v2.ReplayKey)
	assert.True(t, strings.HasPrefix(v1.ReplayKey, "s:"))
}

func TestRFC9421VerifyErrors(t *testing.T) {
	secret := []byte("secret-for-errors")
	s, err := httpsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{secret}}},
		httpsig.WithClock(func() time.Time { return time.Unix(2000, 0) }))
	require.NoError(t, err)
	sign := func(mod func(*httpsig.Signer), mutate ...func(*http.Request)) *signature.Request {
		sg := &httpsig.Signer{KeyID: "k", Secret: secret, Now: func() time.Time { return time.Unix(1000, 0) }}
		if mod != nil {
			mod(sg)
		}
		return signedHTTP(t, sg, http.MethodPost, "https://api.example.com/p", []byte("body"), mutate...)
	}
	check := func(name string, r *signature.Request, want error) {
		t.Helper()
		_, err := s.Verify(context.Background(), r)
		require.ErrorIs(t, err, want, name)
	}
	ok := sign(nil)
	_, err = s.Verify(context.Background(), ok)
	require.NoError(t, err)

	with := func(base *signature.Request, k, v string) *signature.Request {
		c := *base
		c.Header = base.Header.Clone()
		if v == "" {
			c.Header.Del(k)
		} else {
			c.Header.Set(k, v)
		}
		return &c
	}
	check("no input", with(ok, "Signature-Input", ""), signature.ErrMissing)
	check("no signature", with(ok, "Signature", ""), signature.ErrMissing)
	check("bad input sfv", with(ok, "Signature-Input", "sig1=(\"@method\""), signature.ErrMalformed)
	check("bad signature sfv", with(ok, "Signature", "sig1=:!!:"), signature.ErrMalformed)
	check("duplicate label", with(ok, "Signature", ok.Header.Get("Signature")+", "+ok.Header.Get("Signature")), signature.ErrMalformed)
	check("signature label missing", with(ok, "Signature", "other=:YWJj:"), signature.ErrMalformed)
	check("signature not bytes", with(ok, "Signature", `sig1="abc"`), signature.ErrMalformed)
	check("input not inner list", with(ok, "Signature-Input", `sig1="abc";keyid="k"`), signature.ErrMalformed)
	check("no keyid", with(ok, "Signature-Input", `sig1=("@method");created=1000`), signature.ErrMissing)
	check("keyid not string", with(ok, "Signature-Input", `sig1=("@method");created=1000;keyid=k`), signature.ErrMalformed)
	check("unknown key", sign(func(sg *httpsig.Signer) { sg.KeyID = "other" }), signature.ErrKeyUnknown)
	check("wrong secret", sign(func(sg *httpsig.Signer) { sg.Secret = []byte("nope") }), signature.ErrInvalid)
	check("alg mismatch", sign(func(sg *httpsig.Signer) { sg.IncludeAlg = true; sg.Algorithm = "hmac-sha256" }), nil)
	check("not required components", sign(func(sg *httpsig.Signer) { sg.Components = []string{"@method", "content-digest"} }), signature.ErrMissing)
	check("no content-digest covered", sign(func(sg *httpsig.Signer) { sg.Components = []string{"@method", "@target-uri"} }), signature.ErrMissing)
	check("digest mismatch", sign(nil, func(r *http.Request) {
		r.Header.Set("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
	}), httpsig.ErrDigestMismatch)
	check("digest unsupported", sign(nil, func(r *http.Request) { r.Header.Set("Content-Digest", "md5=:Sd/dVLAcvNLSq16eXua5uQ==:") }), httpsig.ErrDigestUnsupported)
	check("no created", with(ok, "Signature-Input", `sig1=("@method");keyid="k"`), timestamp.ErrMissing)
	check("created not integer", with(ok, "Signature-Input", `sig1=("@method");created="1";keyid="k"`), timestamp.ErrMalformed)
	check("expired", sign(func(sg *httpsig.Signer) { sg.Expires = 10 * time.Second }), timestamp.ErrExpired)
	check("nonce not string", sign(func(sg *httpsig.Signer) { sg.NewNonce = func() string { return "" } }), nonce.ErrMalformed)
	check("covered field absent", with(sign(func(sg *httpsig.Signer) {
		sg.Components = []string{"@method", "@target-uri", "content-digest", "x-gone"}
	}, func(r *http.Request) { r.Header.Set("X-Gone", "1") }), "X-Gone", ""), signature.ErrInvalid)

	mismatch := sign(func(sg *httpsig.Signer) { sg.IncludeAlg = true; sg.Algorithm = "hmac-sha256" })
	mismatch.Header.Set("Signature-Input", strings.Replace(mismatch.Header.Get("Signature-Input"), `alg="hmac-sha256"`, `alg="ed25519"`, 1))
	check("alg other than the key's", mismatch, signature.ErrInvalid)
}

func TestRFC9421RequiredComponentsOption(t *testing.T) {
	_, err := httpsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{[]byte("s")}}}, httpsig.WithRequiredComponents([]string{"@nope"}))
	require.Error(t, err)
	_, err = httpsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{[]byte("s")}}}, httpsig.WithRequiredComponents([]string{`"@query-param"`}))
	require.Error(t, err)
	s, err := httpsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{[]byte("s")}}},
		httpsig.WithRequiredComponents([]string{"@method", `"@query-param";name="id"`}))
	require.NoError(t, err)
	sg := &httpsig.Signer{KeyID: "k", Secret: []byte("s"), Components: []string{"@method", `"@query-param";name="id"`}}
	_, err = s.Verify(context.Background(), signedHTTP(t, sg, http.MethodGet, "https://a.example/x?id=7", nil))
	require.NoError(t, err)
	sg.Components = []string{"@method"}
	_, err = s.Verify(context.Background(), signedHTTP(t, sg, http.MethodGet, "https://a.example/x?id=7", nil))
	require.ErrorIs(t, err, signature.ErrMissing)
}

func TestNewRFC9421Rejects(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	bad := [][]signature.Key{
		nil,
		{{ID: "", Secrets: [][]byte{[]byte("s")}}},
		{{ID: "a", Secrets: [][]byte{[]byte("s")}}, {ID: "a", Secrets: [][]byte{[]byte("s")}}},
		{{ID: "a"}},
		{{ID: "a", Algorithm: "none", Secrets: [][]byte{[]byte("s")}}},
		{{ID: "a", Algorithm: "ecdsa-p256-sha256", PublicKey: edPub}},
		{{ID: "a", Algorithm: "hmac-sha256"}},
		{{ID: "a", Secrets: [][]byte{{}}}},
	}
	for i, keys := range bad {
		_, err := httpsig.New(keys)
		require.Error(t, err, i)
	}
	_, err := httpsig.New([]signature.Key{{ID: "a", Secrets: [][]byte{[]byte("s")}}}, httpsig.WithSignatureLabel("Bad Label"))
	require.Error(t, err)
}

// RFC 9530 Section 2 and Appendix D: the published digests of
// {"hello": "world"} (and of the same with a trailing LF, Appendix B.1).
func TestContentDigestRFC9530(t *testing.T) {
	hello := []byte(`{"hello": "world"}`)
	v, err := httpsig.ContentDigest("sha-256", hello)
	require.NoError(t, err)
	assert.Equal(t, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", v)
	v, err = httpsig.ContentDigest("sha-512", hello)
	require.NoError(t, err)
	assert.Equal(t, "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:", v)
	_, err = httpsig.ContentDigest("md5", hello)
	require.Error(t, err)

	helloLF := append(append([]byte(nil), hello...), '\n')
	require.NoError(t, httpsig.CheckContentDigest([]string{"sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"}, helloLF))
	require.NoError(t, httpsig.CheckContentDigest([]string{"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"}, nil))
	require.NoError(t, httpsig.CheckContentDigest([]string{`sha-256=:jjcgBDWNAtbYUXI37CVG3gRuGOAjaaDRGpIUFsdyepQ=:`}, []byte("\"world\"}\n")))
	require.NoError(t, httpsig.CheckContentDigest([]string{
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=:Sd/dVLAcvNLSq16eXua5uQ==:",
		"sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
	}, hello))
	require.ErrorIs(t, httpsig.CheckContentDigest([]string{"sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"}, hello), httpsig.ErrDigestMismatch)
	require.ErrorIs(t, httpsig.CheckContentDigest([]string{"sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"}, helloLF), httpsig.ErrDigestMismatch)
	require.ErrorIs(t, httpsig.CheckContentDigest([]string{"md5=:Sd/dVLAcvNLSq16eXua5uQ==:"}, hello), httpsig.ErrDigestUnsupported)
	require.ErrorIs(t, httpsig.CheckContentDigest([]string{"sha-256=abc"}, hello), signature.ErrMalformed)
	require.ErrorIs(t, httpsig.CheckContentDigest([]string{"sha-256=:X48E9qOokq"}, hello), signature.ErrMalformed)
}

// One digest is computed whatever Content-Digest holds: the sha-256 member
// when there is one, else the sha-512 one. Either binds the body, and a
// field naming both costs one pass over the body, not two.
func TestContentDigestOneDigest(t *testing.T) {
	hello := []byte(`{"hello": "world"}`)
	const (
		sha256OK  = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
		sha256Bad = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
		sha512OK  = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
		sha512Bad = "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"
	)
	tests := []struct {
		name    string
		field   string
		wantErr error
	}{
		{"sha-256 checked, sha-512 not", sha512Bad + ", " + sha256OK, nil},
		{"sha-256 wrong", sha512OK + ", " + sha256Bad, httpsig.ErrDigestMismatch},
		{"sha-512 alone", sha512OK, nil},
		{"sha-512 alone, wrong", sha512Bad, httpsig.ErrDigestMismatch},
		{"a malformed member is refused unhashed", sha256OK + ", sha-512=abc", signature.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := httpsig.CheckContentDigest([]string{tt.field}, hello)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestRFC9421KeyLoading(t *testing.T) {
	for _, name := range []string{"test-key-rsa", "test-key-rsa-pss", "test-key-ecc-p256", "test-key-ed25519"} {
		a := rfcKey(t, name, false)
		b := rfcKey(t, name, true)
		assert.Equal(t, a.PublicKey, b.PublicKey, name)
	}
	_, err := httpsig.PublicKey(nil, nil)
	require.Error(t, err)
	_, err = httpsig.PublicKey([]byte("not pem"), nil)
	require.Error(t, err)
	for _, jwk := range []map[string]any{
		{"kty": "OKP", "crv": "X25519", "x": "AA"},
		{"kty": "EC", "crv": "P-521"},
		{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
		{"kty": "RSA", "n": "AQAB", "e": "AQAB"},
		{"kty": "oct", "k": "AA"},
		{"kty": "OKP", "crv": "Ed25519", "x": "!!"},
	} {
		_, err := httpsig.PublicKey(nil, jwk)
		require.Error(t, err, jwk)
	}
	priv, err := httpsig.PrivateKey(testdataFile(t, "test-key-ecc-p256.priv.pem"))
	require.NoError(t, err)
	pub := rfcKey(t, "test-key-ecc-p256", false).PublicKey.(*ecdsa.PublicKey)
	assert.True(t, pub.Equal(priv.Public()))
	_, err = httpsig.PrivateKey([]byte("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"))
	require.Error(t, err)
	assert.Equal(t, "ed25519", mustAlg(t, "EdDSA"))
	assert.Equal(t, "rsa-pss-sha512", mustAlg(t, "PS512"))
}

func mustAlg(t *testing.T, name string) string {
	t.Helper()
	a, ok := httpsig.Algorithm(name)
	require.True(t, ok)
	return a
}

func TestRFC9421SignerErrors(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://a.example/", nil)
	require.Error(t, (&httpsig.Signer{}).Sign(req, nil))
	require.Error(t, (&httpsig.Signer{KeyID: "k", Algorithm: "nope"}).Sign(req, nil))
	require.Error(t, (&httpsig.Signer{KeyID: "k", Label: "Bad"}).Sign(req, nil))
	require.Error(t, (&httpsig.Signer{KeyID: "k"}).Sign(req, nil), "hmac without a secret")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	require.Error(t, (&httpsig.Signer{KeyID: "k", PrivateKey: rsaKey}).Sign(req, nil), "RSA needs an algorithm")
	require.Error(t, (&httpsig.Signer{KeyID: "k", Secret: []byte("s"), Components: []string{"x-absent"}}).Sign(req, nil))
	s := &httpsig.Signer{KeyID: "k", Secret: []byte("s")}
	require.NoError(t, s.Sign(req, nil))
	require.Error(t, s.Sign(req, nil), "label already present")
	s2 := &httpsig.Signer{KeyID: "k", Secret: []byte("s"), Label: "second"}
	require.NoError(t, s2.Sign(req, nil))
	assert.Len(t, req.Header.Values("Signature-Input"), 2)
}

func sha256Sum(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

// publicMembers drops the private members of a JWK.
func publicMembers(jwk map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range jwk {
		switch k {
		case "d", "p", "q", "dp", "dq", "qi", "oth":
		default:
			out[k] = v
		}
	}
	return out
}
