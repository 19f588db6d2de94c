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
