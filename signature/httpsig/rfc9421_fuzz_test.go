package httpsig_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/internal/sfv"
)

// FuzzSignatureBase builds signature bases from arbitrary Signature-Input
// members, targets and field values: it must never panic, and a base it
// returns is ASCII with one line per covered component and the
// @signature-params line last.
func FuzzSignatureBase(f *testing.F) {
	f.Add(`("@method" "@target-uri" "content-digest");created=1;keyid="k"`, "/foo?param=Value&Pet=dog", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
	f.Add(`("@query-param";name="Pet" "@query" "@path" "@authority" "@scheme" "@request-target");nonce="n"`, "/foo?param=Value&Pet=dog", "")
	f.Add(`("x-dict";sf "x-dict";key="a" "x-dict";bs)`, "/", "a=1,  b=(x y);p, c")
	f.Add(`("date" "x-dict";key="zz" "@status")`, "*", "a")
	f.Fuzz(func(t *testing.T, input, target, value string) {
		il, err := sfv.ParseInnerList(input)
		if err != nil {
			return
		}
		h := http.Header{}
		h.Set("X-Dict", value)
		h.Set("Content-Digest", value)
		h.Set("Date", value)
		m := &httpsig.HTTPMessage{Method: "POST", Scheme: "https", Authority: "Example.COM:443", Target: target, Header: h}
		base, err := httpsig.SignatureBase(m, il, map[string]httpsig.FieldType{"x-dict": httpsig.FieldDictionary})
		if err != nil {
			return
		}
		s := string(base)
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 || s[i] == '\r' {
				t.Fatalf("base has byte %#x: %q", s[i], s)
			}
		}
		lines := strings.Split(s, "\n")
		if len(lines) != len(il.Items)+1 {
			t.Fatalf("%d lines for %d components: %q", len(lines), len(il.Items), s)
		}
		if !strings.HasPrefix(lines[len(lines)-1], `"@signature-params": (`) {
			t.Fatalf("last line %q", lines[len(lines)-1])
		}
	})
}

// FuzzSignatureBaseVerify feeds arbitrary Signature-Input and Signature
// fields to the rfc9421 scheme. "{mac}" in the Signature field is replaced
// by the correct MAC of what the scheme will rebuild, so that accepting
// paths are reached; whatever verifies must carry that MAC.
func FuzzSignatureBaseVerify(f *testing.F) {
	f.Add(`sig1=("@method" "@target-uri");created=1618884473;keyid="k";nonce="abc"`, `sig1=:{mac}:`, "/p?q=1")
	f.Add(`sig1=();created=1;keyid="k", sig2=("@path");created=2;keyid="k"`, `sig2=:{mac}:, sig1=:YWJj:`, "/")
	f.Add(`a=("@query-param";name="q");created=1;keyid="k";expires=5`, `a=:{mac}:`, "/x?q=%41+b")
	secret := []byte("fuzz-secret")
	s, err := httpsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{secret}}}, httpsig.WithRequiredComponents(nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input, sig, target string) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		r := &signature.Request{Method: "GET", Scheme: "https", Host: "a.example", Target: target, Header: h}
		var want []byte
		if d, err := sfv.ParseDictionaryUniqueKeys(input); err == nil && len(d) > 0 && d[0].Value.IsInnerList {
			if base, err := httpsig.SignatureBase(httpsig.MessageFromRequest(r), d[0].Value.Inner, nil); err == nil {
				m := hmac.New(sha256.New, secret)
				m.Write(base)
				want = m.Sum(nil)
				enc, _ := sfv.MarshalItem(sfv.Item{Value: sfv.ByteSequence(want)})
				sig = strings.ReplaceAll(sig, ":{mac}:", enc)
			}
		}
		h.Set("Signature", sig)
		v, err := s.Verify(context.Background(), r)
		if err != nil {
			return
		}
		if want == nil || v.KeyID != "k" || v.ReplayKey == "" {
			t.Fatalf("verified without the MAC: input %q sig %q -> %+v", input, sig, v)
		}
	})
}
