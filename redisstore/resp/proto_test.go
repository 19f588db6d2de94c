package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

func parse(t testing.TB, in string, limit int64) (any, error) {
	t.Helper()
	r := reader{br: bufio.NewReaderSize(strings.NewReader(in), 64)}
	return r.read(limit)
}

func TestReadReplies(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR unknown command\r\n", &Error{Message: "ERR unknown command"}},
		{":0\r\n", int64(0)},
		{":-42\r\n", int64(-42)},
		{":9223372036854775807\r\n", int64(math.MaxInt64)},
		{":-9223372036854775808\r\n", int64(math.MinInt64)},
		{"$0\r\n\r\n", ""},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"*0\r\n", []any{}},
		{"$5\r\nhe\r\no\r\n", "he\r\no"},
		{"$3\r\n\x00\xff\n\r\n", "\x00\xff\n"},
		{"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n-WRONGTYPE x\r\n", []any{"a", []any{int64(1), nil}, &Error{Message: "WRONGTYPE x"}}},
		// Longer than the 64-byte read buffer: read in pieces.
		{"$200\r\n" + strings.Repeat("0123456789", 20) + "\r\n", strings.Repeat("0123456789", 20)},
	} {
		got, err := parse(t, tc.in, DefaultMaxReplyBytes)
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

func TestReadRejects(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		why   string
	}{
		{"", DefaultMaxReplyBytes, "nothing"},
		{"\r\n", DefaultMaxReplyBytes, "empty line"},
		{"+OK\n", DefaultMaxReplyBytes, "LF without CR"},
		{"%1\r\n", DefaultMaxReplyBytes, "RESP3 map"},
		{"_\r\n", DefaultMaxReplyBytes, "RESP3 null"},
		{":12a\r\n", DefaultMaxReplyBytes, "bad integer"},
		{":\r\n", DefaultMaxReplyBytes, "empty integer"},
		{":9223372036854775808\r\n", DefaultMaxReplyBytes, "integer overflow"},
		{":-9223372036854775809\r\n", DefaultMaxReplyBytes, "integer underflow"},
		{":99999999999999999999\r\n", DefaultMaxReplyBytes, "too many digits"},
		{"$-2\r\n", DefaultMaxReplyBytes, "negative length"},
		{"$3\r\nabcd\r\n", DefaultMaxReplyBytes, "bulk without CRLF"},
		{"$3\r\nab", DefaultMaxReplyBytes, "truncated bulk"},
		{"$3\r\nabc", DefaultMaxReplyBytes, "truncated CRLF"},
		{"*2\r\n:1\r\n", DefaultMaxReplyBytes, "truncated array"},
		{"$1000000000\r\n", 1 << 20, "bulk over the limit"},
		{"$9223372036854775807\r\n", DefaultMaxReplyBytes, "absurd bulk"},
		{"*9223372036854775807\r\n", DefaultMaxReplyBytes, "absurd array"},
		{"*100000\r\n", 1 << 20, "array over the limit"},
		{"*2\r\n$600\r\n" + strings.Repeat("x", 600) + "\r\n$600\r\n" + strings.Repeat("x", 600) + "\r\n", 1000, "elements over the limit together"},
		{strings.Repeat("*1\r\n", maxDepth+1) + ":1\r\n", DefaultMaxReplyBytes, "nested too deep"},
		{"+" + strings.Repeat("a", 100) + "\r\n", DefaultMaxReplyBytes, "line longer than the buffer"},
	} {
		_, err := parse(t, tc.in, tc.limit)
		require.Error(t, err, tc.why)
	}
	_, err := parse(t, "$1000000000\r\n", 1<<20)
	require.ErrorIs(t, err, ErrProtocol)
	_, err = parse(t, "$3\r\nab", DefaultMaxReplyBytes)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

// A bulk string announced within the limit reserves memory only as its
// bytes arrive.
func TestAnnouncedLengthIsNotAllocated(t *testing.T) {
	const limit = 1 << 30
	in := "$536870912\r\nabc"
	allocs := testing.AllocsPerRun(10, func() { _, _ = parse(t, in, limit) })
	assert.Less(t, allocs, 20.0)
	var before, after runtimeMem
	before.read()
	_, err := parse(t, in, limit)
	after.read()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, after.total-before.total, uint64(1<<20), "bytes allocated")
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

func TestErrorPrefix(t *testing.T) {
	assert.Equal(t, "WRONGTYPE", (&Error{Message: "WRONGTYPE Operation against a key holding the wrong kind of value"}).Prefix())
	assert.Equal(t, "NOSCRIPT", (&Error{Message: "NOSCRIPT No matching script. Please use EVAL."}).Prefix())
	assert.Equal(t, "LOADING", (&Error{Message: "LOADING"}).Prefix())
	assert.Equal(t, "resp: ERR x", (&Error{Message: "ERR x"}).Error())
}

func TestAppendCommand(t *testing.T) {
	b, err := appendCommand(nil, []any{"set", []byte("k\x00"), 1, int64(-2), int32(3), uint(4), uint64(math.MaxUint64), uint32(6), 1.5, true, false})
	require.NoError(t, err)
	assert.Equal(t, "*11\r\n$3\r\nset\r\n$2\r\nk\x00\r\n$1\r\n1\r\n$2\r\n-2\r\n$1\r\n3\r\n$1\r\n4\r\n$20\r\n18446744073709551615\r\n$1\r\n6\r\n$3\r\n1.5\r\n$1\r\n1\r\n$1\r\n0\r\n", string(b))
	_, err = appendCommand(nil, []any{"get", struct{}{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "resp: argument 1")
}

func TestRedirect(t *testing.T) {
	for _, tc := range []struct {
		e    string
		slot int
		addr string
		ok   bool
	}{
		{"MOVED 3999 127.0.0.1:6381", 3999, "127.0.0.1:6381", true},
		{"ASK 0 10.0.0.2:7000", 0, "10.0.0.2:7000", true},
		{"MOVED 16383 :7001", 16383, "127.0.0.9:7001", true},
		{"MOVED 12 ::1:7002", 12, "[::1]:7002", true},
		{"MOVED 16384 127.0.0.1:1", 0, "", false},
		{"MOVED x 127.0.0.1:1", 0, "", false},
		{"MOVED 1 127.0.0.1", 0, "", false},
		{"MOVED 1", 0, "", false},
	} {
		slot, addr, ok := redirect(&Error{Message: tc.e}, "127.0.0.9:6379")
		assert.Equal(t, tc.ok, ok, tc.e)
		if tc.ok {
			assert.Equal(t, tc.slot, slot, tc.e)
			assert.Equal(t, tc.addr, addr, tc.e)
		}
	}
}

func TestSlotMatchesRedis(t *testing.T) {
	// CLUSTER KEYSLOT values from the Redis Cluster specification.
	assert.Equal(t, 12739, Slot("123456789"))
	assert.Equal(t, Slot("bar"), Slot("foo{bar}baz"))
	for _, k := range []string{"", "a", "{", "{}", "{}x", "x{y", "rg:n:{5effe687cb0e8dc397a194f809c3331d}", "a{b}{c}"} {
		assert.Equal(t, redistest.Slot(k), Slot(k), "%q", k)
	}
}

func TestCommandKey(t *testing.T) {
	for _, tc := range []struct {
		args []any
		key  string
		ok   bool
	}{
		{[]any{"ping"}, "", false},
		{[]any{"get", "k"}, "k", true},
		{[]any{"SET", []byte("k"), "v"}, "k", true},
		{[]any{"EVALSHA", "sha", 1, "k", "a"}, "k", true},
		{[]any{"eval", "return 1", 0}, "", false},
		{[]any{"incr", 7}, "", false},
	} {
		key, ok := commandKey(tc.args)
		assert.Equal(t, tc.ok, ok, "%v", tc.args)
		assert.Equal(t, tc.key, key, "%v", tc.args)
	}
}

// writeReply encodes v as the server would.
func writeReply(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("$-1\r\n")
	case string:
		fmt.Fprintf(b, "$%d\r\n%s\r\n", len(v), v)
	case *Error:
		fmt.Fprintf(b, "-%s\r\n", v.Message)
	case int64:
		b.WriteString(":" + strconv.FormatInt(v, 10) + "\r\n")
	case []any:
		fmt.Fprintf(b, "*%d\r\n", len(v))
		for _, e := range v {
			writeReply(b, e)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:-3\r\n", "$1000000000\r\n", "*99999999\r\n", "*1\r\n*1\r\n*1\r\n+x\r\n",
		"$4\r\na\r\nb\r\n", ":-9223372036854775808\r\n", "*3\r\n$0\r\n\r\n-MOVED 1 :1\r\n$-1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		r := reader{br: bufio.NewReaderSize(bytes.NewReader(in), 64)}
		v, err := r.read(limit)
		if err != nil {
			return
		}
		// What parsed re-encodes to a reply that parses to the same value.
		var b bytes.Buffer
		writeReply(&b, v)
		again, err := parse(t, b.String(), limit*8)
		require.NoError(t, err)
		require.Equal(t, v, again)
	})
}
