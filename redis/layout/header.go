package layout

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sort"
)

// ErrCorrupt reports a stored value that does not decode.
var ErrCorrupt = errors.New("layout: corrupt stored value")

// EncodeHeader encodes h losslessly for the record's header field: for each
// name in byte order, uvarint(len(name)) name uvarint(number of values),
// then uvarint(len(value)) value for each value in order. Names are kept as
// given, not canonicalised.
func EncodeHeader(h http.Header) []byte {
	names := make([]string, 0, len(h))
	size := 0
	for name, vs := range h {
		names = append(names, name)
		size += len(name) + 2*binary.MaxVarintLen16
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen16
		}
	}
	sort.Strings(names)
	b := make([]byte, 0, size)
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

// DecodeHeader decodes what EncodeHeader produced. It never returns a nil
// header without an error.
func DecodeHeader(b []byte) (http.Header, error) {
	h := http.Header{}
	next := func() (string, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", ErrCorrupt
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		name, err := next()
		if err != nil {
			return nil, err
		}
		count, w := binary.Uvarint(b)
		if w <= 0 || count > uint64(len(b)) {
			return nil, ErrCorrupt
		}
		b = b[w:]
		var vs []string
		if count > 0 {
			vs = make([]string, 0, count)
		}
		for i := uint64(0); i < count; i++ {
			v, err := next()
			if err != nil {
				return nil, err
			}
			vs = append(vs, v)
		}
		h[name] = vs
	}
	return h, nil
}
