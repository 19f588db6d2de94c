package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"

	"github.com/replayguard/replayguard/signature/internal/sfv"
)

// ErrSignatureBase reports covered components from which no RFC 9421
// signature base can be built: an unknown derived component or parameter,
// a field or query parameter absent from the message, a duplicate
// component, a value with a newline or a non-ASCII byte. Errors from
// SignatureBase wrap it.
var ErrSignatureBase = errors.New("signature: rfc9421: cannot build the signature base")

// HTTPMessage is a message as RFC 9421 derives component values from it.
type HTTPMessage struct {
	// Method is the request method, case preserved.
	Method string
	// Scheme is the target URI's scheme, "http" or "https".
	Scheme string
	// Authority is the Host header (the :authority) as received.
	Authority string
	// Target is the request-target as sent: path and raw query in origin
	// form, or "*".
	Target string
	// Status is the status code of a response; zero for a request.
	Status int
	// Header holds the header fields.
	Header http.Header
}

// MessageFromRequest returns the HTTPMessage of a verified request.
func MessageFromRequest(r *signature.Request) *HTTPMessage {
	return &HTTPMessage{Method: r.Method, Scheme: r.Scheme, Authority: r.Host, Target: r.Target, Header: r.Header}
}

// FieldType is the structured-field type of an HTTP field, needed to
// serialize it strictly for the ";sf" and ";key" component parameters.
type FieldType uint8

// Structured field types.
const (
	FieldItem FieldType = iota + 1
	FieldList
	FieldDictionary
)

// DefaultFieldTypes returns the structured fields whose type is known
// without configuration.
func DefaultFieldTypes() map[string]FieldType { return defaultFieldTypes }

var defaultFieldTypes = map[string]FieldType{
	"accept-signature":    FieldDictionary,
	"cache-status":        FieldList,
	"cdn-cache-control":   FieldDictionary,
	"client-cert":         FieldItem,
	"client-cert-chain":   FieldList,
	"content-digest":      FieldDictionary,
	"idempotency-key":     FieldItem,
	"priority":            FieldDictionary,
	"proxy-status":        FieldList,
	"repr-digest":         FieldDictionary,
	"signature":           FieldDictionary,
	"signature-input":     FieldDictionary,
	"want-content-digest": FieldDictionary,
	"want-repr-digest":    FieldDictionary,
}

// Component is one covered component identifier: a component name (a
// lowercase field name, or a derived component starting with "@") and its
// parameters.
type Component struct {
	Name   string
	Params sfv.Params
}

// ParseComponent parses a component identifier as written in
// configuration: a bare name ("@method", "Content-Digest", lowercased) or
// a serialized identifier with parameters (`"@query-param";name="id"`).
func ParseComponent(s string) (Component, error) {
	if !strings.HasPrefix(s, `"`) {
		if s == "" || strings.ContainsAny(s, " \t\";") {
			return Component{}, fmt.Errorf("%w: invalid component name %q", ErrSignatureBase, s)
		}
		return Component{Name: strings.ToLower(s)}, nil
	}
	it, err := sfv.ParseItem(s)
	if err != nil {
		return Component{}, fmt.Errorf("%w: component %q: %w", ErrSignatureBase, s, err)
	}
	return componentFromItem(it)
}

func componentFromItem(it sfv.Item) (Component, error) {
	if it.Value.Type != sfv.TypeString {
		return Component{}, fmt.Errorf("%w: a component identifier is a string, got a %s", ErrSignatureBase, it.Value.Type)
	}
	c := Component{Name: it.Value.Str, Params: it.Params}
	if c.Name == "" || c.Name != strings.ToLower(c.Name) {
		return Component{}, fmt.Errorf("%w: component name %q is not lowercase", ErrSignatureBase, c.Name)
	}
	return c, nil
}

// Item returns c as a structured-field Item.
func (c Component) Item() sfv.Item {
	return sfv.Item{Value: sfv.String(c.Name), Params: c.Params}
}

// String returns the serialized component identifier.
func (c Component) String() string {
	s, err := sfv.MarshalItem(c.Item())
	if err != nil {
		return strconv.Quote(c.Name)
	}
	return s
}

// equal reports whether a and b identify the same component: the same
// name and the same parameters in any order.
func (c Component) equal(o Component) bool {
	if c.Name != o.Name || len(c.Params) != len(o.Params) {
		return false
	}
	for _, p := range c.Params {
		v, ok := o.Params.Get(p.Key)
		if !ok || !sameBareItem(p.Value, v) {
			return false
		}
	}
	return true
}

func sameBareItem(a, b sfv.BareItem) bool {
	if a.Type != b.Type || a.Int != b.Int || a.Str != b.Str || a.Bool != b.Bool || len(a.Bytes) != len(b.Bytes) {
		return false
	}
	for i := range a.Bytes {
		if a.Bytes[i] != b.Bytes[i] {
			return false
		}
	}
	return true
}

// componentFlags are the parameters a component identifier may carry.
type componentFlags struct {
	sf, bs    bool
	key, name string
	hasKey    bool
	hasName   bool
}

