package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// Records is the idempotency.Store of a DB. Leases and expiry follow the
// store's clock. A claim that finds a live record is answered from the
// committed state; every write returns once it is on disk.
type Records struct{ db *DB }

var (
	_ idempotency.Store        = (*Records)(nil)
	_ idempotency.OwnerClaimer = (*Records)(nil)
	_ idempotency.Pinger       = (*Records)(nil)
	_ idempotency.NonceClaimer = (*Records)(nil)
)

// Records returns the DB's idempotency store.
func (db *DB) Records() *Records { return db.records }

// NonceStore implements idempotency.NonceClaimer: the DB's nonce store.
func (r *Records) NonceStore() nonce.Store { return r.db.nonces }

// ClaimWithNonce implements idempotency.NonceClaimer: the nonce and the
// claim share one commit. A replay of a committed nonce is answered
// without a write; a failed commit stores neither and is the nonce's
// error.
func (r *Records) ClaimWithNonce(ctx context.Context, n nonce.Entry, owner, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error, error) {
	p, err := r.db.pendingNonce(ctx, n)
	if err != nil {
		return idempotency.Claim{}, err, nil
	}
	k := []byte(key)
	d := r.db.ix.digest(kindRecord, k)
	token := idempotency.NewToken()
	var c idempotency.Claim
	var claimErr error
	err = r.db.do(ctx, func(w *wtx) error {
		if err := p.add(w); err != nil {
			return err
		}
		c, claimErr = w.claim(owner, d, k, fp, token, lease)
		return nil
	})
	if err != nil {
		return idempotency.Claim{}, nonceErr(err), nil
	}
	if claimErr != nil {
		return idempotency.Claim{}, nil, recordErr(claimErr)
	}
	return c, nil, nil
}

// Claim implements idempotency.Store; the record is charged to nobody.
func (r *Records) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	return r.ClaimFor(ctx, "", key, fp, lease)
}

// ClaimFor implements idempotency.OwnerClaimer.
func (r *Records) ClaimFor(ctx context.Context, owner, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	if err := ctx.Err(); err != nil {
		return idempotency.Claim{}, unavailable(err)
	}
	k := []byte(key)
	d := r.db.ix.digest(kindRecord, k)
	// A live record is answered without a write (the index shows only
	// what is on disk).
	if l, ok := r.db.ix.get(d); ok && l.exp > r.db.cfg.now().UnixNano() {
		v, err := r.db.get(entryKey(l.owner, l.exp, kindRecord, k))
		if err != nil {
			return idempotency.Claim{}, unavailable(err)
		}
		if v != nil { // else moved meanwhile: the writer decides
			rec, err := decodeRecord(v)
			if err == nil {
				var existing *idempotency.Record
				if existing, err = rec.snapshot(); err == nil {
					return idempotency.Claim{Existing: existing}, nil
				}
			}
			return idempotency.Claim{}, unavailable(err)
		}
	}
	token := idempotency.NewToken()
	var c idempotency.Claim
	err := r.db.do(ctx, func(w *wtx) (err error) {
		c, err = w.claim(owner, d, k, fp, token, lease)
		return err
	})
	if err != nil {
		return idempotency.Claim{}, recordErr(err)
	}
	return c, nil
}

func (w *wtx) claim(ownerName string, d digest, key []byte, fp idempotency.Fingerprint, token string, lease time.Duration) (idempotency.Claim, error) {
	if l, ok := w.find(d); ok {
		if l.exp > w.now {
			rec, err := w.record(d, key, l)
			if err != nil {
				return idempotency.Claim{}, err
			}
			snap, err := rec.snapshot()
			return idempotency.Claim{Existing: snap}, err
		}
		if err := w.drop(d, kindRecord, key, l); err != nil {
			return idempotency.Claim{}, err
		}
	}
	id, err := w.ownerID(ownerName)
	if err != nil {
		return idempotency.Claim{}, err
	}
	exp := after(w.now, lease)
	rec := record{state: idempotency.StateInProgress, fp: fp, token: token, leaseUntil: exp, expires: exp, owner: id}
	v := rec.encode()
	if err := w.room(id, entryCost(len(key), len(v))); err != nil {
		return idempotency.Claim{}, err
	}
	if err := w.put(d, kindRecord, key, loc{exp: exp, owner: id}, v); err != nil {
		return idempotency.Claim{}, err
	}
	return idempotency.Claim{Acquired: true, Token: token}, nil
}

