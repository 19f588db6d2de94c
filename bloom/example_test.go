package bloom_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/nonce"
)

func Example() {
	// 100,000 nonces per 10-minute window at a false-positive rate of 1e-9.
	store, err := bloom.NewMemory(100_000, 1e-9, 10*time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	signed := time.Now() // the request's signed timestamp
	e := nonce.Entry{Scope: "key-2024", Key: "b5f0c2e6", Timestamp: signed, Expires: signed.Add(10 * time.Minute)}

	fmt.Println("first:", store.Add(ctx, e))
	err = store.Add(ctx, e)
	fmt.Println("again replayed:", errors.Is(err, nonce.ErrReplayed))

	s := store.Stats()[0]
	fmt.Printf("%d entry in %d sub-filter\n", s.Entries, s.SubFilters)
	// Output:
	// first: <nil>
	// again replayed: true
	// 1 entry in 1 sub-filter
}

func ExampleNewMemory_invalid() {
	_, err := bloom.NewMemory(100_000, 2, 10*time.Minute)
	fmt.Println(errors.Is(err, bloom.ErrInvalidParameter))
	fmt.Println(err)
	// Output:
	// true
	// bloom: invalid parameter: false-positive rate 2 outside (0, 1)
}
