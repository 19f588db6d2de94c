// Command consumer simulates an at-least-once message stream with
// duplicates and applies every message exactly once through
// idempotency.Runner.Do. It exits non-zero if any message was applied twice
// or not at all.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/replayguard/replayguard/idempotency"
)

const (
	messages      = 100
	maxDeliveries = 3
	workers       = 4
)

// message is one event of the stream; a broker may deliver it more than once.
type message struct {
	ID     string
	Amount int
}

// tally counts what the consumers did.
type tally struct {
	Deliveries, Applied, Replayed int
}

// ledger is the side effect: each message credits its amount once.
type ledger struct {
	mu      sync.Mutex
	applied map[string]int
	balance int
}

func (l *ledger) apply(m message) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied[m.ID]++
	l.balance += m.Amount
	return l.balance
}

// check reports every message of ids not applied exactly once.
func (l *ledger) check(ids []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if n := l.applied[id]; n != 1 {
			errs = append(errs, fmt.Errorf("message %s applied %d times", id, n))
		}
	}
	return errors.Join(errs...)
}

// stream returns n messages, each delivered 1 to maxDeliveries times, shuffled.
func stream(n int, rng *rand.Rand) (ids []string, deliveries []message) {
	for i := range n {
		m := message{ID: fmt.Sprintf("msg-%03d", i+1), Amount: 1 + rng.IntN(100)}
		ids = append(ids, m.ID)
		for range 1 + rng.IntN(maxDeliveries) {
			deliveries = append(deliveries, m)
		}
	}
	rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	return ids, deliveries
}

// consume hands deliveries to n concurrent workers, each applying a message
// through runner.
func consume(ctx context.Context, runner *idempotency.Runner, deliveries []message, n int, l *ledger) (tally, error) {
	queue := make(chan message)
	var (
		mu   sync.Mutex
		t    tally
		errs []error
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			for m := range queue {
				res, err := runner.Do(ctx, m.ID, func(context.Context) ([]byte, error) {
					balance := l.apply(m)
					time.Sleep(time.Millisecond) // the effect takes a moment
					return fmt.Appendf(nil, "credited %d, balance %d", m.Amount, balance), nil
				})
				mu.Lock()
				t.Deliveries++
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
				case res.Replayed:
					t.Replayed++
				default:
					t.Applied++
				}
				mu.Unlock()
			}
		})
	}
	for _, m := range deliveries {
		queue <- m
	}
	close(queue)
	wg.Wait()
	return t, errors.Join(errs...)
}

// run simulates the stream, prints what happened and reports any message
// not applied exactly once.
func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ids, deliveries := stream(messages, rand.New(rand.NewPCG(2024, 7)))
	l := &ledger{applied: map[string]int{}}
	runner := idempotency.NewRunner(idempotency.NewMemory())
	t, err := consume(ctx, runner, deliveries, workers, l)

	fmt.Fprintf(w, "messages:   %d\n", len(ids))
	fmt.Fprintf(w, "deliveries: %d\n", t.Deliveries)
	fmt.Fprintf(w, "applied:    %d\n", t.Applied)
	fmt.Fprintf(w, "replayed:   %d\n", t.Replayed)
	if err != nil {
		return err
	}
	if err := l.check(ids); err != nil {
		return err
	}
	if t.Applied != len(ids) || t.Applied+t.Replayed != len(deliveries) {
		return fmt.Errorf("applied %d of %d messages, %d replays for %d deliveries", t.Applied, len(ids), t.Replayed, len(deliveries))
	}
	fmt.Fprintln(w, "every message applied exactly once")
	return nil
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}
