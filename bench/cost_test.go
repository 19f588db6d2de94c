package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/jwtsig"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// costBody is the body of the cost benchmarks: the largest body the gateway
// accepts by default (max_body_bytes, 1 MiB), where verification work is
// all passes over the body.
const costBody = 1 << 20

// costKeys is the key set of every cost case: four keys of two secrets
// each; the valid request is signed by the last key with its first secret
// (the one that signs during a rotation).
func costKeys(b *testing.B, pub bool) ([]signature.Key, []ed25519.PrivateKey) {
	var keys []signature.Key
	var privs []ed25519.PrivateKey
	for i := 1; i <= 4; i++ {
		k := signature.Key{ID: fmt.Sprintf("key-%d", i), Secrets: [][]byte{
			[]byte(fmt.Sprintf("cost-secret-%d-current-0123456789", i)),
			[]byte(fmt.Sprintf("cost-secret-%d-previous-0123456789", i)),
		}}
		if pub {
			p, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			k.PublicKey = p
			privs = append(privs, priv)
		}
		keys = append(keys, k)
	}
	return keys, privs
}

// costCase is one scheme or preset: a valid request whose key is tried
// last, and the costliest request failing verification that an attacker
// can craft against the same verifier.
type costCase struct {
	name           string
	scheme         signature.Scheme
	valid, invalid *signature.Request
}

var costNow = time.Unix(1_760_000_000, 0)

func costClock() time.Time { return costNow }