func parseFlags(c Component) (componentFlags, error) {
	var f componentFlags
	for _, p := range c.Params {
		switch p.Key {
		case "sf", "bs":
			if !p.Value.IsTrue() {
				return f, fmt.Errorf("%w: %s: parameter %q must be a true boolean", ErrSignatureBase, c, p.Key)
			}
			if p.Key == "sf" {
				f.sf = true
			} else {
				f.bs = true
			}
		case "key", "name":
			if p.Value.Type != sfv.TypeString {
				return f, fmt.Errorf("%w: %s: parameter %q must be a string", ErrSignatureBase, c, p.Key)
			}
			if p.Key == "key" {
				f.key, f.hasKey = p.Value.Str, true
			} else {
				f.name, f.hasName = p.Value.Str, true
			}
		case "req", "tr":
			return f, fmt.Errorf("%w: %s: parameter %q is not supported", ErrSignatureBase, c, p.Key)
		default:
			return f, fmt.Errorf("%w: %s: unknown parameter %q", ErrSignatureBase, c, p.Key)
		}
	}
	derived := strings.HasPrefix(c.Name, "@")
	switch {
	case derived && (f.sf || f.bs || f.hasKey):
		return f, fmt.Errorf("%w: %s: field parameters on a derived component", ErrSignatureBase, c)
	case c.Name == "@query-param" && !f.hasName:
		return f, fmt.Errorf("%w: %s: @query-param needs a name parameter", ErrSignatureBase, c)
	case c.Name != "@query-param" && f.hasName:
		return f, fmt.Errorf("%w: %s: the name parameter applies to @query-param only", ErrSignatureBase, c)
	case f.bs && (f.sf || f.hasKey):
		return f, fmt.Errorf("%w: %s: bs cannot be combined with sf or key", ErrSignatureBase, c)
	}
	return f, nil
}

// SignatureBase returns the RFC 9421 signature base (Section 2.5) of m for
// the covered components and signature parameters in params, an Inner List
// of component identifiers whose own parameters are the signature's
// (created, keyid, …). fieldTypes names the structured fields that ";sf"
// may cover besides DefaultFieldTypes(); it may be nil.
func SignatureBase(m *HTTPMessage, params sfv.InnerList, fieldTypes map[string]FieldType) ([]byte, error) {
	return appendSignatureBase(nil, m, params, fieldTypes)
}

func appendSignatureBase(dst []byte, m *HTTPMessage, params sfv.InnerList, fieldTypes map[string]FieldType) ([]byte, error) {
	comps := make([]Component, 0, len(params.Items))
	var err error
	for _, it := range params.Items {
		c, err := componentFromItem(it)
		if err != nil {
			return nil, err
		}
		for _, prev := range comps {
			if prev.equal(c) {
				return nil, fmt.Errorf("%w: component %s covered twice", ErrSignatureBase, c)
			}
		}
		comps = append(comps, c)
		if dst, err = sfv.AppendItem(dst, it); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSignatureBase, err)
		}
		dst = append(dst, ':', ' ')
		if dst, err = appendComponentValue(dst, m, c, fieldTypes); err != nil {
			return nil, err
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, `"@signature-params": `...)
	if dst, err = sfv.AppendInnerList(dst, params); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignatureBase, err)
	}
	for _, c := range dst {
		if c >= 0x80 {
			return nil, fmt.Errorf("%w: non-ASCII byte", ErrSignatureBase)
		}
	}
	return dst, nil
}

func appendComponentValue(dst []byte, m *HTTPMessage, c Component, fieldTypes map[string]FieldType) ([]byte, error) {
	f, err := parseFlags(c)
	if err != nil {
		return nil, err
	}
	start := len(dst)
	if strings.HasPrefix(c.Name, "@") {
		dst, err = appendDerived(dst, m, c, f)
	} else {
		dst, err = appendField(dst, m.Header, c, f, fieldTypes)
	}
	if err != nil {
		return nil, err
	}
	for _, b := range dst[start:] {
		if b == '\n' || b == '\r' {
			return nil, fmt.Errorf("%w: %s: value contains a newline", ErrSignatureBase, c)
		}
	}
	return dst, nil
}

