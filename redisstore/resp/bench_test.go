package resp_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// benchSeq makes every benchmarked nonce new.
var benchSeq atomic.Int64

// BenchmarkNonceAdd compares the exact nonce store on this client and on
// go-redis, one fresh nonce per call (SET … NX GET PXAT), from parallel
// callers on one loopback Redis.
func BenchmarkNonceAdd(b *testing.B) {
	srv := redistest.Start(b)
	stores := map[string]nonce.Store{
		"resp":     redisstore.NewNonce(newClient(b, resp.Options{Addr: srv.Addr()}), redisstore.WithKeyPrefix("bench-resp"), redisstore.WithTimeout(slow)),
		"go-redis": redisstore.NewNonce(newGoRedis(b, srv.Addr()), redisstore.WithKeyPrefix("bench-goredis"), redisstore.WithTimeout(slow)),
	}
	for _, name := range []string{"resp", "go-redis"} {
		s := stores[name]
		b.Run(name, func(b *testing.B) {
			exp := time.Now().Add(time.Minute)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := nonce.Entry{Scope: "k", Key: strconv.FormatInt(benchSeq.Add(1), 10), Expires: exp}
					if err := s.Add(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
