package postgres

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/postgres/pgtest"
)

func TestPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Start(t))
	require.NoError(t, err)
	defer pool.Close()
	table := "rg_explain_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_")
	s, err := New(ctx, pool, WithTable(table), WithJanitorInterval(0))
	require.NoError(t, err)
	defer s.Close()
	defer func() { _, _ = pool.Exec(context.Background(), "DROP TABLE "+table) }()

	// 5000 records, 1% of them expired, then fresh statistics.
	_, err = pool.Exec(ctx, `INSERT INTO `+table+` (key, fingerprint, state, token, lease_until, expires_at)
SELECT convert_to('principal' || chr(1) || i, 'UTF8'), sha256(int4send(i)), 1, md5(i::text),
       now() + interval '1 minute',
       CASE WHEN i % 100 = 0 THEN now() - interval '1 minute' ELSE now() + i * interval '1 second' END
FROM generate_series(1, 5000) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ANALYZE "+table)
	require.NoError(t, err)

	explain := func(sql string, args ...any) string {
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			plan = append(plan, line)
		}
		require.NoError(t, rows.Err())
		return strings.Join(plan, "\n")
	}

	sweep := explain(s.sweepSQL, s.cfg.janitorBatch)
	assert.Contains(t, sweep, "Index Scan using "+table+"_expires_at_idx", sweep)

	fp := bytes.Repeat([]byte{1}, 32)
	claim := explain(s.claimSQL, []byte("principal\x01"+"77"), fp, "token", int64(time.Minute/time.Microsecond))
	assert.Contains(t, claim, "Conflict Arbiter Indexes: "+table+"_pkey", claim)
	assert.Contains(t, claim, "Index Scan using "+table+"_pkey", claim)

	for name, sql := range map[string]string{"renew": s.renewSQL, "complete": s.completeSQL, "release": s.releaseSQL} {
		var args []any
		switch name {
		case "renew":
			args = []any{[]byte("k"), "t", int64(1)}
		case "complete":
			args = []any{[]byte("k"), "t", int64(1), int32(200), []byte{1}, []byte("b")}
		case "release":
			args = []any{[]byte("k"), "t"}
		}
		plan := explain(sql, args...)
		assert.Contains(t, plan, "Index Scan using "+table+"_pkey", "%s:\n%s", name, plan)
	}
}

func TestHeaderCodec(t *testing.T) {
	for name, h := range map[string]http.Header{
		"empty":       {},
		"multi":       {"X-Multi": {"2", "1", "2"}, "Content-Type": {"text/plain"}},
		"bytes":       {"X-Bin": {"\x00\xff\xfe", "caf\xe9", ""}, "\x00odd name": {"v"}},
		"no values":   {"X-None": {}},
		"long values": {"X-Long": {strings.Repeat("v", 300), strings.Repeat("w", 70000)}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeHeader(encodeHeader(h))
			require.NoError(t, err)
			assert.Equal(t, h, got)
		})
	}
	got, err := decodeHeader(encodeHeader(nil))
	require.NoError(t, err)
	assert.Nil(t, got)
	// Deterministic: the same header always encodes the same.
	h := http.Header{"B": {"1"}, "A": {"2"}, "C": {"3"}}
	assert.Equal(t, encodeHeader(h), encodeHeader(h.Clone()))

	for _, bad := range [][]byte{{}, {2}, {1, 5, 'a'}, {1, 1, 'a', 3, 1, 'x'}, {1, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		_, err := decodeHeader(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(http.Header{"X-Multi": {"1", "2"}}))
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 'a', 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil || h == nil {
			return
		}
		again, err := decodeHeader(encodeHeader(h))
		require.NoError(t, err)
		require.Equal(t, h, again)
	})
}