// record reads the record at l.
func (w *wtx) record(d digest, key []byte, l loc) (record, error) {
	v, err := w.value(d, kindRecord, key, l)
	if err != nil {
		return record{}, err
	}
	if v == nil {
		return record{}, fmt.Errorf("%w: indexed but absent", errRecord)
	}
	return decodeRecord(v)
}

// holder returns the in-progress record key that token holds. Fencing is
// by token: a holder whose lease ran out may still finish as long as
// nobody took the record over.
func (w *wtx) holder(d digest, key []byte, token string) (record, loc, error) {
	l, ok := w.find(d)
	if !ok {
		return record{}, loc{}, idempotency.ErrLeaseLost
	}
	rec, err := w.record(d, key, l)
	if err != nil {
		return record{}, loc{}, err
	}
	if rec.token != token || rec.state != idempotency.StateInProgress {
		return record{}, loc{}, idempotency.ErrLeaseLost
	}
	return rec, l, nil
}

// Renew implements idempotency.Store.
func (r *Records) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return r.holding(ctx, key, token, func(w *wtx, h held) error {
		next := h.rec
		next.leaseUntil = after(w.now, lease)
		if next.leaseUntil > next.expires {
			next.expires = next.leaseUntil
		}
		return w.replaceRecord(h, next)
	})
}

// Complete implements idempotency.Store. A response that would take the
// record's owner past its share is not stored: Complete fails with a
// *idempotency.QuotaError and the record stays in progress until its
// lease ends.
func (r *Records) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	if resp == nil {
		resp = &idempotency.Response{}
	}
	header := idempotency.AppendHeader(nil, resp.Header)
	return r.holding(ctx, key, token, func(w *wtx, h held) error {
		return w.replaceRecord(h, record{state: idempotency.StateCompleted, fp: h.rec.fp, token: h.rec.token,
			expires: after(w.now, ttl), owner: h.rec.owner, status: resp.Status, header: header, body: resp.Body})
	})
}

// Release implements idempotency.Store.
func (r *Records) Release(ctx context.Context, key, token string) error {
	return r.holding(ctx, key, token, func(w *wtx, h held) error {
		return w.drop(h.d, kindRecord, h.key, h.loc)
	})
}

// held is an in-progress record and where it is, found for its holder.
type held struct {
	d   digest
	key []byte
	loc loc
	rec record
}

// holding runs fn in the writer on the in-progress record key that token
// holds; ErrLeaseLost when it holds none.
func (r *Records) holding(ctx context.Context, key, token string, fn func(w *wtx, h held) error) error {
	k := []byte(key)
	d := r.db.ix.digest(kindRecord, k)
	return r.write(ctx, func(w *wtx) error {
		rec, l, err := w.holder(d, k, token)
		if err != nil {
			return err
		}
		return fn(w, held{d: d, key: k, loc: l, rec: rec})
	})
}

func (r *Records) write(ctx context.Context, apply func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return unavailable(err)
	}
	return recordErr(r.db.do(ctx, apply))
}

