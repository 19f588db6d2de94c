package sfv

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrSyntax reports input that is not a structured field of the
	// expected type.
	ErrSyntax = errors.New("sfv: syntax error")
	// ErrDuplicateKey reports a Dictionary key given twice where the caller
	// asked for unique keys.
	ErrDuplicateKey = errors.New("sfv: duplicate dictionary key")
	// ErrInvalidValue reports a value that has no serialization (an
	// out-of-range number, a string with a control character, a bad key
	// or token).
	ErrInvalidValue = errors.New("sfv: value cannot be serialized")
)

// Type is the type of a bare item.
type Type uint8

// Bare item types.
const (
	TypeInvalid Type = iota
	TypeInteger
	TypeDecimal
	TypeString
	TypeToken
	TypeByteSequence
	TypeBoolean
)

func (t Type) String() string {
	switch t {
	case TypeInteger:
		return "integer"
	case TypeDecimal:
		return "decimal"
	case TypeString:
		return "string"
	case TypeToken:
		return "token"
	case TypeByteSequence:
		return "byte sequence"
	case TypeBoolean:
		return "boolean"
	}
	return "invalid"
}

// Ranges of numbers (RFC 8941 Sections 3.3.1 and 3.3.2).
const (
	MaxInteger = 999_999_999_999_999
	MinInteger = -MaxInteger
	// MaxDecimalMilli is the largest Decimal, in thousandths.
	MaxDecimalMilli = 999_999_999_999_999
)

// BareItem is one value without parameters.
type BareItem struct {
	// Type says which of the fields below holds the value.
	Type Type
	// Int is an Integer, or a Decimal counted in thousandths.
	Int int64
	// Str is a String or a Token.
	Str string
	// Bytes is a Byte Sequence.
	Bytes []byte
	// Bool is a Boolean.
	Bool bool
}

// Integer returns an Integer bare item.
func Integer(n int64) BareItem { return BareItem{Type: TypeInteger, Int: n} }

// DecimalMilli returns a Decimal bare item of milli thousandths
// (DecimalMilli(1500) is 1.5).
func DecimalMilli(milli int64) BareItem { return BareItem{Type: TypeDecimal, Int: milli} }

// String returns a String bare item.
func String(s string) BareItem { return BareItem{Type: TypeString, Str: s} }

// Token returns a Token bare item.
func Token(s string) BareItem { return BareItem{Type: TypeToken, Str: s} }

// ByteSequence returns a Byte Sequence bare item.
func ByteSequence(b []byte) BareItem { return BareItem{Type: TypeByteSequence, Bytes: b} }

// Boolean returns a Boolean bare item.
func Boolean(b bool) BareItem { return BareItem{Type: TypeBoolean, Bool: b} }

// IsTrue reports whether v is the Boolean true, the value of a bare
// parameter or dictionary key.
func (v BareItem) IsTrue() bool { return v.Type == TypeBoolean && v.Bool }

// Param is one parameter.
type Param struct {
	Key   string
	Value BareItem
}

// Params are the ordered parameters of an Item or Inner List. Parsing
// keeps the first position of a key given twice and its last value, as
// RFC 8941 requires.
type Params []Param

// Get returns the value of key.
func (ps Params) Get(key string) (BareItem, bool) {
	for i := range ps {
		if ps[i].Key == key {
			return ps[i].Value, true
		}
	}
	return BareItem{}, false
}

// Item is a bare item with parameters.
type Item struct {
	Value  BareItem
	Params Params
}

// InnerList is a parenthesised list of Items with parameters.
type InnerList struct {
	Items  []Item
	Params Params
}

// Member is a List member or Dictionary value: an Item or an Inner List.
type Member struct {
	// IsInnerList selects Inner over Item.
	IsInnerList bool
	Item        Item
	Inner       InnerList
}

// ItemMember returns a Member holding it.
func ItemMember(it Item) Member { return Member{Item: it} }

// InnerListMember returns a Member holding il.
func InnerListMember(il InnerList) Member { return Member{IsInnerList: true, Inner: il} }

// Params returns the member's parameters.
func (m Member) Params() Params {
	if m.IsInnerList {
		return m.Inner.Params
	}
	return m.Item.Params
}

// List is a List structured field.
type List []Member

// DictMember is one key and value of a Dictionary.
type DictMember struct {
	Key   string
	Value Member
}

// Dictionary is an ordered Dictionary structured field.
type Dictionary []DictMember

// Get returns the value of key.
func (d Dictionary) Get(key string) (Member, bool) {
	for i := range d {
		if d[i].Key == key {
			return d[i].Value, true
		}
	}
	return Member{}, false
}

func syntaxErr(off int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, msg, off)
}
