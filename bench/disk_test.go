package bench

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// BenchmarkDiskStore runs the store writes of requests from 64 goroutines
// against the disk store, with and without fsync, beside the memory
// stores: "post" is a covered POST's nonce and claim (in one write where
// the store is an idempotency.NonceClaimer, as the Guard makes them) and
// completed record of an 11-byte answer, "post-3writes" the same in three
// writes, "get" a GET's nonce. The files live under the
// benchmark's temporary directory (TMPDIR: put it on the file system to
// measure, not tmpfs). CPU per operation is the process's, writer and
// fsync system calls included; compare instruction counts with
// `perf stat -e instructions` on the test binary where the seconds wander.
func BenchmarkDiskStore(b *testing.B) {
	kinds := []struct {
		name string
		open func(b *testing.B) storePair
	}{
		{"memory", func(*testing.B) storePair {
			// No cap: the benchmark stores more than the default 256 MiB.
			return storePair{nonce.NewMemory(), idempotency.NewMemory(idempotency.WithMemoryMaxBytes(0))}
		}},
		{"disk", func(b *testing.B) storePair { return openDisk(b, true) }},
		{"disk-nofsync", func(b *testing.B) storePair { return openDisk(b, false) }},
	}
	resp := &idempotency.Response{Status: http.StatusCreated, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"ok":true}` + "\n")}
	for _, method := range []string{"post", "post-3writes", "get"} {
		for _, k := range kinds {
			b.Run(method+"/"+k.name, func(b *testing.B) {
				s := k.open(b)
				ctx := context.Background()
				b.SetParallelism(32) // 64 goroutines on 2 CPUs
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := uuid.NewString()
						e := nonce.Entry{Scope: "client-a", Key: id, Owner: "client-a", Timestamp: time.Now(), Expires: time.Now().Add(10 * time.Minute)}
						key := idempotency.ScopedKey("client-a", id)
						var c idempotency.Claim
						var err error
						if nc, ok := s.recs.(idempotency.NonceClaimer); ok && method == "post" {
							var nerr error
							c, nerr, err = nc.ClaimWithNonce(ctx, e, "client-a", key, idempotency.Fingerprint{1}, 30*time.Second)
							if nerr != nil {
								b.Error(nerr)
								return
							}
						} else {
							if err := s.nonces.Add(ctx, e); err != nil {
								b.Error(err)
								return
							}
							if method == "get" {
								continue
							}
							c, err = s.recs.(idempotency.OwnerClaimer).ClaimFor(ctx, "client-a", key, idempotency.Fingerprint{1}, 30*time.Second)
						}
						if err != nil || !c.Acquired {
							b.Errorf("claim: %v %+v", err, c)
							return
						}
						if err := s.recs.Complete(ctx, key, c.Token, resp, 24*time.Hour); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// storePair is the nonce and idempotency stores of one gateway.
type storePair struct {
	nonces nonce.Store
	recs   idempotency.Store
}

func openDisk(b *testing.B, fsync bool) storePair {
	db, err := disk.Open(b.TempDir(), disk.WithFsync(fsync), disk.WithKeyShare(1<<40))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return storePair{db.Nonces(), db.Records()}
}