// Ping implements idempotency.Pinger.
func (r *Records) Ping(ctx context.Context) error {
	if err := r.db.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// replaceRecord puts next in the place of the held record, checking the
// owner's room for it. The old record is taken out first, so that
// reclaiming room cannot remove it midway (its lease may have ended); it
// is put back when next does not fit.
func (w *wtx) replaceRecord(h held, next record) error {
	old, err := w.value(h.d, kindRecord, h.key, h.loc)
	if err != nil {
		return err
	}
	if err := w.drop(h.d, kindRecord, h.key, h.loc); err != nil {
		return err
	}
	v := next.encode()
	if err := w.room(h.loc.owner, entryCost(len(h.key), len(v))); err != nil {
		if perr := w.put(h.d, kindRecord, h.key, h.loc, old); perr != nil {
			return perr
		}
		return err
	}
	return w.put(h.d, kindRecord, h.key, loc{exp: next.expires, owner: h.loc.owner}, v)
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", idempotency.ErrUnavailable, err)
}

// recordErr maps a write's outcome to the idempotency package's errors.
func recordErr(err error) error {
	var q *quota
	switch {
	case err == nil:
		return nil
	case errors.Is(err, idempotency.ErrLeaseLost):
		return err
	case errors.As(err, &q):
		return idempotency.NewQuotaError(q.retryAfter)
	}
	return unavailable(err)
}

// recordFormat is the first byte of an encoded record.
const recordFormat = 1

// record is a stored idempotency record. Encoded: format (1), state (1),
// fingerprint (32), token length (1) and token, lease end (8), expiry (8),
// owner id (4), status (2), header length (4) and the header in the form
// idempotency.AppendHeader writes, then the body to the end.
type record struct {
	state      idempotency.State
	fp         idempotency.Fingerprint
	token      string
	leaseUntil int64
	expires    int64
	owner      uint32
	status     int
	header     []byte
	body       []byte
}

const recordFixed = 1 + 1 + 32 + 1 + 8 + 8 + 4 + 2 + 4

var errRecord = errors.New("disk: malformed record")

func (r record) encode() []byte {
	b := make([]byte, 0, recordFixed+len(r.token)+len(r.header)+len(r.body))
	b = append(b, recordFormat, byte(r.state))
	b = append(b, r.fp[:]...)
	b = append(b, byte(len(r.token)))
	b = append(b, r.token...)
	b = appendTime(b, r.leaseUntil)
	b = appendTime(b, r.expires)
	b = binary.BigEndian.AppendUint32(b, r.owner)
	b = binary.BigEndian.AppendUint16(b, uint16(r.status))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.header)))
	b = append(b, r.header...)
	return append(b, r.body...)
}

// decodeRecord reads what encode wrote. The header and body alias v:
// snapshot copies them.
func decodeRecord(v []byte) (record, error) {
	var r record
	if len(v) < recordFixed || v[0] != recordFormat {
		return r, errRecord
	}
	r.state = idempotency.State(v[1])
	copy(r.fp[:], v[2:34])
	tl := int(v[34])
	rest := v[35:]
	if len(rest) < tl+26 {
		return r, errRecord
	}
	r.token = string(rest[:tl])
	rest = rest[tl:]
	r.leaseUntil = decodeTime(rest[0:8])
	r.expires = decodeTime(rest[8:16])
	r.owner = binary.BigEndian.Uint32(rest[16:20])
	r.status = int(binary.BigEndian.Uint16(rest[20:22]))
	hl := int(binary.BigEndian.Uint32(rest[22:26]))
	rest = rest[26:]
	if hl > len(rest) || (r.state != idempotency.StateInProgress && r.state != idempotency.StateCompleted) {
		return r, errRecord
	}
	r.header, r.body = rest[:hl], rest[hl:]
	return r, nil
}

// snapshot returns the record as callers see it, copied out of the file.
func (r record) snapshot() (*idempotency.Record, error) {
	out := &idempotency.Record{State: r.state, Fingerprint: r.fp}
	if r.state == idempotency.StateCompleted {
		h, err := idempotency.ParseHeader(r.header)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errRecord, err)
		}
		if h == nil {
			h = http.Header{}
		}
		out.Response = &idempotency.Response{Status: r.status, Header: h, Body: append([]byte(nil), r.body...)}
	}
	return out, nil
}
