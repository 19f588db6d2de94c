package sfv

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// AppendBareItem appends the strict serialization of v to dst.
func AppendBareItem(dst []byte, v BareItem) ([]byte, error) {
	switch v.Type {
	case TypeInteger:
		if v.Int < MinInteger || v.Int > MaxInteger {
			return dst, fmt.Errorf("%w: integer %d out of range", ErrInvalidValue, v.Int)
		}
		return strconv.AppendInt(dst, v.Int, 10), nil
	case TypeDecimal:
		return appendDecimal(dst, v.Int)
	case TypeString:
		return appendString(dst, v.Str)
	case TypeToken:
		if !ValidToken(v.Str) {
			return dst, fmt.Errorf("%w: invalid token %q", ErrInvalidValue, v.Str)
		}
		return append(dst, v.Str...), nil
	case TypeByteSequence:
		dst = append(dst, ':')
		n := base64.StdEncoding.EncodedLen(len(v.Bytes))
		start := len(dst)
		for i := 0; i < n; i++ {
			dst = append(dst, 0)
		}
		base64.StdEncoding.Encode(dst[start:], v.Bytes)
		return append(dst, ':'), nil
	case TypeBoolean:
		if v.Bool {
			return append(dst, '?', '1'), nil
		}
		return append(dst, '?', '0'), nil
	}
	return dst, fmt.Errorf("%w: bare item of no type", ErrInvalidValue)
}

func appendDecimal(dst []byte, milli int64) ([]byte, error) {
	if milli < -MaxDecimalMilli || milli > MaxDecimalMilli {
		return dst, fmt.Errorf("%w: decimal out of range", ErrInvalidValue)
	}
	if milli < 0 {
		dst = append(dst, '-')
		milli = -milli
	}
	dst = strconv.AppendInt(dst, milli/1000, 10)
	dst = append(dst, '.')
	frac := milli % 1000
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	return append(dst, digits[:n]...), nil
}

func appendString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return dst, fmt.Errorf("%w: string with a character outside %%x20-7E", ErrInvalidValue)
		}
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"'), nil
}

// ValidKey reports whether s is a key: a lowercase letter or '*', then
// lowercase letters, digits, '_', '-', '.' or '*'.
func ValidKey(s string) bool {
	if s == "" || (!isLCAlpha(s[0]) && s[0] != '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isKeyChar(s[i]) {
			return false
		}
	}
	return true
}

// ValidToken reports whether s is a Token.
func ValidToken(s string) bool {
	if s == "" || (!isAlpha(s[0]) && s[0] != '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// AppendParams appends the serialization of ps to dst.
func AppendParams(dst []byte, ps Params) ([]byte, error) {
	var err error
	for _, p := range ps {
		if !ValidKey(p.Key) {
			return dst, fmt.Errorf("%w: invalid key %q", ErrInvalidValue, p.Key)
		}
		dst = append(dst, ';')
		dst = append(dst, p.Key...)
		if p.Value.IsTrue() {
			continue
		}
		dst = append(dst, '=')
		if dst, err = AppendBareItem(dst, p.Value); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// AppendItem appends the serialization of it to dst.
func AppendItem(dst []byte, it Item) ([]byte, error) {
	dst, err := AppendBareItem(dst, it.Value)
	if err != nil {
		return dst, err
	}
	return AppendParams(dst, it.Params)
}

// AppendInnerList appends the serialization of il to dst.
func AppendInnerList(dst []byte, il InnerList) ([]byte, error) {
	var err error
	dst = append(dst, '(')
	for i, it := range il.Items {
		if i > 0 {
			dst = append(dst, ' ')
		}
		if dst, err = AppendItem(dst, it); err != nil {
			return dst, err
		}
	}
	dst = append(dst, ')')
	return AppendParams(dst, il.Params)
}

// AppendMember appends the serialization of m to dst.
func AppendMember(dst []byte, m Member) ([]byte, error) {
	if m.IsInnerList {
		return AppendInnerList(dst, m.Inner)
	}
	return AppendItem(dst, m.Item)
}

// AppendList appends the serialization of l to dst.
func AppendList(dst []byte, l List) ([]byte, error) {
	var err error
	for i, m := range l {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		if dst, err = AppendMember(dst, m); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// AppendDictionary appends the serialization of d to dst.
func AppendDictionary(dst []byte, d Dictionary) ([]byte, error) {
	var err error
	for i, dm := range d {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		if !ValidKey(dm.Key) {
			return dst, fmt.Errorf("%w: invalid key %q", ErrInvalidValue, dm.Key)
		}
		dst = append(dst, dm.Key...)
		if !dm.Value.IsInnerList && dm.Value.Item.Value.IsTrue() {
			if dst, err = AppendParams(dst, dm.Value.Item.Params); err != nil {
				return dst, err
			}
			continue
		}
		dst = append(dst, '=')
		if dst, err = AppendMember(dst, dm.Value); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// MarshalItem returns the serialization of it.
func MarshalItem(it Item) (string, error) {
	b, err := AppendItem(nil, it)
	return string(b), err
}

// MarshalInnerList returns the serialization of il.
func MarshalInnerList(il InnerList) (string, error) {
	b, err := AppendInnerList(nil, il)
	return string(b), err
}

// MarshalList returns the serialization of l.
func MarshalList(l List) (string, error) {
	b, err := AppendList(nil, l)
	return string(b), err
}

// MarshalDictionary returns the serialization of d.
func MarshalDictionary(d Dictionary) (string, error) {
	b, err := AppendDictionary(nil, d)
	return string(b), err
}
