package partitionlog

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Budget bounds the bytes of fetched data that the process holds and has not
// released yet, over all partitions: the Readers of one process share one.
//
// A fetch reserves its Config.MaxBytes before the request is sent, waiting
// while the budget is spent, so a burst of full partitions cannot fetch more
// than the budget at once. Once the response is decoded the fetch keeps only
// the bytes of the record keys and values it returns and gives the rest
// back; Fetch.Release gives back what it kept.
//
// What is counted is key and value bytes, not the Record headers of a fetch
// (80 bytes a record), nor a decoded size beyond the reservation: a
// compressed batch can decode to more than MaxBytes, and the excess is not
// charged, because waiting for more budget while holding some is how Readers
// would deadlock each other.
type Budget struct {
	sem  *semaphore.Weighted
	size int64
	// blocks are the arena blocks of the Readers sharing the budget.
	blocks blockPool
}

// NewBudget returns a budget of the given number of bytes. It must be at
// least the largest Config.MaxBytes of the Readers that share it.
func NewBudget(bytes int64) *Budget {
	return &Budget{sem: semaphore.NewWeighted(bytes), size: bytes}
}

// Size returns the number of bytes the budget was created with.
func (b *Budget) Size() int64 { return b.size }

// acquire reserves n bytes, waiting until they are free or ctx ends. Waiters
// are served first come, first served (semaphore.Weighted is FIFO), so a
// Reader with a large reservation is not starved by small ones.
func (b *Budget) acquire(ctx context.Context, n int64) error {
	if n > b.size {
		// semaphore.Weighted would wait for ctx forever.
		return fmt.Errorf("reserve %d bytes from a budget of %d", n, b.size)
	}
	return b.sem.Acquire(ctx, n)
}

// release gives back n bytes of an earlier acquire.
func (b *Budget) release(n int64) {
	if n > 0 {
		b.sem.Release(n)
	}
}
