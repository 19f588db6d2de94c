package sfv

import (
	"encoding/base64"
	"fmt"
)

// maxInputLen bounds what the parser accepts. Header sections are bounded
// long before this; the limit keeps a caller that passes unbounded input
// from doing unbounded work.
const maxInputLen = 1 << 20

// ParseItem parses an Item structured field (RFC 8941 Section 4.2 with
// field_type "item").
func ParseItem(s string) (Item, error) {
	p, err := newParser(s)
	if err != nil {
		return Item{}, err
	}
	it, err := p.item()
	if err != nil {
		return Item{}, err
	}
	return it, p.end()
}

// ParseList parses a List structured field. The field lines of a field
// given several times are combined with commas before parsing.
func ParseList(s string) (List, error) {
	p, err := newParser(s)
	if err != nil {
		return nil, err
	}
	l, err := p.list()
	if err != nil {
		return nil, err
	}
	return l, p.end()
}

// ParseDictionary parses a Dictionary structured field. A key given twice
// keeps its first position and takes its last value.
func ParseDictionary(s string) (Dictionary, error) {
	return parseDictionary(s, false)
}

// ParseDictionaryUniqueKeys parses a Dictionary like ParseDictionary but
// fails with ErrDuplicateKey when a key is given twice, as fields whose
// keys label distinct things (RFC 9421 signature labels) require.
func ParseDictionaryUniqueKeys(s string) (Dictionary, error) {
	return parseDictionary(s, true)
}

func parseDictionary(s string, unique bool) (Dictionary, error) {
	p, err := newParser(s)
	if err != nil {
		return nil, err
	}
	d, err := p.dictionary(unique)
	if err != nil {
		return nil, err
	}
	return d, p.end()
}

// ParseInnerList parses a lone Inner List with its parameters, such as the
// value of an RFC 9421 @signature-params line.
func ParseInnerList(s string) (InnerList, error) {
	p, err := newParser(s)
	if err != nil {
		return InnerList{}, err
	}
	if p.eof() || p.peek() != '(' {
		return InnerList{}, syntaxErr(p.off, "expected '('")
	}
	il, err := p.innerList()
	if err != nil {
		return InnerList{}, err
	}
	return il, p.end()
}

type parser struct {
	s   string
	off int
}

func newParser(s string) (*parser, error) {
	if len(s) > maxInputLen {
		return nil, fmt.Errorf("%w: input longer than %d bytes", ErrSyntax, maxInputLen)
	}
	p := &parser{s: s}
	p.skipSP()
	return p, nil
}

func (p *parser) eof() bool  { return p.off >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.off] }

func (p *parser) skipSP() {
	for p.off < len(p.s) && p.s[p.off] == ' ' {
		p.off++
	}
}

func (p *parser) skipOWS() {
	for p.off < len(p.s) && (p.s[p.off] == ' ' || p.s[p.off] == '\t') {
		p.off++
	}
}

func (p *parser) end() error {
	p.skipSP()
	if !p.eof() {
		return syntaxErr(p.off, "unexpected trailing characters")
	}
	return nil
}

func (p *parser) list() (List, error) {
	var l List
	for !p.eof() {
		m, err := p.member()
		if err != nil {
			return nil, err
		}
		l = append(l, m)
		p.skipOWS()
		if p.eof() {
			return l, nil
		}
		if p.peek() != ',' {
			return nil, syntaxErr(p.off, "expected ',' after list member")
		}
		p.off++
		p.skipOWS()
		if p.eof() {
			return nil, syntaxErr(p.off, "trailing ',' in list")
		}
	}
	return l, nil
}

