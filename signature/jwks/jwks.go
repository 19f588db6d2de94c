package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/replayguard/replayguard/signature"
)

// Defaults of a JWKS.
const (
	// DefaultTimeout bounds one fetch of the key set.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBytes bounds the size of the key set document.
	DefaultMaxBytes = 256 << 10
	// DefaultRefresh is the age after which a cached key set is
	// refreshed in the background while it goes on serving.
	DefaultRefresh = time.Hour
	// DefaultID is the identity of every token verified with a key of
	// the set: the set is one key entry, whatever kid a token names.
	DefaultID = "jwks"
	// DefaultMinRefresh is the shortest interval between two fetches
	// caused by unknown key ids: a flood of tokens with invented kids costs
	// at most one fetch per interval.
	DefaultMinRefresh = 10 * time.Second
)

// ErrFetch reports a key set that could not be fetched or parsed.
var ErrFetch = errors.New("signature: jwks: fetch failed")

// Set is a JSON Web Key Set fetched from a URL (RFC 7517 §5) and cached.
// A key id missing from the cache triggers a fetch, at most once per
// minimum refresh interval; a cache older than the refresh interval is
// refreshed in the background while it goes on serving; a failed fetch
// keeps the previous keys. Only asymmetric signature keys are taken from
// the set: "oct" keys, "use": "enc" keys and keys without a kid are
// skipped. Each key is used with exactly one algorithm: its "alg", else
// the one its curve implies (ES256, ES384, ES512, EdDSA), else RS256 for an
// RSA key. It is safe for concurrent use.
type Set struct {
	id         string
	url        string
	client     *http.Client
	timeout    time.Duration
	maxBytes   int64
	refresh    time.Duration
	minRefresh time.Duration
	now        func() time.Time

	fetchMu sync.Mutex // one fetch at a time

	mu         sync.RWMutex
	keys       map[string]*Key
	fetched    time.Time // last successful fetch
	attempted  time.Time // last fetch, successful or not
	background bool      // a background refresh is running
}

// Option configures a JWKS.
type Option func(*Set)

// WithClient sets the HTTP client. Default: an http.Client whose
// timeout is the fetch timeout.
func WithClient(c *http.Client) Option {
	return func(j *Set) { j.client = c }
}

// WithTimeout bounds one fetch. Default DefaultJWKSTimeout.
func WithTimeout(d time.Duration) Option {
	return func(j *Set) { j.timeout = d }
}

// WithMaxBytes bounds the key set document. Default DefaultJWKSMaxBytes.
func WithMaxBytes(n int64) Option {
	return func(j *Set) { j.maxBytes = n }
}

// WithRefresh sets the age after which the cached set is refreshed in
// the background. Default DefaultJWKSRefresh.
func WithRefresh(d time.Duration) Option {
	return func(j *Set) { j.refresh = d }
}

// WithMinRefresh sets the shortest interval between fetches caused by
// unknown key ids. Default DefaultJWKSMinRefresh.
func WithMinRefresh(d time.Duration) Option {
	return func(j *Set) { j.minRefresh = d }
}

// WithID sets the identity (Verified.KeyID) of tokens verified with a
// key of the set. Default DefaultJWKSID.
func WithID(id string) Option {
	return func(j *Set) { j.id = id }
}

// WithClock sets the clock of the cache ages. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(j *Set) { j.now = now }
}

// New returns a key set served at rawURL (http or https). Nothing is
// fetched until the first lookup or Refresh.
func New(rawURL string, opts ...Option) (*Set, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("signature: jwks: want an http(s) URL, got %q", rawURL)
	}
	j := &Set{
		id: DefaultID, url: rawURL, timeout: DefaultTimeout, maxBytes: DefaultMaxBytes,
		refresh: DefaultRefresh, minRefresh: DefaultMinRefresh, now: time.Now,
	}
	for _, o := range opts {
		o(j)
	}
	if j.client == nil {
		j.client = &http.Client{Timeout: j.timeout}
	}
	return j, nil
}

// Refresh fetches the key set now, whatever the age of the cache.
func (j *Set) Refresh(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetch(ctx)
}

// KeyIDs returns the key ids currently cached, in no particular order.
func (j *Set) KeyIDs() []string {
	j.mu.RLock()
	defer j.mu.RUnlock()
	ids := make([]string, 0, len(j.keys))
	for id := range j.keys {
		ids = append(ids, id)
	}
	return ids
}

// ID returns the identity of tokens verified with a key of the set.
func (j *Set) ID() string { return j.id }

