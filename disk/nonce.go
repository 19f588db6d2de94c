package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/replayguard/replayguard/nonce"
)

// Nonces is the exact nonce.Store of a DB: one entry per scoped replay
// key, kept until its expiry; no false positives.
type Nonces struct{ db *DB }

var (
	_ nonce.Store  = (*Nonces)(nil)
	_ nonce.Pinger = (*Nonces)(nil)
)

// Nonces returns the DB's nonce store.
func (db *DB) Nonces() *Nonces { return db.nonces }

// Add implements nonce.Store: a replay is answered from the index; a new
// entry returns once it is on disk.
func (n *Nonces) Add(ctx context.Context, e nonce.Entry) error {
	p, err := n.db.pendingNonce(ctx, e)
	if err != nil {
		return err
	}
	return nonceErr(n.db.do(ctx, p.add))
}

// pendingNonce is a nonce checked against the committed state, to add
// in a write.
type pendingNonce struct {
	owner string
	d     digest
	key   []byte
	exp   int64
}

func (p pendingNonce) add(w *wtx) error { return w.addNonce(p.owner, p.d, p.key, p.exp) }

// pendingNonce returns e to add, or nonce.ErrReplayed for a replay of a
// committed entry, answered without a write.
func (db *DB) pendingNonce(ctx context.Context, e nonce.Entry) (pendingNonce, error) {
	if err := ctx.Err(); err != nil {
		return pendingNonce{}, fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	select {
	case <-db.closing:
		return pendingNonce{}, fmt.Errorf("%w: %w", nonce.ErrUnavailable, ErrClosed)
	default:
	}
	key := nonceKey(e.Scope, e.Key)
	d := db.ix.digest(kindNonce, key)
	if l, ok := db.ix.get(d); ok && l.exp > nonce.UnixNano(db.cfg.now()) {
		return pendingNonce{}, nonce.ErrReplayed
	}
	return pendingNonce{owner: e.Owner, d: d, key: key, exp: nonce.UnixNano(e.Expires)}, nil
}

// nonceErr maps a nonce write's outcome to the nonce package's errors.
func nonceErr(err error) error {
	var q *quota
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nonce.ErrReplayed):
		return err
	case errors.As(err, &q):
		return nonce.NewQuotaError(q.retryAfter)
	}
	return fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
}

func (w *wtx) addNonce(ownerName string, d digest, key []byte, exp int64) error {
	if old, ok := w.find(d); ok {
		if old.exp > w.now {
			return nonce.ErrReplayed
		}
		if err := w.drop(d, kindNonce, key, old); err != nil {
			return err
		}
	}
	id, err := w.ownerID(ownerName)
	if err != nil {
		return err
	}
	if err := w.room(id, entryCost(len(key), 0)); err != nil {
		return err
	}
	return w.put(d, kindNonce, key, loc{exp: exp, owner: id}, nil)
}

// Ping implements nonce.Pinger.
func (n *Nonces) Ping(ctx context.Context) error {
	if err := n.db.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	return nil
}

// nonceKey is the scoped key: the scope's length, the scope, the key, so
// that no scope and key pair reads as another.
func nonceKey(scope, key string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(scope)+len(key))
	b = binary.AppendUvarint(b, uint64(len(scope)))
	b = append(b, scope...)
	return append(b, key...)
}