func (p *parser) dictionary(unique bool) (Dictionary, error) {
	var d Dictionary
	var index map[string]int
	for !p.eof() {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var m Member
		if !p.eof() && p.peek() == '=' {
			p.off++
			if m, err = p.member(); err != nil {
				return nil, err
			}
		} else {
			params, err := p.params()
			if err != nil {
				return nil, err
			}
			m = Member{Item: Item{Value: Boolean(true), Params: params}}
		}
		if index == nil {
			index = map[string]int{}
		}
		if i, dup := index[key]; dup {
			if unique {
				return nil, fmt.Errorf("%w: %q", ErrDuplicateKey, key)
			}
			d[i].Value = m
		} else {
			index[key] = len(d)
			d = append(d, DictMember{Key: key, Value: m})
		}
		p.skipOWS()
		if p.eof() {
			return d, nil
		}
		if p.peek() != ',' {
			return nil, syntaxErr(p.off, "expected ',' after dictionary member")
		}
		p.off++
		p.skipOWS()
		if p.eof() {
			return nil, syntaxErr(p.off, "trailing ',' in dictionary")
		}
	}
	return d, nil
}

func (p *parser) member() (Member, error) {
	if !p.eof() && p.peek() == '(' {
		il, err := p.innerList()
		if err != nil {
			return Member{}, err
		}
		return Member{IsInnerList: true, Inner: il}, nil
	}
	it, err := p.item()
	if err != nil {
		return Member{}, err
	}
	return Member{Item: it}, nil
}

func (p *parser) innerList() (InnerList, error) {
	p.off++ // '('
	var il InnerList
	for !p.eof() {
		p.skipSP()
		if p.eof() {
			break
		}
		if p.peek() == ')' {
			p.off++
			params, err := p.params()
			if err != nil {
				return InnerList{}, err
			}
			il.Params = params
			return il, nil
		}
		it, err := p.item()
		if err != nil {
			return InnerList{}, err
		}
		il.Items = append(il.Items, it)
		if p.eof() {
			break
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return InnerList{}, syntaxErr(p.off, "expected ' ' or ')' in inner list")
		}
	}
	return InnerList{}, syntaxErr(p.off, "unterminated inner list")
}

func (p *parser) item() (Item, error) {
	v, err := p.bareItem()
	if err != nil {
		return Item{}, err
	}
	params, err := p.params()
	if err != nil {
		return Item{}, err
	}
	return Item{Value: v, Params: params}, nil
}

func (p *parser) params() (Params, error) {
	var ps Params
	var index map[string]int
	for !p.eof() && p.peek() == ';' {
		p.off++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		v := Boolean(true)
		if !p.eof() && p.peek() == '=' {
			p.off++
			if v, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		if i, dup := index[key]; dup {
			ps[i].Value = v
			continue
		}
		if index == nil {
			index = map[string]int{}
		}
		index[key] = len(ps)
		ps = append(ps, Param{Key: key, Value: v})
	}
	return ps, nil
}

func (p *parser) key() (string, error) {
	if p.eof() {
		return "", syntaxErr(p.off, "expected a key")
	}
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", syntaxErr(p.off, "a key starts with a lowercase letter or '*'")
	}
	start := p.off
	for p.off < len(p.s) && isKeyChar(p.s[p.off]) {
		p.off++
	}
	return p.s[start:p.off], nil
}

func (p *parser) bareItem() (BareItem, error) {
	if p.eof() {
		return BareItem{}, syntaxErr(p.off, "expected a bare item")
	}
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == ':':
		return p.byteSequence()
	case c == '?':
		return p.boolean()
	case isAlpha(c) || c == '*':
		return p.token(), nil
	}
	return BareItem{}, syntaxErr(p.off, "unexpected character")
}

func (p *parser) number() (BareItem, error) {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.off++
	}
	if p.eof() || !isDigit(p.peek()) {
		return BareItem{}, syntaxErr(p.off, "expected a digit")
	}
	var intPart, frac int64
	intDigits, fracDigits := 0, 0
	decimal := false
	for !p.eof() {
		c := p.peek()
		if isDigit(c) {
			if decimal {
				fracDigits++
				if fracDigits > 3 {
					return BareItem{}, syntaxErr(p.off, "more than 3 fractional digits")
				}
				frac = frac*10 + int64(c-'0')
			} else {
				intDigits++
				if intDigits > 15 {
					return BareItem{}, syntaxErr(p.off, "integer longer than 15 digits")
				}
				intPart = intPart*10 + int64(c-'0')
			}
			p.off++
			continue
		}
		if c == '.' && !decimal {
			if intDigits > 12 {
				return BareItem{}, syntaxErr(p.off, "decimal with more than 12 integer digits")
			}
			decimal = true
			p.off++
			continue
		}
		break
	}
	if !decimal {
		if neg {
			intPart = -intPart
		}
		return Integer(intPart), nil
	}
	if fracDigits == 0 {
		return BareItem{}, syntaxErr(p.off, "decimal ends with '.'")
	}
	for i := fracDigits; i < 3; i++ {
		frac *= 10
	}
	milli := intPart*1000 + frac
	if neg {
		milli = -milli
	}
	return DecimalMilli(milli), nil
}

