package layout

// Idempotency record fields (a Redis hash). State is "p" (in progress) or
// "c" (completed).
const (
	FieldState       = "s"
	FieldToken       = "tok"
	FieldFingerprint = "fp"
	FieldStatus      = "st"
	FieldHeader      = "h"
	FieldBody        = "b"

	StateInProgress = "p"
	StateCompleted  = "c"
)

// ClaimScript claims an idempotency record.
//
//	KEYS[1] record   ARGV[1] token   ARGV[2] fingerprint (32 bytes)
//	ARGV[3] lease in milliseconds
//
// It returns {1} when the caller now holds the record: it was absent (or
// had expired) and is created in progress with the token, leased with
// PEXPIRE, or it is already in progress under this very token (a retried
// claim recognises its own write). Otherwise it returns the record in the
// same round trip: {0, state, fingerprint, status, header, body}.
const ClaimScript = `local r = redis.call('HMGET', KEYS[1], 's', 'tok', 'fp', 'st', 'h', 'b')
if r[1] then
  if r[1] == 'p' and r[2] == ARGV[1] then
    return {1}
  end
  return {0, r[1], r[3] or '', r[4] or '', r[5] or '', r[6] or ''}
end
redis.call('HSET', KEYS[1], 's', 'p', 'tok', ARGV[1], 'fp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
`

// RenewScript extends the lease of the holder of a token.
//
//	KEYS[1] record   ARGV[1] token   ARGV[2] lease in milliseconds
//
// It returns 1, or 0 when the token no longer holds the record.
const RenewScript = `local r = redis.call('HMGET', KEYS[1], 's', 'tok')
if r[1] == 'p' and r[2] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`

// CompleteScript stores the response of the holder of a token.
//
//	KEYS[1] record   ARGV[1] token   ARGV[2] status (decimal)
//	ARGV[3] header (EncodeHeader)   ARGV[4] body   ARGV[5] TTL in milliseconds
//
// It returns 1, or 0 when the token no longer holds the record (which is
// then left untouched).
const CompleteScript = `local r = redis.call('HMGET', KEYS[1], 's', 'tok')
if r[1] == 'p' and r[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 's', 'c', 'st', ARGV[2], 'h', ARGV[3], 'b', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
`

// ReleaseScript deletes the in-progress record of the holder of a token.
//
//	KEYS[1] record   ARGV[1] token
//
// It returns 1, or 0 when the token no longer holds the record.
const ReleaseScript = `local r = redis.call('HMGET', KEYS[1], 's', 'tok')
if r[1] == 'p' and r[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`

// BloomGrownScript checks an entry in a partition that has grown past its
// first sub-filter, atomically: it tests the older sub-filters and, only when
// none holds the entry, test-and-sets its bits in the newest and counts the
// check there.
//
//	KEYS[1..n]   sub-filters 0..n-1 of one partition, oldest first
//	ARGV[1]      expiry in unix milliseconds
//	ARGV[2]      "1" to extend every sub-filter to it (PEXPIREAT NX, then
//	             GT); "0" to do so only when this check created the newest
//	ARGV[3]      bit offset of the newest sub-filter's counter (its m)
//	ARGV[4…]     for each key in order: k, then k bit positions
//
// It returns {1, 0} when an older sub-filter holds the entry (nothing is
// written), else {present, counter}: present is 1 when every bit of the
// newest sub-filter was already set, counter the newest's counter after
// the increment.
const BloomGrownScript = `local j = 4
local n = #KEYS
for i = 1, n - 1 do
  local k = tonumber(ARGV[j])
  j = j + 1
  local args = {}
  for p = 1, k do
    args[#args + 1] = 'GET'
    args[#args + 1] = 'u1'
    args[#args + 1] = ARGV[j]
    j = j + 1
  end
  local bits = redis.call('BITFIELD_RO', KEYS[i], unpack(args))
  local all = true
  for p = 1, k do
    if bits[p] == 0 then
      all = false
      break
    end
  end
  if all then
    return {1, 0}
  end
end
local k = tonumber(ARGV[j])
j = j + 1
local args = {}
for p = 1, k do
  args[#args + 1] = 'SET'
  args[#args + 1] = 'u1'
  args[#args + 1] = ARGV[j]
  args[#args + 1] = 1
  j = j + 1
end
args[#args + 1] = 'OVERFLOW'
args[#args + 1] = 'SAT'
args[#args + 1] = 'INCRBY'
args[#args + 1] = 'u32'
args[#args + 1] = ARGV[3]
args[#args + 1] = 1
local old = redis.call('BITFIELD', KEYS[n], unpack(args))
if ARGV[2] == '1' or old[k + 1] == 1 then
  for i = 1, n do
    redis.call('PEXPIREAT', KEYS[i], ARGV[1], 'NX')
    redis.call('PEXPIREAT', KEYS[i], ARGV[1], 'GT')
  end
end
local present = 1
for p = 1, k do
  if old[p] == 0 then
    present = 0
    break
  end
end
return {present, old[k + 1]}
`

