package ingest

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// insertLinger is how long the coalescer waits, after the first write of a
// round arrives, for other partitions' writes to join it. Partitions flush
// on their own tickers, all started with the generation, so most of a
// process's flushes arrive within a fraction of a second of each other: one
// round then makes one INSERT per table for all of them, and ClickHouse gets
// about one insert per table per flush interval, whatever the partition
// count (it wants about one per second; one per partition per interval is
// "too many parts" territory at 64+ partitions). It adds at most this much
// to freshness.
const insertLinger = 250 * time.Millisecond

// coalescer is the process's one writer to ClickHouse: it merges the batches
// and finality rows that partitions hand it within insertLinger (or until
// maxRows rows wait) into one WriteBatches and one WriteFinalities call.
// Each partition still waits for its own batch to be durable before it
// commits, so nothing is committed before it is written. A failed write
// fails every batch in it; each partition's writer chain retries, and the
// retries coalesce again. Rewriting rows is harmless by design.
type coalescer struct {
	w       BatchWriter
	linger  time.Duration
	maxRows int
	met     *metrics
	log     zerolog.Logger
	reqs    chan *writeReq
}

// writeReq is one partition's batch or finality row, and where to say how
// its write went.
type writeReq struct {
	batch    *aggregate.Batch
	finality *aggregate.Finality
	// now makes the round write without waiting out the linger: the
	// partition is reading a backlog and stands still until the write is
	// durable. Partitions catching up flush at chunk ends, seconds apart:
	// lingering there cost each of them insertLinger per chunk, a fifth of
	// a 1M-event catch-up, to save INSERTs nobody was short of.
	now  bool
	done chan error // buffered: the coalescer never waits for the partition
}

func newCoalescer(w BatchWriter, maxRows int, met *metrics, log zerolog.Logger) *coalescer {
	return &coalescer{w: w, linger: insertLinger, maxRows: maxRows, met: met, log: log, reqs: make(chan *writeReq)}
}

// write hands b to the next round and waits until it is durable, failed, or
// ctx ends. When ctx ends first the round may still write b: harmless, the
// caller keeps b and writes it again. Without linger the round is written
// at once, with whatever else joined it.
func (c *coalescer) write(ctx context.Context, b *aggregate.Batch, linger bool) error {
	return c.submit(ctx, &writeReq{batch: b, now: !linger, done: make(chan error, 1)})
}

// writeFinality hands f to the next round and waits for its write.
func (c *coalescer) writeFinality(ctx context.Context, f aggregate.Finality) error {
	return c.submit(ctx, &writeReq{finality: &f, done: make(chan error, 1)})
}

func (c *coalescer) submit(ctx context.Context, r *writeReq) error {
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run writes rounds until ctx ends. Consumer.Run owns it and ends it only
// after every partition finished its final flush.
func (c *coalescer) run(ctx context.Context) {
	var (
		round []*writeReq
		rows  int
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, r := range round {
				r.done <- ctx.Err()
			}
			return
		case r := <-c.reqs:
			if len(round) == 0 {
				timer.Reset(c.linger)
			}
			round = append(round, r)
			if r.batch != nil {
				rows += r.batch.Len()
			}
			if rows < c.maxRows && !r.now {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		c.flush(ctx, round)
		round, rows = round[:0], 0
	}
}

// flush writes one round: the batches, then the finality rows (which must
// not run ahead of the rows they cover: a finality row is only handed over
// after its partition's batch was durable, so writing it later is safe).
func (c *coalescer) flush(ctx context.Context, round []*writeReq) {
	var (
		batches []*aggregate.Batch
		fins    []aggregate.Finality
	)
	for _, r := range round {
		if r.batch != nil {
			batches = append(batches, r.batch)
		} else {
			fins = append(fins, *r.finality)
		}
	}
	var batchErr, finErr error
	if len(batches) > 0 {
		start := time.Now()
		batchErr = c.w.WriteBatches(ctx, batches)
		if batchErr == nil {
			c.met.writes.Add(float64(len(batches)))
			c.met.inserts.Inc()
			c.met.writeTime.Observe(time.Since(start).Seconds())
			for _, b := range batches {
				for _, wr := range b.Windows {
					c.met.rows.WithLabelValues(wr.Window.Name).Add(float64(len(wr.Rows)))
				}
			}
		}
	}
	if len(fins) > 0 {
		finErr = c.w.WriteFinalities(ctx, fins)
	}
	for _, r := range round {
		if r.batch != nil {
			r.done <- batchErr
		} else {
			r.done <- finErr
		}
	}
}