func appendDerived(dst []byte, m *HTTPMessage, c Component, f componentFlags) ([]byte, error) {
	if c.Name == "@status" {
		if m.Status == 0 {
			return nil, fmt.Errorf("%w: @status in a request", ErrSignatureBase)
		}
		return strconv.AppendInt(dst, int64(m.Status), 10), nil
	}
	if m.Status != 0 {
		return nil, fmt.Errorf("%w: %s in a response", ErrSignatureBase, c)
	}
	path, query, hasQuery := strings.Cut(m.Target, "?")
	switch c.Name {
	case "@method":
		return append(dst, m.Method...), nil
	case "@target-uri":
		dst = appendLowerASCII(dst, m.Scheme)
		dst = append(dst, ':', '/', '/')
		dst = append(dst, normalizeAuthority(m.Scheme, m.Authority)...)
		if m.Target == "*" {
			return dst, nil
		}
		return append(dst, m.Target...), nil
	case "@authority":
		return append(dst, normalizeAuthority(m.Scheme, m.Authority)...), nil
	case "@scheme":
		return appendLowerASCII(dst, m.Scheme), nil
	case "@request-target":
		return append(dst, m.Target...), nil
	case "@path":
		if path == "" {
			path = "/"
		}
		return append(dst, path...), nil
	case "@query":
		dst = append(dst, '?')
		if hasQuery {
			dst = append(dst, query...)
		}
		return dst, nil
	case "@query-param":
		v, err := queryParam(query, f.name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSignatureBase, c, err)
		}
		return append(dst, v...), nil
	}
	return nil, fmt.Errorf("%w: unknown derived component %q", ErrSignatureBase, c.Name)
}

// normalizeAuthority lowercases the host and drops the scheme's default
// port (RFC 9110 Section 4.2.3).
func normalizeAuthority(scheme, authority string) string {
	a := strings.ToLower(authority)
	s := strings.ToLower(scheme)
	switch {
	case s == "http" && strings.HasSuffix(a, ":80"):
		a = a[:len(a)-3]
	case s == "https" && strings.HasSuffix(a, ":443"):
		a = a[:len(a)-4]
	}
	return a
}

// queryParam returns the encoded value of the only query parameter whose
// encoded name is name (RFC 9421 Section 2.2.8).
func queryParam(query, name string) (string, error) {
	found := false
	var value string
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if formReencode(k) != name {
			continue
		}
		if found {
			return "", fmt.Errorf("query parameter %q occurs more than once", name)
		}
		found, value = true, formReencode(v)
	}
	if !found {
		return "", fmt.Errorf("query parameter %q is absent", name)
	}
	return value, nil
}

// formReencode decodes s as application/x-www-form-urlencoded ('+' is a
// space, invalid percent sequences stay as they are) and encodes the bytes
// again with WHATWG's "percent-encode after encoding" for that percent-encode
// set, spaces as %20.
func formReencode(s string) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	emit := func(c byte) {
		if isAlnum(c) || c == '*' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
			return
		}
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&0xf])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			emit(' ')
		case c == '%' && i+2 < len(s) && sigutil.IsHex(s[i+1]) && sigutil.IsHex(s[i+2]):
			emit(sigutil.Unhex(s[i+1])<<4 | sigutil.Unhex(s[i+2]))
			i += 2
		default:
			emit(c)
		}
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func appendField(dst []byte, h http.Header, c Component, f componentFlags, fieldTypes map[string]FieldType) ([]byte, error) {
	lines, ok := h[textproto.CanonicalMIMEHeaderKey(c.Name)]
	if !ok {
		lines, ok = headerValuesFold(h, c.Name)
	}
	if !ok {
		return nil, fmt.Errorf("%w: field %q is absent", ErrSignatureBase, c.Name)
	}
	if f.bs {
		var err error
		for i, l := range lines {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			if dst, err = sfv.AppendBareItem(dst, sfv.ByteSequence([]byte(trimOWS(l)))); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSignatureBase, err)
			}
		}
		return dst, nil
	}
	if !f.sf && !f.hasKey {
		for i, l := range lines {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			dst = append(dst, trimOWS(l)...)
		}
		return dst, nil
	}
	combined := strings.Join(lines, ",")
	typ, known := fieldTypes[c.Name]
	if !known {
		typ, known = defaultFieldTypes[c.Name]
	}
	if f.hasKey {
		if known && typ != FieldDictionary {
			return nil, fmt.Errorf("%w: %s: field is not a dictionary", ErrSignatureBase, c)
		}
		d, err := sfv.ParseDictionary(combined)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSignatureBase, c, err)
		}
		m, ok := d.Get(f.key)
		if !ok {
			return nil, fmt.Errorf("%w: %s: dictionary has no member %q", ErrSignatureBase, c, f.key)
		}
		if dst, err = sfv.AppendMember(dst, m); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSignatureBase, err)
		}
		return dst, nil
	}
	var err error
	switch {
	case !known:
		return nil, fmt.Errorf("%w: %s: structured type of the field is not known", ErrSignatureBase, c)
	case typ == FieldItem:
		var it sfv.Item
		if it, err = sfv.ParseItem(combined); err == nil {
			dst, err = sfv.AppendItem(dst, it)
		}
	case typ == FieldList:
		var l sfv.List
		if l, err = sfv.ParseList(combined); err == nil {
			dst, err = sfv.AppendList(dst, l)
		}
	default:
		var d sfv.Dictionary
		if d, err = sfv.ParseDictionary(combined); err == nil {
			dst, err = sfv.AppendDictionary(dst, d)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSignatureBase, c, err)
	}
	return dst, nil
}

// headerValuesFold finds a field whose map key is not in canonical form
// (headers set directly on the map).
func headerValuesFold(h http.Header, name string) ([]string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// trimOWS strips leading and trailing spaces and tabs.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
