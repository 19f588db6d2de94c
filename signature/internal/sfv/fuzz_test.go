package sfv_test

import (
	"testing"

	"github.com/replayguard/replayguard/signature/internal/sfv"
)

var fuzzSeeds = []string{
	`sugar, tea, rum`,
	`("foo" "bar");lvl=5, ("bar" "baz");lvl=1`,
	`abc;a=1;b=2; cde_456, (ghi;jk=4 l);q="9";r=w`,
	`en="Applepie", da=:w4ZibGV0w6ZydGUK:`,
	`a=?0, b, c; foo=bar`,
	`rating=1.5, feelings=(joy sadness)`,
	`sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"`,
	`sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`,
	`-999999999999.999`, `"a \"b\" \\c"`, `*tok/en:x`, `?1;a`,
}

// checkStable asserts that what parses serializes, and that the
// serialization parses back to the same serialization.
func checkStable(t *testing.T, in string, parse func(string) (string, error)) {
	out, err := parse(in)
	if err != nil {
		return
	}
	again, err := parse(out)
	if err != nil {
		t.Fatalf("serialization %q of %q does not parse: %v", out, in, err)
	}
	if again != out {
		t.Fatalf("serialization is not stable: %q -> %q -> %q", in, out, again)
	}
}

func FuzzSFVList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkStable(t, in, func(s string) (string, error) {
			l, err := sfv.ParseList(s)
			if err != nil {
				return "", err
			}
			out, err := sfv.MarshalList(l)
			if err != nil {
				t.Fatalf("parsed list %q does not serialize: %v", s, err)
			}
			return out, nil
		})
	})
}

func FuzzSFVDictionary(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkStable(t, in, func(s string) (string, error) {
			d, err := sfv.ParseDictionary(s)
			if err != nil {
				return "", err
			}
			out, err := sfv.MarshalDictionary(d)
			if err != nil {
				t.Fatalf("parsed dictionary %q does not serialize: %v", s, err)
			}
			return out, nil
		})
	})
}

func FuzzSFVItem(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkStable(t, in, func(s string) (string, error) {
			it, err := sfv.ParseItem(s)
			if err != nil {
				return "", err
			}
			out, err := sfv.MarshalItem(it)
			if err != nil {
				t.Fatalf("parsed item %q does not serialize: %v", s, err)
			}
			return out, nil
		})
	})
}
