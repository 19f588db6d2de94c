package signature

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Signer signs an outgoing request whose complete body is body. It sets
// headers on req and must not read req.Body.
type Signer interface {
	Sign(req *http.Request, body []byte) error
}

// DefaultMaxRetries is Transport's retry budget when MaxRetries is zero.
const DefaultMaxRetries = 2

// maxRetryAfter caps how long Transport honours a Retry-After.
const maxRetryAfter = 30 * time.Second

// Transport is an http.RoundTripper that signs every outgoing request. Each
// attempt, retries included, is signed anew with a fresh nonce and
// timestamp; a mutating request gets one Idempotency-Key that all its
// retries share, so the operation runs once however often it is sent.
//
// Transport retries (up to MaxRetries) on transport errors and on 409, 429,
// 502, 503 and 504, honouring Retry-After, but only when a retry cannot run
// the operation twice: the method is idempotent or the request carries an
// Idempotency-Key.
type Transport struct {
	// Base performs the requests. Default http.DefaultTransport.
	Base http.RoundTripper
	// Signer signs each attempt. Required.
	Signer Signer
	// MaxRetries is the number of retries after the first attempt.
	// Default DefaultMaxRetries; negative disables retries.
	MaxRetries int
	// IdempotencyMethods get a generated Idempotency-Key when they carry
	// none. Default POST and PATCH. Set to an empty non-nil slice to never
	// generate one.
	IdempotencyMethods []string
	// NewIdempotencyKey generates keys. Default: a random UUID v4.
	NewIdempotencyKey func() string
	// Backoff is the wait before retry attempt n (1-based) when the server
	// sent no Retry-After. Default: 100ms·2^(n-1) with jitter.
	Backoff func(n int) time.Duration
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Signer == nil {
		closeBody(req)
		return nil, errors.New("signature: transport: no signer")
	}
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	idemKey := req.Header.Get(IdempotencyKeyHeader)
	if idemKey == "" && t.generatesKey(req.Method) {
		if t.NewIdempotencyKey != nil {
			idemKey = t.NewIdempotencyKey()
		} else {
			idemKey = uuid.NewString()
		}
	}
	retries := t.MaxRetries
	if retries == 0 {
		retries = DefaultMaxRetries
	}
	if retries < 0 || (idemKey == "" && !idempotentMethod(req.Method)) {
		retries = 0
	}

	for attempt := 0; ; attempt++ {
		out := req.Clone(req.Context())
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		if idemKey != "" {
			out.Header.Set(IdempotencyKeyHeader, idemKey)
		}
		if err := t.Signer.Sign(out, body); err != nil {
			return nil, err
		}
		resp, err := base.RoundTrip(out)
		if attempt >= retries || !retryable(resp, err) {
			return resp, err
		}
		wait := retryAfter(resp)
		if wait < 0 {
			wait = t.backoff(attempt + 1)
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

func (t *Transport) generatesKey(method string) bool {
	if t.IdempotencyMethods == nil {
		return method == http.MethodPost || method == http.MethodPatch
	}
	for _, m := range t.IdempotencyMethods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

func (t *Transport) backoff(n int) time.Duration {
	if t.Backoff != nil {
		return t.Backoff(n)
	}
	d := 100 * time.Millisecond << (n - 1)
	return d/2 + time.Duration(rand.Int63n(int64(d/2)+1))
}

func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusConflict, http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter returns the server's Retry-After in seconds, or -1.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return -1
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return -1
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
		if d < 0 {
			d = 0
		}
	} else {
		return -1
	}
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer func() { _ = req.Body.Close() }()
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("signature: transport: reading body: %w", err)
	}
	return b, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
