package layout_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redisstore/layout"
)

func TestDecodeClaim(t *testing.T) {
	fp := idempotency.Fingerprint{1, 2, 3}
	resp := &idempotency.Response{Status: 201, Header: http.Header{"Location": {"/c/1"}}, Body: []byte("{\x00}")}
	completed := []any{int64(0), layout.StateCompleted, string(fp[:]), "201", string(layout.EncodeHeader(resp.Header)), string(resp.Body)}

	c, err := layout.DecodeClaim([]any{int64(1)}, "tok")
	require.NoError(t, err)
	assert.Equal(t, idempotency.Claim{Acquired: true, Token: "tok"}, c)

	c, err = layout.DecodeClaim(completed, "tok")
	require.NoError(t, err)
	require.NotNil(t, c.Existing)
	assert.False(t, c.Acquired)
	assert.Equal(t, idempotency.StateCompleted, c.Existing.State)
	assert.Equal(t, fp, c.Existing.Fingerprint)
	assert.Equal(t, resp, c.Existing.Response)

	c, err = layout.DecodeClaim([]any{int64(0), layout.StateInProgress, string(fp[:]), "", "", ""}, "tok")
	require.NoError(t, err)
	assert.Equal(t, idempotency.StateInProgress, c.Existing.State)
	assert.Nil(t, c.Existing.Response)

	with := func(i int, v any) []any {
		r := append([]any(nil), completed...)
		r[i] = v
		return r
	}
	for name, reply := range map[string]any{
		"not an array":      "OK",
		"empty":             []any{},
		"short record":      []any{int64(0), layout.StateCompleted},
		"field not string":  with(4, int64(3)),
		"short fingerprint": with(2, "abc"),
		"bad status":        with(3, "two hundred"),
		"bad header":        with(4, "\xff\xff\xff"),
		"unknown state":     with(1, "x"),
	} {
		_, err := layout.DecodeClaim(reply, "tok")
		assert.ErrorIs(t, err, idempotency.ErrUnavailable, name)
	}
}

func TestDecodeTransition(t *testing.T) {
	assert.NoError(t, layout.DecodeTransition(int64(1)))
	assert.ErrorIs(t, layout.DecodeTransition(int64(0)), idempotency.ErrLeaseLost)
	for _, v := range []any{int64(2), "1", nil} {
		assert.ErrorIs(t, layout.DecodeTransition(v), idempotency.ErrUnavailable)
	}
}

func TestNonceHelpers(t *testing.T) {
	a, b := layout.NewNonceToken(), layout.NewNonceToken()
	assert.NotEqual(t, a, b)
	assert.NotEmpty(t, a)
	assert.False(t, strings.HasPrefix(a, "-"))
	assert.True(t, layout.NonceFresh(nil, a))
	assert.True(t, layout.NonceFresh(a, a))
	assert.False(t, layout.NonceFresh(b, a))
	assert.False(t, layout.NonceFresh(int64(5), a))

	at := time.UnixMilli(1_700_000_000_123)
	assert.Equal(t, int64(1_700_000_000_123), layout.UnixMilliCeil(at))
	assert.Equal(t, int64(1_700_000_000_124), layout.UnixMilliCeil(at.Add(time.Nanosecond)))
	assert.Equal(t, int64(1), layout.Millis(0))
	assert.Equal(t, int64(2), layout.Millis(1500*time.Microsecond))
}
