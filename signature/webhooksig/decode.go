package webhooksig

import (
	"crypto/hmac"
	"encoding/base64"

	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// matchMAC computes HMAC-SHA256(prefix || body) under every secret of
// every key until one equals one of the n decoded signatures: one MAC per
// secret, however many signatures the header holds. It returns the
// matching key and leaves in sc.sum the MAC under that key's first secret.
func (w *Scheme) matchMAC(sc *whScratch, n int, body []byte) *webhookKey {
	if n == 0 {
		return nil
	}
	for _, k := range w.keys {
		for j := range k.secrets {
			m := sc.mac(k, j)
			m.Write(sc.prefix)
			m.Write(body)
			sc.sum = m.Sum(sc.sum[:0])
			for i := 0; i < n; i++ {
				if hmac.Equal(sc.sigs[i*macSize:(i+1)*macSize], sc.sum) {
					if j > 0 {
						m := sc.mac(k, 0)
						m.Write(sc.prefix)
						m.Write(body)
						sc.sum = m.Sum(sc.sum[:0])
					}
					return k
				}
			}
		}
	}
	return nil
}

// appendHexMAC decodes 64 hex digits into the next MAC slot of sc.
func appendHexMAC(sc *whScratch, s string) bool {
	if len(s) != 2*macSize {
		return false
	}
	off := len(sc.sigs)
	sc.sigs = append(sc.sigs, make([]byte, macSize)...)
	for i := 0; i < macSize; i++ {
		hi, lo := s[2*i], s[2*i+1]
		if !sigutil.IsHex(hi) || !sigutil.IsHex(lo) {
			sc.sigs = sc.sigs[:off]
			return false
		}
		sc.sigs[off+i] = sigutil.Unhex(hi)<<4 | sigutil.Unhex(lo)
	}
	return true
}

// decodeStdBase64 decodes padded standard base64 of exactly len(dst)
// bytes without allocating.
func decodeStdBase64(dst []byte, s string) bool {
	n := len(s)
	if len(dst) == 0 || n != base64.StdEncoding.EncodedLen(len(dst)) {
		return false
	}
	o := 0
	for i := 0; i < n-4; i += 4 {
		a, b, c, d := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]], b64Values[s[i+3]]
		if a|b|c|d > 63 {
			return false
		}
		dst[o] = a<<2 | b>>4
		dst[o+1] = b<<4 | c>>2
		dst[o+2] = c<<6 | d
		o += 3
	}
	a, b := b64Values[s[n-4]], b64Values[s[n-3]]
	if a|b > 63 {
		return false
	}
	dst[o] = a<<2 | b>>4
	o++
	switch len(dst) - o {
	case 0:
		return s[n-2] == '=' && s[n-1] == '='
	case 1:
		c := b64Values[s[n-2]]
		if c > 63 || s[n-1] != '=' {
			return false
		}
		dst[o] = b<<4 | c>>2
		return true
	}
	c, d := b64Values[s[n-2]], b64Values[s[n-1]]
	if c|d > 63 {
		return false
	}
	dst[o] = b<<4 | c>>2
	dst[o+1] = c<<6 | d
	return true
}

// b64Values maps each byte to its standard base64 value, 0xff outside the
// alphabet.
var b64Values = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
