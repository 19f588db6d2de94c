package idempotency

import (
	"context"
	"time"

	"github.com/replayguard/replayguard/nonce"
)

// NonceClaimer is implemented by stores that keep a request's nonce beside
// its idempotency record (the disk store; the Redis store given the Redis
// nonce store on its client): ClaimWithNonce adds the nonce and makes the
// claim in one write, where adding and then claiming would wait for two in
// sequence.
//
// The nonce goes first, under its store's rules. When it is not added —
// a replay (nonce.ErrReplayed), its owner's share used up (a
// *nonce.QuotaError), a failed write — nonceErr says why and no claim is
// made. Otherwise the claim is made as OwnerClaimer.ClaimFor makes it
// (owner "" charges nobody) and c and claimErr are its outcome; the nonce
// stays added whatever that outcome is, as it would had the two calls been
// made one after the other.
type NonceClaimer interface {
	// NonceStore returns the nonce store ClaimWithNonce adds to.
	NonceStore() nonce.Store
	ClaimWithNonce(ctx context.Context, n nonce.Entry, owner, key string, fp Fingerprint, lease time.Duration) (c Claim, nonceErr, claimErr error)
}

// NonceStep is a request's nonce that its caller has not added yet, handed
// to Deduper.Serve so that the nonce can share the claim's write. Serve
// adds it before anything else it stores, and before answering with any
// error of its own, so that a replay is refused as a replay whatever else
// is wrong with it.
type NonceStep struct {
	// Entry is the nonce.
	Entry nonce.Entry
	// Claimer, when set, adds Entry in the claim's write; it must add to
	// the nonce store Add adds to.
	Claimer NonceClaimer
	// Add adds Entry alone, where no claim follows or Claimer is nil,
	// and returns the caller's answer: nil to go on, or the error to
	// refuse the request with.
	Add func(ctx context.Context) error
	// Outcome is the caller's answer to the nonce error of a joint write:
	// nil to go on without the nonce (a failed store under fail-open), or
	// the error to refuse the request with.
	Outcome func(ctx context.Context, err error) error
}

// addNonce adds req's pending nonce alone, once.
func addNonce(ctx context.Context, req *Request) error {
	n := req.Nonce
	if n == nil {
		return nil
	}
	req.Nonce = nil
	return n.Add(ctx)
}
