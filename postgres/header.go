package postgres

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sort"
)

// headerFormat is the first byte of an encoded header.
const headerFormat = 1

var errHeader = errors.New("malformed stored header")

// encodeHeader writes h losslessly: any bytes in names and values, every
// value of a name in order. The layout is documented on the headers column
// in schema.sql. A nil header encodes as nil (SQL NULL).
func encodeHeader(h http.Header) []byte {
	if h == nil {
		return nil
	}
	names := make([]string, 0, len(h))
	size := 1
	for name, vs := range h {
		names = append(names, name)
		size += 2*binary.MaxVarintLen32 + len(name)
		for _, v := range vs {
			size += binary.MaxVarintLen32 + len(v)
		}
	}
	sort.Strings(names)
	b := make([]byte, 0, size)
	b = append(b, headerFormat)
	for _, name := range names {
		vs := h[name]
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// decodeHeader reads what encodeHeader wrote; nil for SQL NULL.
func decodeHeader(b []byte) (http.Header, error) {
	if b == nil {
		return nil, nil
	}
	if len(b) == 0 || b[0] != headerFormat {
		return nil, errHeader
	}
	b = b[1:]
	h := http.Header{}
	next := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	for len(b) > 0 {
		name, ok := next()
		if !ok {
			return nil, errHeader
		}
		count, k := binary.Uvarint(b)
		if k <= 0 || count > uint64(len(b)-k) {
			return nil, errHeader
		}
		b = b[k:]
		vs := make([]string, 0, count)
		for range count {
			v, ok := next()
			if !ok {
				return nil, errHeader
			}
			vs = append(vs, v)
		}
		h[name] = vs
	}
	return h, nil
}
