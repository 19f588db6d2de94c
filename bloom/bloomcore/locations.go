package bloomcore

import (
	"encoding/binary"
	"math/bits"
)

// Locations returns the k bit positions of data, before they are taken
// modulo a filter's size: those of Locations in bits-and-blooms/bloom/v3.
// With (h1, h2) the 128-bit MurmurHash3 (x64, seed 0) of data and (h3, h4)
// that of data followed by the byte 1, position i is
//
//	h[i mod 2] + i·h[2 + ((i + i mod 2) mod 4) / 2]
//
// in uint64 arithmetic, h = (h1, h2, h3, h4).
func Locations(data []byte, k uint) []uint64 {
	var h [4]uint64
	h[0], h[1] = murmur128(data, false)
	h[2], h[3] = murmur128(data, true)
	locs := make([]uint64, k)
	for i := uint64(0); i < uint64(k); i++ {
		locs[i] = h[i%2] + i*h[2+((i+i%2)%4)/2]
	}
	return locs
}

// MurmurHash3 x64 128 constants.
const (
	murmurC1 = 0x87c37b91114253d5
	murmurC2 = 0x4cf5ad432745937f
)

// murmur128 returns the 128-bit MurmurHash3 (x64 variant, seed 0) of data,
// or of data followed by the byte 1 when one is set, without copying data.
func murmur128(data []byte, one bool) (uint64, uint64) {
	var h1, h2 uint64
	n := len(data)
	full := n / 16 * 16
	for i := 0; i < full; i += 16 {
		h1, h2 = murmurBlock(h1, h2, binary.LittleEndian.Uint64(data[i:]), binary.LittleEndian.Uint64(data[i+8:]))
	}
	var tail [17]byte
	t := copy(tail[:], data[full:])
	length := uint64(n)
	if one {
		tail[t] = 1
		t++
		length++
	}
	if t == 16 {
		h1, h2 = murmurBlock(h1, h2, binary.LittleEndian.Uint64(tail[:]), binary.LittleEndian.Uint64(tail[8:]))
		t = 0
	}
	var k1, k2 uint64
	for i := t - 1; i >= 8; i-- {
		k2 = k2<<8 | uint64(tail[i])
	}
	if t > 8 {
		k2 *= murmurC2
		k2 = bits.RotateLeft64(k2, 33)
		k2 *= murmurC1
		h2 ^= k2
	}
	last := t
	if last > 8 {
		last = 8
	}
	for i := last - 1; i >= 0; i-- {
		k1 = k1<<8 | uint64(tail[i])
	}
	if t > 0 {
		k1 *= murmurC1
		k1 = bits.RotateLeft64(k1, 31)
		k1 *= murmurC2
		h1 ^= k1
	}

	h1 ^= length
	h2 ^= length
	h1 += h2
	h2 += h1
	h1 = fmix64(h1)
	h2 = fmix64(h2)
	h1 += h2
	h2 += h1
	return h1, h2
}

// murmurBlock mixes one 16-byte block (k1, k2) into (h1, h2).
func murmurBlock(h1, h2, k1, k2 uint64) (uint64, uint64) {
	k1 *= murmurC1
	k1 = bits.RotateLeft64(k1, 31)
	k1 *= murmurC2
	h1 ^= k1
	h1 = bits.RotateLeft64(h1, 27)
	h1 += h2
	h1 = h1*5 + 0x52dce729

	k2 *= murmurC2
	k2 = bits.RotateLeft64(k2, 33)
	k2 *= murmurC1
	h2 ^= k2
	h2 = bits.RotateLeft64(h2, 31)
	h2 += h1
	h2 = h2*5 + 0x38495ab5
	return h1, h2
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
