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
	// Both hashes share the blocks of data; only their tails differ (one
	// more byte may complete a block for the second).
	full := len(data) / 16 * 16
	var b1, b2 uint64
	for i := 0; i < full; i += 16 {
		b1, b2 = murmurBlock(b1, b2, binary.LittleEndian.Uint64(data[i:]), binary.LittleEndian.Uint64(data[i+8:]))
	}
	var tail [17]byte
	t := copy(tail[:], data[full:])
	h0, h1 := murmurTail(b1, b2, tail[:t], uint64(len(data)))
	tail[t] = 1
	h2, h3 := murmurTail(b1, b2, tail[:t+1], uint64(len(data)+1))

	// Position i is h[i mod 2] + i·h[2 + ((i + i mod 2) mod 4)/2]: the
	// second hash runs h2, h3, h3, h2 over every four positions.
	locs := make([]uint64, k)
	n := uint64(k)
	i := uint64(0)
	for ; i+4 <= n; i += 4 {
		locs[i] = h0 + i*h2
		locs[i+1] = h1 + (i+1)*h3
		locs[i+2] = h0 + (i+2)*h3
		locs[i+3] = h1 + (i+3)*h2
	}
	switch n - i {
	case 3:
		locs[i+2] = h0 + (i+2)*h3
		fallthrough
	case 2:
		locs[i+1] = h1 + (i+1)*h3
		fallthrough
	case 1:
		locs[i] = h0 + i*h2
	}
	return locs
}

// MurmurHash3 x64 128 constants.
const (
	murmurC1 = 0x87c37b91114253d5
	murmurC2 = 0x4cf5ad432745937f
)

// murmurTail finishes the 128-bit MurmurHash3 (x64 variant, seed 0) of an
// input of length bytes whose full 16-byte blocks left (h1, h2) and whose
// remaining bytes are tail (at most 16: a full block is mixed as one).
func murmurTail(h1, h2 uint64, tail []byte, length uint64) (uint64, uint64) {
	t := len(tail)
	if t == 16 {
		h1, h2 = murmurBlock(h1, h2, binary.LittleEndian.Uint64(tail), binary.LittleEndian.Uint64(tail[8:]))
		t = 0
	}
	if t > 0 {
		var buf [16]byte
		copy(buf[:], tail[:t])
		k1 := binary.LittleEndian.Uint64(buf[:])
		k1 *= murmurC1
		k1 = bits.RotateLeft64(k1, 31)
		k1 *= murmurC2
		h1 ^= k1
		if t > 8 {
			k2 := binary.LittleEndian.Uint64(buf[8:])
			k2 *= murmurC2
			k2 = bits.RotateLeft64(k2, 33)
			k2 *= murmurC1
			h2 ^= k2
		}
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