// Lookup returns the key named kid, fetching the set when kid is unknown
// and the rate limit allows.
func (j *Set) Lookup(kid string) (*Key, error) {
	now := j.now()
	j.mu.RLock()
	k := j.keys[kid]
	stale := !j.fetched.IsZero() && now.Sub(j.fetched) >= j.refresh
	j.mu.RUnlock()
	if k != nil {
		if stale {
			j.refreshInBackground()
		}
		return k, nil
	}
	if !j.mayFetch(now) {
		return nil, signature.ErrKeyUnknown
	}
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	j.mu.RLock()
	k = j.keys[kid]
	j.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	if !j.mayFetch(j.now()) {
		return nil, signature.ErrKeyUnknown
	}
	if err := j.fetch(context.Background()); err != nil {
		// The fetch error names addresses; it stays in the chain, out of
		// the message a client may see.
		return nil, fmt.Errorf("%w: the key set could not be fetched%w", signature.ErrKeyUnknown, &quietError{err: err})
	}
	j.mu.RLock()
	k = j.keys[kid]
	j.mu.RUnlock()
	if k == nil {
		return nil, signature.ErrKeyUnknown
	}
	return k, nil
}

func (j *Set) mayFetch(now time.Time) bool {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.attempted.IsZero() || now.Sub(j.attempted) >= j.minRefresh
}

func (j *Set) refreshInBackground() {
	j.mu.Lock()
	if j.background || j.now().Sub(j.attempted) < j.minRefresh {
		j.mu.Unlock()
		return
	}
	j.background = true
	j.mu.Unlock()
	go func() {
		j.fetchMu.Lock()
		_ = j.fetch(context.Background())
		j.fetchMu.Unlock()
		j.mu.Lock()
		j.background = false
		j.mu.Unlock()
	}()
}

// fetch downloads and installs the key set; the caller holds fetchMu. On
// failure the cached keys stay.
func (j *Set) fetch(ctx context.Context) error {
	j.mu.Lock()
	j.attempted = j.now()
	j.mu.Unlock()
	keys, err := j.download(ctx)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.keys = keys
	j.fetched = j.now()
	j.mu.Unlock()
	return nil
}

func (j *Set) download(ctx context.Context) (map[string]*Key, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: status %d", ErrFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, j.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if int64(len(body)) > j.maxBytes {
		return nil, fmt.Errorf("%w: key set larger than %d bytes", ErrFetch, j.maxBytes)
	}
	keys, err := Parse(body)
	if err != nil {
		return nil, err
	}
	return keys.keys, nil
}

// KeySet is a parsed JSON Web Key Set: the usable asymmetric signature keys
// by key id.
type KeySet struct {
	keys map[string]*Key
}

// Len is the number of usable keys.
func (s KeySet) Len() int { return len(s.keys) }

// Algorithm returns the algorithm of the key named kid, or "".
func (s KeySet) Algorithm(kid string) string {
	if k := s.keys[kid]; k != nil {
		return k.Algorithm
	}
	return ""
}

// Parse parses a JSON Web Key Set document, keeping the keys the jwt
// scheme can use (see JWKS). A set with keys of which none is usable is an
// error, so that a broken document never replaces working keys.
func Parse(data []byte) (KeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return KeySet{}, fmt.Errorf("%w: not a JSON key set", ErrFetch)
	}
	keys := make(map[string]*Key, len(doc.Keys))
	for _, raw := range doc.Keys {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		jk, err := signature.ParseJWK(m)
		if err != nil || jk.KeyID == "" || (jk.Use != "" && jk.Use != "sig") {
			continue
		}
		if _, dup := keys[jk.KeyID]; dup {
			continue
		}
		alg := jk.Algorithm
		switch jk.Key.(type) {
		case *rsa.PublicKey:
			if alg == "" {
				alg = "RS256"
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		alg, err = signature.KeyAlgorithm(jk.Key, alg)
		if err != nil {
			continue
		}
		keys[jk.KeyID] = &Key{ID: jk.KeyID, Algorithm: alg, Verify: jk.Key}
	}
	if len(keys) == 0 && len(doc.Keys) > 0 {
		return KeySet{}, fmt.Errorf("%w: no usable signature key in the set", ErrFetch)
	}
	return KeySet{keys: keys}, nil
}

// quietError keeps an error in a chain without adding its text to the
// message (the text of a fetch error names addresses).
type quietError struct{ err error }

func (e *quietError) Error() string { return "" }
func (e *quietError) Unwrap() error { return e.err }

// Key is a verification key and the one algorithm it is used with: a key
// of the set, or a configured key a scheme holds beside them.
type Key struct {
	// ID is the key's id (a JWK's kid, or the configured key's id).
	ID string
	// Algorithm is the one JOSE algorithm the key is used with.
	Algorithm string
	// Verify is what golang-jwt verifies with: a public key, secret bytes,
	// or a jwt.VerificationKeySet of secrets.
	Verify any
}
