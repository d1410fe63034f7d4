package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/rollupfake"
)

// countingWriter counts the WriteBatches calls (one INSERT per table each)
// and the batches they carried.
type countingWriter struct {
	*rollupfake.Table
	calls, batches atomic.Int64
}

func (w *countingWriter) WriteBatches(ctx context.Context, bs []*aggregate.Batch) error {
	w.calls.Add(1)
	w.batches.Add(int64(len(bs)))
	return w.Table.WriteBatches(ctx, bs)
}

func startCoalescer(t *testing.T, w BatchWriter, maxRows int, linger time.Duration) *coalescer {
	t.Helper()
	c := newCoalescer(w, maxRows, newMetrics(prometheus.NewRegistry(), []string{"1m", "1h"}), zerolog.Nop())
	c.linger = linger
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func testBatch(partition int32) *aggregate.Batch {
	return &aggregate.Batch{Topic: "usage", Partition: partition, Windows: []aggregate.WindowRows{
		{Window: aggregate.DefaultConfig().Windows[0], Rows: []aggregate.Row{{WindowStart: 60, Measures: aggregate.Measures{Requests: 1}}}},
		{Window: aggregate.DefaultConfig().Windows[1], Rows: []aggregate.Row{{WindowStart: 0, Measures: aggregate.Measures{Requests: 1}}}},
	}, Progress: aggregate.Progress{LastOffset: 0}}
}

// TestCoalescerMergesPartitionsIntoOneWrite: 64 partitions flushing at once
// make one WriteBatches call, and each partition's write returns only once
// its batch is durable.
func TestCoalescerMergesPartitionsIntoOneWrite(t *testing.T) {
	table := &countingWriter{Table: rollupfake.New(aggregate.DefaultConfig().Windows)}
	c := startCoalescer(t, table, 1_000_000, insertLinger)
	const partitions = 64
	var wg sync.WaitGroup
	for p := range int32(partitions) {
		wg.Go(func() {
			if err := c.write(context.Background(), testBatch(p), true); err != nil {
				t.Errorf("partition %d: %v", p, err)
			}
			if table.Next(p) != 1 {
				t.Errorf("partition %d: write returned before its batch was durable", p)
			}
		})
	}
	wg.Wait()
	if calls, batches := table.calls.Load(), table.batches.Load(); calls > 2 || batches != partitions {
		t.Errorf("%d WriteBatches calls for %d batches, want 1 (2 at most if the linger split them)", calls, batches)
	}
	if got := table.Sum("1h").Requests; got != partitions {
		t.Errorf("1h requests = %d, want %d", got, partitions)
	}
}

// TestCoalescerFailsEveryBatchOfAFailedWrite: a write that fails fails all
// its batches, so every partition retries; nothing reports durable.
func TestCoalescerFailsEveryBatchOfAFailedWrite(t *testing.T) {
	table := &countingWriter{Table: rollupfake.New(aggregate.DefaultConfig().Windows)}
	table.Down.Store(true)
	c := startCoalescer(t, table, 1_000_000, insertLinger)
	var wg sync.WaitGroup
	for p := range int32(8) {
		wg.Go(func() {
			if err := c.write(context.Background(), testBatch(p), true); !errors.Is(err, rollupfake.ErrDown) {
				t.Errorf("partition %d: write = %v, want ErrDown", p, err)
			}
		})
	}
	wg.Wait()
}

// TestCoalescerWritesAFullRoundAtOnce: once maxRows rows wait, the round is
// written without waiting for the linger (here an hour).
func TestCoalescerWritesAFullRoundAtOnce(t *testing.T) {
	table := &countingWriter{Table: rollupfake.New(aggregate.DefaultConfig().Windows)}
	c := startCoalescer(t, table, 2, time.Hour) // one test batch has 2 rows
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.write(ctx, testBatch(0), true); err != nil {
		t.Fatalf("a full round was not written before the linger: %v", err)
	}
}

// TestCoalescerWritesAtOnceWhenAPartitionCannotWait: a write without linger
// (a partition catching up, at a chunk end) is written at once, with what
// else joined the round, although the linger is an hour.
func TestCoalescerWritesAtOnceWhenAPartitionCannotWait(t *testing.T) {
	table := &countingWriter{Table: rollupfake.New(aggregate.DefaultConfig().Windows)}
	c := startCoalescer(t, table, 1_000_000, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lingering := make(chan error, 1)
	go func() { lingering <- c.write(ctx, testBatch(1), true) }()
	// Each urgent write is written at once; the lingering one goes out with
	// the first urgent round it joined.
	for done := false; !done; {
		if err := c.write(ctx, testBatch(0), false); err != nil {
			t.Fatalf("an urgent write waited for the linger: %v", err)
		}
		select {
		case err := <-lingering:
			if err != nil {
				t.Fatalf("the lingering write did not go out with an urgent round: %v", err)
			}
			done = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if table.Next(0) != 1 || table.Next(1) != 1 {
		t.Fatalf("batches not durable: partition 0 next %d, partition 1 next %d", table.Next(0), table.Next(1))
	}
}
