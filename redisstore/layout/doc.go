// Package layout is the Redis data layout of replayguard's shared stores:
// key names, value formats, reply decoding, the bitmap sizing of the Bloom
// store and the Lua scripts. It imports only the standard library (and
// package idempotency), so that the Yaegi-interpreted Traefik plugin loads
// it with package redisstore.
//
// # Keys
//
// <p> is the key prefix (redis.key_prefix, default "rg"). D(x) is Digest:
// the first 16 bytes of SHA-256(x) in lower-case hex; every part a client
// controls (scope, nonce, idempotency key) is digested, so no byte of it, and
// no `{` or `}`, reaches a key name. Every key one call touches shares one
// {hash tag} and so one Cluster slot — except where a script adds a nonce
// and claims an idempotency record together (NonceClaimScript,
// BloomClaimScript) on a standalone server, which has no slots; on a
// Cluster NonceClaimScript runs only under TagPrincipal, where the nonce's
// scope and the record's principal give both keys one tag.
//
//	store / record           key (TagKey, the default)               key (TagPrincipal)
//	exact nonce              <p>:n:{D(scope 0x00 nonce)}             <p>:{D(scope)}:n:D(scope 0x00 nonce)
//	idempotency record       <p>:i:{D(principal 0x00 key)}           <p>:{D(principal)}:i:D(principal 0x00 key)
//	Bloom sub-filter         <p>:b:{<bucket>.<partition>}:<width ms>:<sub>:<m>:<k>
//	tagging marker           <p>:tagging ("key" or "principal", no expiry)
//
// # Values and expiry
//
//	exact nonce   string: a random non-negative 63-bit integer in decimal,
//	              new for every call (Redis keeps it as an integer). Written
//	              with SET <key> <token> NX GET PXAT <expiry ms>: nil reply =
//	              fresh; reply = own token = the call's own retried write,
//	              fresh; anything else = replay. Expires at Entry.Expires
//	              (signed timestamp + tolerance + margin).
//	idempotency   hash: s = "p" (in progress) | "c" (completed),
//	              tok = fencing token (32 hex), fp = request fingerprint
//	              (32 raw bytes), st = status (decimal), h = headers
//	              (EncodeHeader), b = body (raw bytes). PEXPIRE lease while
//	              in progress, PEXPIRE ttl once completed, both timed by the
//	              server's clock. Changed only by ClaimScript, RenewScript,
//	              CompleteScript and ReleaseScript.
//	Bloom         string bitmap: m filter bits, then a 32-bit unsigned
//	              big-endian counter of checks (BITFIELD u32 at offset m);
//	              PEXPIREAT the latest Entry.Expires recorded in it, rounded
//	              up to at most a second (NX then GT, so it only ever grows),
//	              sent with the check that first needs it, and after any
//	              check whose counter comes back 1 (it created the bitmap).
//
// # Bloom arithmetic
//
// The arithmetic is package bloomcore's: bucket = floor(signed timestamp /
// width) (BucketIndex); partition = FNV-1a 64(scope 0x00 nonce) mod
// partitions (Partition); a partition's share is c = PartitionCapacity =
// ceil(ceil(capacity·width/window) / partitions); sub-filter i is meant for
// SubCapacity = c·2^i entries at SubRate = p/2^(i+1), sized for WithMargin
// of that (plus four standard deviations) by Optimal (m₀ =
// ceil(-n·ln p / ln²2), k = ceil(ln 2·m₀/n)), then m = BitmapBits(m₀) (here):
// grown until the bitmap fills the allocator's size class. It counts as
// full past Holds(m, k, rate) checks. An entry's bits are
// Locations(scope 0x00 nonce, k) modulo m, the positions of
// bits-and-blooms/bloom/v3. With the defaults
// (capacity 1,000,000 per 10-minute window, 1-minute buckets, 16
// partitions, p = 1e-9) a partition's share is 6,250 and sub-filter 0 is a
// 40,954-byte bitmap (a 40,960-byte allocation) of m = 327,600 bits, k = 31,
// full after 7,349 checks.
//
// A check of a partition with one sub-filter is one command:
//
//	BITFIELD <sub 0> SET u1 <pos₁> 1 … SET u1 <posₖ> 1 OVERFLOW SAT INCRBY u32 <m> 1
//
// fresh when any returned bit is 0. When the returned counter exceeds the
// sub-filter's capacity, the partition has grown: checks then run
// BloomGrownScript over sub-filters 0..n.
package layout