// NonceClaimScript adds an exact nonce and claims an idempotency record in
// one atomic step: the nonce's SET … NX GET PXAT, then, only when the
// nonce was fresh, ClaimScript on the record. The keys must share a
// Cluster slot (TagPrincipal, the nonce's scope the record's principal),
// or the server be a standalone one.
//
//	KEYS[1] nonce   KEYS[2] record
//	ARGV[1] nonce token   ARGV[2] nonce expiry in unix milliseconds
//	ARGV[3] claim token   ARGV[4] fingerprint (32 bytes)
//	ARGV[5] lease in milliseconds
//
// It returns {0} when the nonce was recorded before (a replay: nothing is
// written), else {1} followed by ClaimScript's reply. A nonce holding the
// call's own token is fresh and a record in progress under the call's own
// claim token is the call's, so a client may send it twice.
const NonceClaimScript = `local prev = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PXAT', ARGV[2])
if prev and prev ~= ARGV[1] then
  return {0}
end
local r = redis.call('HMGET', KEYS[2], 's', 'tok', 'fp', 'st', 'h', 'b')
if r[1] then
  if r[1] == 'p' and r[2] == ARGV[3] then
    return {1, 1}
  end
  return {1, 0, r[1], r[3] or '', r[4] or '', r[5] or '', r[6] or ''}
end
redis.call('HSET', KEYS[2], 's', 'p', 'tok', ARGV[3], 'fp', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {1, 1}
`

// BloomClaimScript checks an entry in a Bloom partition and claims an
// idempotency record in one atomic step: BloomGrownScript's check over
// sub-filters 0..n-1 (n ≥ 1; with one sub-filter, the single BITFIELD of
// a plain check, its expiry set as the pipelined PEXPIREAT would), then,
// only when the entry is fresh and the newest sub-filter's counter within
// its capacity, ClaimScript on the record. Only on a standalone server:
// the record's slot is not the partition's.
//
//	KEYS[1..n]   sub-filters 0..n-1 of one partition, oldest first
//	KEYS[n+1]    record
//	ARGV[1]      expiry in unix milliseconds
//	ARGV[2]      "1" to extend every sub-filter to it (PEXPIREAT NX, then
//	             GT); "0" to do so only when this check created the newest
//	ARGV[3]      bit offset of the newest sub-filter's counter (its m)
//	ARGV[4]      the newest sub-filter's capacity: past it no claim is made
//	ARGV[5]      claim token   ARGV[6] fingerprint   ARGV[7] lease in ms
//	ARGV[8…]     for each sub-filter in order: k, then k bit positions
//
// It returns {present, counter} as BloomGrownScript does when no claim is
// made (the entry present, or the counter past the capacity: the caller
// then reads the newer sub-filters before calling the entry fresh), else
// {0, counter} followed by ClaimScript's reply. The BITFIELD's effect
// shows in a second run, so it must not be sent twice.
const BloomClaimScript = `local j = 8
local n = #KEYS - 1
for i = 1, n - 1 do
  local k = tonumber(ARGV[j])
  j = j + 1
  local args = {}
  for p = 1, k do
    args[#args + 1] = 'GET'
    args[#args + 1] = 'u1'
    args[#args + 1] = ARGV[j]
    j = j + 1
  end
  local bits = redis.call('BITFIELD_RO', KEYS[i], unpack(args))
  local all = true
  for p = 1, k do
    if bits[p] == 0 then
      all = false
      break
    end
  end
  if all then
    return {1, 0}
  end
end
local k = tonumber(ARGV[j])
j = j + 1
local args = {}
for p = 1, k do
  args[#args + 1] = 'SET'
  args[#args + 1] = 'u1'
  args[#args + 1] = ARGV[j]
  args[#args + 1] = 1
  j = j + 1
end
args[#args + 1] = 'OVERFLOW'
args[#args + 1] = 'SAT'
args[#args + 1] = 'INCRBY'
args[#args + 1] = 'u32'
args[#args + 1] = ARGV[3]
args[#args + 1] = 1
local old = redis.call('BITFIELD', KEYS[n], unpack(args))
if ARGV[2] == '1' or old[k + 1] == 1 then
  for i = 1, n do
    redis.call('PEXPIREAT', KEYS[i], ARGV[1], 'NX')
    redis.call('PEXPIREAT', KEYS[i], ARGV[1], 'GT')
  end
end
local present = 1
for p = 1, k do
  if old[p] == 0 then
    present = 0
    break
  end
end
if present == 1 or old[k + 1] > tonumber(ARGV[4]) then
  return {present, old[k + 1]}
end
local rec = KEYS[n + 1]
local r = redis.call('HMGET', rec, 's', 'tok', 'fp', 'st', 'h', 'b')
if r[1] then
  if r[1] == 'p' and r[2] == ARGV[5] then
    return {0, old[k + 1], 1}
  end
  return {0, old[k + 1], 0, r[1], r[3] or '', r[4] or '', r[5] or '', r[6] or ''}
end
redis.call('HSET', rec, 's', 'p', 'tok', ARGV[5], 'fp', ARGV[6])
redis.call('PEXPIRE', rec, ARGV[7])
return {0, old[k + 1], 1}
`