func (p *parser) str() (BareItem, error) {
	p.off++ // '"'
	start := p.off
	// Fast path: no escapes.
	for p.off < len(p.s) {
		c := p.s[p.off]
		if c == '"' {
			s := p.s[start:p.off]
			p.off++
			return String(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 || c > 0x7e {
			return BareItem{}, syntaxErr(p.off, "invalid character in string")
		}
		p.off++
	}
	buf := []byte(p.s[start:p.off])
	for p.off < len(p.s) {
		c := p.s[p.off]
		p.off++
		switch {
		case c == '\\':
			if p.eof() {
				return BareItem{}, syntaxErr(p.off, "unterminated escape")
			}
			n := p.s[p.off]
			if n != '"' && n != '\\' {
				return BareItem{}, syntaxErr(p.off, "invalid escape")
			}
			buf = append(buf, n)
			p.off++
		case c == '"':
			return String(string(buf)), nil
		case c < 0x20 || c > 0x7e:
			return BareItem{}, syntaxErr(p.off-1, "invalid character in string")
		default:
			buf = append(buf, c)
		}
	}
	return BareItem{}, syntaxErr(p.off, "unterminated string")
}

func (p *parser) token() BareItem {
	start := p.off
	p.off++
	for p.off < len(p.s) && isTokenChar(p.s[p.off]) {
		p.off++
	}
	return Token(p.s[start:p.off])
}

func (p *parser) byteSequence() (BareItem, error) {
	p.off++ // ':'
	start := p.off
	for p.off < len(p.s) && p.s[p.off] != ':' {
		if !isBase64Char(p.s[p.off]) {
			return BareItem{}, syntaxErr(p.off, "invalid character in byte sequence")
		}
		p.off++
	}
	if p.eof() {
		return BareItem{}, syntaxErr(p.off, "unterminated byte sequence")
	}
	enc := p.s[start:p.off]
	p.off++
	b, err := decodeBase64(enc)
	if err != nil {
		return BareItem{}, syntaxErr(start, "invalid base64 in byte sequence")
	}
	return ByteSequence(b), nil
}

// decodeBase64 decodes standard base64, with or without '=' padding, as
// RFC 8941 Section 4.2.7 asks parsers to accept.
func decodeBase64(s string) ([]byte, error) {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	if len(s)-n > 2 {
		return nil, base64.CorruptInputError(n)
	}
	for i := 0; i < n; i++ {
		if s[i] == '=' {
			return nil, base64.CorruptInputError(i)
		}
	}
	if len(s) != n && len(s)%4 != 0 {
		return nil, base64.CorruptInputError(len(s))
	}
	return base64.RawStdEncoding.DecodeString(s[:n])
}

func (p *parser) boolean() (BareItem, error) {
	p.off++ // '?'
	if p.eof() {
		return BareItem{}, syntaxErr(p.off, "expected '0' or '1'")
	}
	switch p.peek() {
	case '1':
		p.off++
		return Boolean(true), nil
	case '0':
		p.off++
		return Boolean(false), nil
	}
	return BareItem{}, syntaxErr(p.off, "expected '0' or '1'")
}

func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool   { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isKeyChar(c byte) bool {
	return isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'
}

// isTokenChar reports tchar / ":" / "/" (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~', ':', '/':
		return true
	}
	return false
}

func isBase64Char(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='
}
