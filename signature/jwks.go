package signature

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
)

// Defaults of a JWKS.
const (
	// DefaultJWKSTimeout bounds one fetch of the key set.
	DefaultJWKSTimeout = 5 * time.Second
	// DefaultJWKSMaxBytes bounds the size of the key set document.
	DefaultJWKSMaxBytes = 256 << 10
	// DefaultJWKSRefresh is the age after which a cached key set is
	// refreshed in the background while it goes on serving.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSID is the identity of every token verified with a key of
	// the set: the set is one key entry, whatever kid a token names.
	DefaultJWKSID = "jwks"
	// DefaultJWKSMinRefresh is the shortest interval between two fetches
	// caused by unknown key ids: a flood of tokens with invented kids costs
	// at most one fetch per interval.
	DefaultJWKSMinRefresh = 10 * time.Second
)

// ErrJWKSFetch reports a key set that could not be fetched or parsed.
var ErrJWKSFetch = errors.New("signature: jwks: fetch failed")

// JWKS is a JSON Web Key Set fetched from a URL (RFC 7517 §5) and cached.
// A key id missing from the cache triggers a fetch, at most once per
// minimum refresh interval; a cache older than the refresh interval is
// refreshed in the background while it goes on serving; a failed fetch
// keeps the previous keys. Only asymmetric signature keys are taken from
// the set: "oct" keys, "use": "enc" keys and keys without a kid are
// skipped. Each key is used with exactly one algorithm: its "alg", else
// the one its curve implies (ES256, ES384, ES512, EdDSA), else RS256 for an
// RSA key. It is safe for concurrent use.
type JWKS struct {
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
	keys       map[string]*jwtKey
	fetched    time.Time // last successful fetch
	attempted  time.Time // last fetch, successful or not
	background bool      // a background refresh is running
}

// JWKSOption configures a JWKS.
type JWKSOption func(*JWKS)

// WithJWKSClient sets the HTTP client. Default: an http.Client whose
// timeout is the fetch timeout.
func WithJWKSClient(c *http.Client) JWKSOption {
	return func(j *JWKS) { j.client = c }
}

// WithJWKSTimeout bounds one fetch. Default DefaultJWKSTimeout.
func WithJWKSTimeout(d time.Duration) JWKSOption {
	return func(j *JWKS) { j.timeout = d }
}

// WithJWKSMaxBytes bounds the key set document. Default DefaultJWKSMaxBytes.
func WithJWKSMaxBytes(n int64) JWKSOption {
	return func(j *JWKS) { j.maxBytes = n }
}

// WithJWKSRefresh sets the age after which the cached set is refreshed in
// the background. Default DefaultJWKSRefresh.
func WithJWKSRefresh(d time.Duration) JWKSOption {
	return func(j *JWKS) { j.refresh = d }
}

// WithJWKSMinRefresh sets the shortest interval between fetches caused by
// unknown key ids. Default DefaultJWKSMinRefresh.
func WithJWKSMinRefresh(d time.Duration) JWKSOption {
	return func(j *JWKS) { j.minRefresh = d }
}

// WithJWKSID sets the identity (Verified.KeyID) of tokens verified with a
// key of the set. Default DefaultJWKSID.
func WithJWKSID(id string) JWKSOption {
	return func(j *JWKS) { j.id = id }
}

// WithJWKSClock sets the clock of the cache ages. Default time.Now.
func WithJWKSClock(now func() time.Time) JWKSOption {
	return func(j *JWKS) { j.now = now }
}

// NewJWKS returns a key set served at rawURL (http or https). Nothing is
// fetched until the first lookup or Refresh.
func NewJWKS(rawURL string, opts ...JWKSOption) (*JWKS, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("signature: jwks: want an http(s) URL, got %q", rawURL)
	}
	j := &JWKS{
		id: DefaultJWKSID, url: rawURL, timeout: DefaultJWKSTimeout, maxBytes: DefaultJWKSMaxBytes,
		refresh: DefaultJWKSRefresh, minRefresh: DefaultJWKSMinRefresh, now: time.Now,
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
func (j *JWKS) Refresh(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetch(ctx)
}

// KeyIDs returns the key ids currently cached, in no particular order.
func (j *JWKS) KeyIDs() []string {
	j.mu.RLock()
	defer j.mu.RUnlock()
	ids := make([]string, 0, len(j.keys))
	for id := range j.keys {
		ids = append(ids, id)
	}
	return ids
}

// lookup returns the key named kid, fetching the set when kid is unknown
// and the rate limit allows.
func (j *JWKS) lookup(kid string) (*jwtKey, error) {
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
		return nil, ErrKeyUnknown
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
		return nil, ErrKeyUnknown
	}
	if err := j.fetch(context.Background()); err != nil {
		// The fetch error names addresses; it stays in the chain, out of
		// the message a client may see.
		return nil, fmt.Errorf("%w: the key set could not be fetched%w", ErrKeyUnknown, &quietError{err: err})
	}
	j.mu.RLock()
	k = j.keys[kid]
	j.mu.RUnlock()
	if k == nil {
		return nil, ErrKeyUnknown
	}
	return k, nil
}

func (j *JWKS) mayFetch(now time.Time) bool {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.attempted.IsZero() || now.Sub(j.attempted) >= j.minRefresh
}

func (j *JWKS) refreshInBackground() {
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
func (j *JWKS) fetch(ctx context.Context) error {
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

func (j *JWKS) download(ctx context.Context) (map[string]*jwtKey, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJWKSFetch, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJWKSFetch, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: status %d", ErrJWKSFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, j.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJWKSFetch, err)
	}
	if int64(len(body)) > j.maxBytes {
		return nil, fmt.Errorf("%w: key set larger than %d bytes", ErrJWKSFetch, j.maxBytes)
	}
	keys, err := ParseJWKS(body)
	if err != nil {
		return nil, err
	}
	return keys.keys, nil
}

// KeySet is a parsed JSON Web Key Set: the usable asymmetric signature keys
// by key id.
type KeySet struct {
	keys map[string]*jwtKey
}

// Len is the number of usable keys.
func (s KeySet) Len() int { return len(s.keys) }

// Algorithm returns the algorithm of the key named kid, or "".
func (s KeySet) Algorithm(kid string) string {
	if k := s.keys[kid]; k != nil {
		return k.alg
	}
	return ""
}

// ParseJWKS parses a JSON Web Key Set document, keeping the keys the jwt
// scheme can use (see JWKS). A set with keys of which none is usable is an
// error, so that a broken document never replaces working keys.
func ParseJWKS(data []byte) (KeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return KeySet{}, fmt.Errorf("%w: not a JSON key set", ErrJWKSFetch)
	}
	keys := make(map[string]*jwtKey, len(doc.Keys))
	for _, raw := range doc.Keys {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		jk, err := ParseJWK(m)
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
		alg, err = keyAlgorithm(jk.Key, alg)
		if err != nil {
			continue
		}
		keys[jk.KeyID] = &jwtKey{id: jk.KeyID, alg: alg, verify: jk.Key}
	}
	if len(keys) == 0 && len(doc.Keys) > 0 {
		return KeySet{}, fmt.Errorf("%w: no usable signature key in the set", ErrJWKSFetch)
	}
	return KeySet{keys: keys}, nil
}
