package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/replayguard/replayguard/nonce"
)

// nonceValueLen is the length of a nonce's value: expiry (8) ‖ owner (4).
const nonceValueLen = 12

// Nonces is the exact nonce.Store of a DB: one entry per scoped replay
// key, kept until its expiry; no false positives.
type Nonces struct{ db *DB }

var (
	_ nonce.Store  = (*Nonces)(nil)
	_ nonce.Pinger = (*Nonces)(nil)
)

// Nonces returns the DB's nonce store.
func (db *DB) Nonces() *Nonces { return &Nonces{db: db} }

// Add implements nonce.Store: a replay is answered from the committed
// state; a new entry returns once it is on disk.
func (n *Nonces) Add(ctx context.Context, e nonce.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	key := nonceKey(e.Scope, e.Key)
	exp := nonce.UnixNano(e.Expires)
	now := nonce.UnixNano(n.db.cfg.now())
	live := false
	err := n.db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNonce).Get(key)
		live = len(v) == nonceValueLen && decodeTime(v[:8]) > now
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	if live {
		return nonce.ErrReplayed
	}
	err = n.db.do(ctx, func(w *wtx) error { return w.addNonce(e.Owner, key, exp) })
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

func (w *wtx) addNonce(ownerName string, key []byte, exp int64) error {
	if v := w.nonce.Get(key); len(v) == nonceValueLen {
		old, oldOwner := decodeTime(v[:8]), binary.BigEndian.Uint32(v[8:])
		if old > w.now {
			return nonce.ErrReplayed
		}
		if err := w.dropNonce(oldOwner, old, key); err != nil {
			return err
		}
	}
	id, err := w.ownerID(ownerName, true)
	if err != nil {
		return err
	}
	cost := nonceCost(key)
	if err := w.room(id, cost); err != nil {
		return err
	}
	v := appendTime(make([]byte, 0, nonceValueLen), exp)
	v = binary.BigEndian.AppendUint32(v, id)
	if err := w.nonce.Put(key, v); err != nil {
		return err
	}
	if err := w.index(id, exp, kindNonce, key); err != nil {
		return err
	}
	return w.charge(id, cost)
}

func (w *wtx) dropNonce(id uint32, exp int64, key []byte) error {
	if err := w.nonce.Delete(key); err != nil {
		return err
	}
	if err := w.unindex(id, exp, kindNonce, key); err != nil {
		return err
	}
	return w.charge(id, -nonceCost(key))
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
