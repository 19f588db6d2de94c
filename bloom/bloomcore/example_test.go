package bloomcore_test

import (
	"fmt"

	"github.com/replayguard/replayguard/bloom/bloomcore"
)

func ExampleOptimal() {
	m, k := bloomcore.Optimal(1_000_000, 1e-9)
	fmt.Printf("%d bits (%.1f bytes per entry), %d hash functions\n", m, float64(m)/8/1e6, k)
	// Output:
	// 43132763 bits (5.4 bytes per entry), 30 hash functions
}
