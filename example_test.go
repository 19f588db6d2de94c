package replayguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/stores"
)

// exampleSecret is a shared secret of the minimum length, 16 bytes.
const exampleSecret = "example-secret-0123456789"

// exampleNow is the clock of the examples, so their output is fixed.
func exampleNow() time.Time { return time.Unix(1_760_000_000, 0) }

// A Guard in front of a handler: a signed request reaches it once, its
// replay is refused with the problem code the error table names.
func ExampleGuard_Middleware() {
	g, err := replayguard.New(replayguard.Config{
		Keys: []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{exampleSecret}}},
	}, replayguard.WithClock(exampleNow))
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := replayguard.VerifiedFrom(r.Context())
		fmt.Fprintf(w, "hello %s", v.KeyID)
	})
	h := g.Middleware(api)

	body := []byte(`{"amount":100}`)
	req := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/charges", bytes.NewReader(body))
	req.Header.Set("Idempotency-Key", "op-1")
	signer := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(exampleSecret), Now: exampleNow,
		NewNonce: func() string { return "0f6c1a5e-3d1b-4c55-9f0e-5d2f7b8a9c10" }}
	if err := signer.Sign(req, body); err != nil {
		fmt.Println("sign:", err)
		return
	}
	replay := req.Clone(context.Background())

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	replay.Body = io.NopCloser(bytes.NewReader(body))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, replay)
	var p replayguard.Problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	fmt.Println(rec.Code, p.Code)
	// Output:
	// 200 hello client-a
	// 401 nonce_replayed
}

// Verify outside HTTP, for a message consumer: the same signature,
// window and replay checks on a request built by hand.
func ExampleGuard_Verify() {
	g, err := replayguard.New(replayguard.Config{
		Keys: []replayguard.KeyConfig{{ID: "worker", Secrets: []string{exampleSecret}}},
	}, replayguard.WithClock(exampleNow))
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	ts := fmt.Sprint(exampleNow().Unix())
	const nonceVal = "3c9d2a71-5b8e-4f0a-a6c4-1e2d3f4a5b6c"
	body := []byte(`{"event":"shipped"}`)
	sts := hmacsig.StringToSign(http.MethodPost, "queue.internal", "/orders", ts, nonceVal, "", body)
	msg := &signature.Request{
		Method: http.MethodPost, Scheme: "https", Host: "queue.internal", Target: "/orders", Body: body,
		Header: http.Header{
			"X-Key-Id": {"worker"}, "X-Timestamp": {ts}, "X-Nonce": {nonceVal},
			"X-Signature": {hmacsig.Sign([]byte(exampleSecret), []byte(sts))},
		},
	}
	v, err := g.Verify(context.Background(), msg)
	fmt.Println(v.KeyID, err)
	_, err = g.Verify(context.Background(), msg)
	fmt.Println(errors.Is(err, nonce.ErrReplayed))
	// Output:
	// worker <nil>
	// true
}

// Errors of the pipeline wrap the package sentinels: errors.Is finds both
// the category and the cause, and ProblemFor gives the status and code a
// client sees.
func ExampleProblemFor() {
	err := fmt.Errorf("%w: over the %d byte limit", replayguard.ErrBodyTooLarge, 1<<20)
	fmt.Println(errors.Is(err, replayguard.ErrBodyTooLarge))
	p := replayguard.ProblemFor(err)
	fmt.Println(p.Status, p.Code)

	p = replayguard.ProblemFor(fmt.Errorf("%w: memory store full", idempotency.ErrUnavailable))
	fmt.Println(p.Status, p.Code, p.Detail)
	// Output:
	// true
	// 413 body_too_large
	// 503 store_unavailable a store did not answer; retry shortly
}

// Stores from a configuration: package stores builds what the nonce and
// idempotency sections name (here the embedded memory stores, so the
// example needs no server) and hands them to New.
func ExampleGuard_stores() {
	cfg := replayguard.Config{
		Keys:  []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{exampleSecret}}},
		Nonce: replayguard.NonceConfig{Store: replayguard.StoreMemory, Mode: replayguard.ModeBloom},
	}.WithDefaults()
	set, err := stores.Open(context.Background(), cfg)
	if err != nil {
		fmt.Println("stores:", err)
		return
	}
	defer func() { _ = set.Close() }()
	g, err := replayguard.New(cfg, set.Options()...)
	fmt.Println(set.Names, g != nil, err)
	// Output:
	// [nonce:memory-bloom idempotency:memory] true <nil>
}
