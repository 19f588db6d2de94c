package idempotency

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sort"
)

// ErrCorruptHeader reports stored header bytes that do not decode.
var ErrCorruptHeader = errors.New("idempotency: corrupt stored header")

// AppendHeader appends h to dst in the lossless binary form shared stores
// keep: for each name in byte order, uvarint(len(name)) name
// uvarint(number of values), then uvarint(len(value)) value for each value
// in order. Names are kept as given; any bytes are allowed.
func AppendHeader(dst []byte, h http.Header) []byte {
	names := make([]string, 0, len(h))
	size := 0
	for name, vs := range h {
		names = append(names, name)
		size += len(name) + 2*binary.MaxVarintLen32
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen32
		}
	}
	sort.Strings(names)
	if cap(dst)-len(dst) < size {
		dst = append(make([]byte, 0, len(dst)+size), dst...)
	}
	for _, name := range names {
		vs := h[name]
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
		dst = binary.AppendUvarint(dst, uint64(len(vs)))
		for _, v := range vs {
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	return dst
}

// ParseHeader decodes what AppendHeader wrote. It never returns a nil
// header without an error.
func ParseHeader(b []byte) (http.Header, error) {
	h := http.Header{}
	next := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	for len(b) > 0 {
		name, ok := next()
		if !ok {
			return nil, ErrCorruptHeader
		}
		count, w := binary.Uvarint(b)
		if w <= 0 || count > uint64(len(b)-w) {
			return nil, ErrCorruptHeader
		}
		b = b[w:]
		vs := make([]string, 0, count)
		for i := uint64(0); i < count; i++ {
			v, ok := next()
			if !ok {
				return nil, ErrCorruptHeader
			}
			vs = append(vs, v)
		}
		h[name] = vs
	}
	return h, nil
}
