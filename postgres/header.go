package postgres

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/replayguard/replayguard/idempotency"
)

// headerFormat is the first byte of an encoded header; the rest is the
// form idempotency.AppendHeader defines.
const headerFormat = 1

var errHeader = errors.New("malformed stored header")

// encodeHeader writes h losslessly: any bytes in names and values, every
// value of a name in order. The layout is documented on the headers column
// in schema.sql. A nil header encodes as nil (SQL NULL).
func encodeHeader(h http.Header) []byte {
	if h == nil {
		return nil
	}
	return idempotency.AppendHeader([]byte{headerFormat}, h)
}

// decodeHeader reads what encodeHeader wrote; nil for SQL NULL.
func decodeHeader(b []byte) (http.Header, error) {
	if b == nil {
		return nil, nil
	}
	if len(b) == 0 || b[0] != headerFormat {
		return nil, errHeader
	}
	h, err := idempotency.ParseHeader(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHeader, err)
	}
	return h, nil
}
