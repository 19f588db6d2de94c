package layout

import (
	"fmt"
	"net/http"

	"github.com/replayguard/replayguard/idempotency"
)

// ErrCorrupt reports a stored value that does not decode.
var ErrCorrupt = idempotency.ErrCorruptHeader

// EncodeHeader encodes h losslessly for the record's header field, in the
// form idempotency.AppendHeader defines (names in byte order, each with its
// values in order, all uvarint length-prefixed).
func EncodeHeader(h http.Header) []byte { return idempotency.AppendHeader(nil, h) }

// DecodeHeader decodes what EncodeHeader produced. It never returns a nil
// header without an error.
func DecodeHeader(b []byte) (http.Header, error) {
	h, err := idempotency.ParseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	return h, nil
}
