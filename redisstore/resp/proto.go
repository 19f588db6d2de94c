package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrProtocol reports a reply that is not well-formed RESP2, or that
// exceeds the client's limits (Options.MaxReplyBytes, maxDepth, the line
// length). The connection it came from is discarded.
var ErrProtocol = errors.New("resp: protocol error")

// Error is an error reply from the server, such as
// "WRONGTYPE Operation against a key holding the wrong kind of value" or
// "MOVED 3999 10.0.0.2:6379". Do and Script.Run return it as their error;
// inside an array reply it is an element of type *Error. It never discards
// a connection.
//
// It is a pointer to a struct rather than a named string because Yaegi
// cannot tell a named string type from string in a type assertion, nor
// find a value type behind an error interface; errors.As finds it in
// compiled code, a type assertion err.(*resp.Error) under Yaegi.
type Error struct {
	// Message is the reply after its leading '-', as sent.
	Message string
}

// Error returns the message prefixed with "resp: ".
func (e *Error) Error() string { return "resp: " + e.Message }

// Prefix returns the message's first word, its error code by Redis
// convention: "ERR", "WRONGTYPE", "NOSCRIPT", "MOVED", "ASK", "LOADING",
// "READONLY", "NOAUTH", …
func (e *Error) Prefix() string {
	s := e.Message
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// Reply parsing limits.
const (
	// maxDepth bounds the nesting of arrays in a reply.
	maxDepth = 16
	// readBufSize is the size of a connection's read buffer, and so the
	// longest status, error, integer or length line accepted.
	readBufSize = 16 << 10
	// growStep is the most a bulk string or an array reserves ahead of the
	// bytes actually received: a length announced by the server is never
	// trusted with an allocation of its own.
	growStep = 64 << 10
	// elemCost is what each array element counts against the reply budget
	// (the size of an interface value), besides its own bytes.
	elemCost = 16
)

// reader parses RESP2 replies.
type reader struct {
	br *bufio.Reader
	// budget is what the rest of the current reply may still take: bulk
	// bytes, plus elemCost per array element.
	budget int64
}

// read parses one reply (see Client.Do for the Go types). An error reply is
// returned as a value of type *Error, not as an error: the error result is
// for I/O errors and ErrProtocol only, after which the stream is unusable.
func (r *reader) read(limit int64) (any, error) {
	r.budget = limit
	return r.value(0)
}

func (r *reader) value(depth int) (any, error) {
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	switch line[0] {
	case '+':
		return string(line[1:]), nil
	case '-':
		return &Error{Message: string(line[1:])}, nil
	case ':':
		n, ok := parseInt(line[1:])
		if !ok {
			return nil, fmt.Errorf("%w: integer %q", ErrProtocol, line[1:])
		}
		return n, nil
	case '$':
		n, err := r.length(line)
		if err != nil || n < 0 {
			return nil, err
		}
		return r.bulk(n)
	case '*':
		n, err := r.length(line)
		if err != nil || n < 0 {
			return nil, err
		}
		if depth >= maxDepth {
			return nil, fmt.Errorf("%w: arrays nested deeper than %d", ErrProtocol, maxDepth)
		}
		if n > r.budget/elemCost {
			return nil, fmt.Errorf("%w: array of %d elements exceeds the reply limit", ErrProtocol, n)
		}
		r.budget -= n * elemCost
		c := n
		if c > growStep/elemCost {
			c = growStep / elemCost
		}
		a := make([]any, 0, c)
		for i := int64(0); i < n; i++ {
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: unknown reply type %q", ErrProtocol, line[0])
}

// line returns the next line without its CRLF, never empty. It is only
// valid until the next read.
func (r *reader) line() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, r.br.Size())
		}
		return nil, unexpectedEOF(err)
	}
	if len(b) < 3 || b[len(b)-2] != '\r' {
		return nil, fmt.Errorf("%w: malformed line %q", ErrProtocol, b)
	}
	return b[:len(b)-2], nil
}