// signed signs a POST of body to https://api.example.com/v1/hooks with s
// and returns it as the scheme sees it.
func signed(b *testing.B, s signature.Signer, body []byte) *signature.Request {
	req, err := http.NewRequest(http.MethodPost, "https://api.example.com/v1/hooks", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Sign(req, body); err != nil {
		b.Fatal(err)
	}
	return &signature.Request{Method: http.MethodPost, Scheme: "https", Host: "api.example.com", Target: "/v1/hooks", Header: req.Header, Body: body}
}

// with returns a copy of r with header name set to value.
func with(r *signature.Request, name, value string) *signature.Request {
	c := *r
	c.Header = r.Header.Clone()
	c.Header.Set(name, value)
	return &c
}

// otherBody returns a copy of r with the last byte of its body changed.
func otherBody(r *signature.Request) *signature.Request {
	c := *r
	c.Body = append([]byte(nil), r.Body...)
	c.Body[len(c.Body)-2] ^= 1
	return &c
}

// fill joins copies of entry with sep up to limit bytes, after head.
func fill(head, sep, entry string, limit int) string {
	var sb strings.Builder
	sb.WriteString(head)
	for sb.Len()+len(sep)+len(entry) <= limit {
		if sb.Len() > 0 {
			sb.WriteString(sep)
		}
		sb.WriteString(entry)
	}
	return sb.String()
}

func costCases(b *testing.B) []costCase {
	body := whBody(costBody)
	keys, _ := costKeys(b, false)
	last := keys[3]
	var cs []costCase

	// hmac names its key: the work is one SHA-256 of the body and one MAC
	// per secret of that key over the short string to sign. The costliest
	// failure names a configured key and fills the 2048-byte header with
	// wrong entries.
	hm, err := hmacsig.New(keys)
	if err != nil {
		b.Fatal(err)
	}
	valid := signed(b, &hmacsig.Signer{KeyID: last.ID, Secret: last.Secrets[0], Now: costClock}, body)
	wrongV1 := "v1=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	cs = append(cs, costCase{"hmac", hm, valid, with(valid, "X-Signature", fill("", ",", wrongV1, 2048))})

	// jwt names its key by kid; the body is hashed once for bsh, after the
	// token verified. The costliest failure is a captured token over
	// another body.
	jw, err := jwtsig.New(keys, jwtsig.WithClock(costClock))
	if err != nil {
		b.Fatal(err)
	}
	valid = signed(b, &jwtsig.Signer{KeyID: last.ID, Key: last.Secrets[0], Now: costClock}, body)
	cs = append(cs, costCase{"jwt", jw, valid, otherBody(valid)})

	// rfc9421 names its key by keyid; the body is hashed once for
	// Content-Digest, after the signature verified. The costliest failure
	// is a captured signature over another body.
	rf, err := httpsig.New(keys, httpsig.WithClock(costClock))
	if err != nil {
		b.Fatal(err)
	}
	valid = signed(b, &httpsig.Signer{KeyID: last.ID, Secret: last.Secrets[0], Now: costClock}, body)
	cs = append(cs, costCase{"rfc9421", rf, valid, otherBody(valid)})

	// The webhook presets name no key: one MAC per secret of every key,
	// each compared with every signature of the header. The costliest
	// failure fills the header with wrong signatures.
	zero64 := strings.Repeat("0", 64)
	for _, p := range []struct {
		preset, header, head, sep, entry string
	}{
		{webhooksig.PresetStandardWebhooks, webhooksig.StandardWebhookSignatureHeader, "", " ", "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))},
		{webhooksig.PresetStripe, webhooksig.StripeSignatureHeader, "t=" + fmt.Sprint(costNow.Unix()), ",", "v1=" + zero64},
		{webhooksig.PresetGitHub, webhooksig.GitHubSignatureHeader, "sha256=" + zero64, "", ""},
		{webhooksig.PresetSlack, webhooksig.SlackSignatureHeader, "v0=" + zero64, "", ""},
		{webhooksig.PresetShopify, webhooksig.ShopifySignatureHeader, base64.StdEncoding.EncodeToString(make([]byte, 32)), "", ""},
	} {
		w, err := webhooksig.New(p.preset, keys)
		if err != nil {
			b.Fatal(err)
		}
		valid := signed(b, &webhooksig.Signer{Preset: p.preset, Secret: last.Secrets[0], Now: costClock}, body)
		forged := p.head
		if p.entry != "" {
			forged = fill(p.head, p.sep, p.entry, 4096)
		}
		cs = append(cs, costCase{p.preset, w, valid, with(valid, p.header, forged)})
	}

	// standard-webhooks with Ed25519 keys ("v1a"): every key also has a
	// public key. A valid delivery carries one v1a signature by the last
	// key: one Ed25519 verification per key. A failure fills the header
	// with v1a entries (two are tried), or adds a v1 entry to them (one MAC
	// per secret, and one v1a entry tried): which costs more depends on
	// whether the CPU has SHA instructions.
	pkeys, privs := costKeys(b, true)
	w, err := webhooksig.New(webhooksig.PresetStandardWebhooks, pkeys)
	if err != nil {
		b.Fatal(err)
	}
	valid = signed(b, &webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, PrivateKey: privs[3], Now: costClock}, body)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	wrongV1a := "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(stranger, body))
	cs = append(cs,
		costCase{"standard-webhooks-v1a", w, valid, with(valid, webhooksig.StandardWebhookSignatureHeader, fill("", " ", wrongV1a, 4096))},
		costCase{"standard-webhooks-v1a-mixed", w, valid, with(valid, webhooksig.StandardWebhookSignatureHeader,
			fill("v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)), " ", wrongV1a, 4096))},
	)
	return cs
}

// BenchmarkFailedVerificationCost verifies, per operation, a valid 1 MiB
// request whose key is tried last and the costliest failing request an
// attacker can craft against the same verifier (four keys of two secrets),
// alternating their order. It reports the failing request's time over the
// valid one's as x-valid, the median over the operations (the two run
// back to back, so load from other processes hits both alike), the same
// over the fastest of each as x-valid-min, and both mean times per request.
func BenchmarkFailedVerificationCost(b *testing.B) {
	ctx := context.Background()
	for _, c := range costCases(b) {
		b.Run(c.name, func(b *testing.B) {
			if _, err := c.scheme.Verify(ctx, c.valid); err != nil {
				b.Fatalf("valid request: %v", err)
			}
			if _, err := c.scheme.Verify(ctx, c.invalid); !errors.Is(err, signature.ErrInvalid) && !errors.Is(err, signature.ErrMalformed) {
				b.Fatalf("invalid request: got %v, want a verification failure", err)
			}
			var tValid, tInvalid time.Duration
			ratios := make([]float64, 0, b.N)
			minValid, minInvalid := time.Duration(1<<62), time.Duration(1<<62)
			timed := func(r *signature.Request) time.Duration {
				start := time.Now()
				_, _ = c.scheme.Verify(ctx, r)
				return time.Since(start)
			}
			b.SetBytes(2 * costBody)
			for i := 0; i < b.N; i++ {
				var dv, di time.Duration
				if i%2 == 0 {
					dv = timed(c.valid)
					di = timed(c.invalid)
				} else {
					di = timed(c.invalid)
					dv = timed(c.valid)
				}
				tValid += dv
				tInvalid += di
				ratios = append(ratios, float64(di)/float64(dv))
				if dv < minValid {
					minValid = dv
				}
				if di < minInvalid {
					minInvalid = di
				}
			}
			b.ReportMetric(float64(tValid.Nanoseconds())/float64(b.N), "valid-ns/req")
			b.ReportMetric(float64(tInvalid.Nanoseconds())/float64(b.N), "invalid-ns/req")
			sort.Float64s(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "x-valid")
			b.ReportMetric(float64(minInvalid)/float64(minValid), "x-valid-min")
		})
	}
}
