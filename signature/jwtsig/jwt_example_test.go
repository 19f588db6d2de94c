package jwtsig_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// A client signs a request with a request-bound JWT; the server verifies it
// and gets the replay key (jti) and signed timestamp (iat) that the Guard
// then checks. The same token on another path is refused.
func ExampleScheme() {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	at := time.Unix(1_760_000_000, 0)
	clock := func() time.Time { return at }

	scheme, err := jwtsig.New([]signature.Key{{ID: "partner-b", PublicKey: pub}}, jwtsig.WithClock(clock))
	if err != nil {
		panic(err)
	}

	body := []byte(`{"amount":100}`)
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v1/charges?currency=eur", nil)
	signer := &jwtsig.Signer{KeyID: "partner-b", Key: priv, Subject: "partner-b-billing", Now: clock, NewJTI: func() string { return "op-1" }}
	if err := signer.Sign(req, body); err != nil {
		panic(err)
	}

	// What the server received.
	r := &signature.Request{Method: http.MethodPost, Scheme: "https", Host: "api.example.com",
		Target: "/v1/charges?currency=eur", Header: req.Header, Body: body}
	v, err := scheme.Verify(context.Background(), r)
	fmt.Println(v.KeyID, v.Subject, v.ReplayKey, v.Timestamp.Unix(), err)

	r.Target = "/v1/refunds"
	_, err = scheme.Verify(context.Background(), r)
	fmt.Println(errors.Is(err, signature.ErrInvalid), signature.WWWAuthenticate(err))
	// Output:
	// partner-b partner-b-billing op-1 1760000000 <nil>
	// true Bearer error="invalid_token"
}