// length parses the length of a bulk string or array: -1 (null) or a
// non-negative count.
func (r *reader) length(line []byte) (int64, error) {
	n, ok := parseInt(line[1:])
	if !ok || n < -1 {
		return 0, fmt.Errorf("%w: length %q", ErrProtocol, line[1:])
	}
	return n, nil
}

// bulk reads a bulk string of n bytes and its CRLF. Memory is taken as
// the bytes arrive, never on the strength of the announced length: a
// string up to growStep is read into one buffer of its size; a longer one
// into buffers of growStep, allocated one by one as they fill, then joined
// once every byte is in (twice its size in all).
func (r *reader) bulk(n int64) (string, error) {
	if n > r.budget {
		return "", fmt.Errorf("%w: bulk string of %d bytes exceeds the reply limit", ErrProtocol, n)
	}
	r.budget -= n
	var sb strings.Builder
	if n <= growStep {
		sb.Grow(int(n))
		if err := r.copyN(&sb, n); err != nil {
			return "", err
		}
	} else {
		var chunks [][]byte
		for rem := n; rem > 0; {
			k := rem
			if k > growStep {
				k = growStep
			}
			chunk := make([]byte, k)
			if _, err := io.ReadFull(r.br, chunk); err != nil {
				return "", unexpectedEOF(err)
			}
			chunks = append(chunks, chunk)
			rem -= k
		}
		sb.Grow(int(n))
		for _, c := range chunks {
			sb.Write(c)
		}
	}
	crlf, err := r.br.Peek(2)
	if err != nil {
		return "", unexpectedEOF(err)
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return "", fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
	}
	_, _ = r.br.Discard(2)
	return sb.String(), nil
}

// copyN copies the next n bytes of the reply to sb, whose room is
// reserved.
func (r *reader) copyN(sb *strings.Builder, n int64) error {
	size := int64(r.br.Size())
	for rem := n; rem > 0; {
		k := rem
		if k > size {
			k = size
		}
		p, err := r.br.Peek(int(k))
		if err != nil {
			return unexpectedEOF(err)
		}
		sb.Write(p)
		_, _ = r.br.Discard(len(p))
		rem -= k
	}
	return nil
}

// unexpectedEOF turns an EOF in the middle of a reply into
// io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseInt parses a decimal int64 with an optional '-' sign, nothing else
// (no '+', spaces or leading zeros are checked: Redis never sends them but
// they parse as their value).
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// appendCommand appends args as a RESP2 array of bulk strings. It leaves
// the assembly to strings.Join: under Yaegi every interpreted append costs
// more than the copy.
func appendCommand(b []byte, args []any) ([]byte, error) {
	parts := make([]string, 0, 2*len(args)+2)
	parts = append(parts, "*"+strconv.Itoa(len(args)))
	for i, a := range args {
		s, ok := argText(a)
		if !ok {
			return nil, fmt.Errorf("resp: argument %d: %w %T", i, errArgType, a)
		}
		parts = append(parts, "$"+strconv.Itoa(len(s)), s)
	}
	parts = append(parts, "")
	return append(b, strings.Join(parts, "\r\n")...), nil
}

// errArgType reports an argument of a type Do does not send.
var errArgType = errors.New("unsupported type")

// argText returns the bytes an argument is sent as, the common types
// first.
func argText(a any) (string, bool) {
	if s, ok := a.(string); ok {
		return s, true
	}
	if n, ok := a.(int64); ok {
		return strconv.FormatInt(n, 10), true
	}
	switch v := a.(type) {
	case []byte:
		return string(v), true
	case *string:
		return *v, true
	case *int64:
		return strconv.FormatInt(*v, 10), true
	case *uint64:
		return strconv.FormatUint(*v, 10), true
	case int:
		return strconv.Itoa(v), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	}
	return "", false
}
