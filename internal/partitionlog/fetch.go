package partitionlog

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go/protocol"
)

// Record is one committed data record of the partition.
type Record struct {
	// Offset is the record's offset in the partition.
	Offset int64
	// Time is the record timestamp as kafka-go decodes it: the batch's base
	// timestamp plus the record's delta. That is the producer's CreateTime;
	// for a topic with message.timestamp.type=LogAppendTime it is not the
	// append time, which the broker writes into the batch's max timestamp
	// only, a field kafka-go does not keep.
	Time time.Time
	// Key and Value are nil when the record has none. They point into
	// memory the Fetch owns and are valid until Fetch.Release; copy what
	// must outlive it.
	Key, Value []byte
}

// Range is the offsets [From, To).
type Range struct{ From, To int64 }

// Fetch is the result of one Reader.Fetch: the committed data records at or
// after the requested offset, in offset order, and what the fetch learnt
// about the log.
type Fetch struct {
	// Records are the committed data records, in offset order. They and
	// their keys and values are valid until Release.
	Records []Record
	// Next is where the next Fetch starts: past every data, control and
	// aborted record this fetch covered, and past the Gaps. It equals the
	// requested offset when the fetch covered nothing: no committed data
	// past it yet (the partition is idle, or an open transaction holds the
	// last stable offset back).
	//
	// kafka-go does not keep a batch's last offset (lastOffsetDelta), so
	// Next is one past the last record present: when compaction removed
	// the tail of the last batch of a response, the next fetch returns that
	// batch again, and Fetch then steps over the removed tail one offset per
	// call, each reported as a gap: slow on such a tail, but it never skips
	// an offset that might hold a record.
	Next int64
	// Gaps are the offsets in [requested offset, Next) that are absent from
	// the log: removed by compaction, or before the first record retained
	// when the fetch started below it. Control records and records of
	// aborted transactions are present, so they are never gaps. Every
	// offset in [requested offset, Next) is in exactly one of: Records, the
	// Aborted and Control counts, Gaps.
	Gaps []Range
	// Aborted counts the records skipped because their transaction aborted.
	Aborted int
	// Control counts the transaction markers (control records) skipped.
	Control int
	// HighWatermark, LastStableOffset and LogStartOffset are the partition's
	// offsets as the leader reported them with this fetch. Under
	// read-committed, Next never passes LastStableOffset.
	HighWatermark, LastStableOffset, LogStartOffset int64

	reader *Reader
	buf    *buffers
	held   int64
}

// Release gives the fetch's memory back to its Reader, for the next fetch,
// and its bytes back to the Budget. Records, their keys and values must not
// be used afterwards. Calling it again does nothing.
func (f *Fetch) Release() {
	if f.buf == nil {
		return
	}
	f.reader.budget.release(f.held)
	f.reader.putBuffers(f.buf)
	f.buf, f.held, f.Records, f.Gaps = nil, 0, nil, nil
}

// buffers are the reusable memory of one fetch: its records, the blocks
// their keys and values are copied into, and its gaps. A Reader keeps one
// set between fetches, and blocks go back to the process's pool, so a steady
// stream of fetches allocates none.
type buffers struct {
	records []Record
	gaps    []Range
	// blocks are the arena blocks this fetch filled, cur the free end of
	// the last one.
	blocks []*[arenaBlock]byte
	cur    []byte
	// large is the bytes of keys and values too large for a block, each
	// allocated on its own.
	large int64
}

// held is the memory the fetch's keys and values occupy.
func (b *buffers) held() int64 { return int64(len(b.blocks))*arenaBlock + b.large }

// copyOut copies v (nil: none) out of the response into the fetch's memory
// and closes it, which hands its pages back to kafka-go. Blocks have a fixed
// size and never move: a copied key or value stays where it is, so records
// point into blocks as they are decoded. (One growing arena was copied
// again at every doubling: a quarter of the consumer's CPU in a backlog.)
func (b *buffers) copyOut(pool *blockPool, v protocol.Bytes) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	defer v.Close()
	n := v.Len()
	var dst []byte
	switch {
	case n == 0:
		return []byte{}, nil
	case n > arenaBlock/4:
		// A large message gets its own memory, so that blocks are not left
		// mostly empty.
		dst = make([]byte, n)
		b.large += int64(n)
	default:
		if cap(b.cur)-len(b.cur) < n {
			blk := pool.get()
			b.blocks = append(b.blocks, blk)
			b.cur = blk[:0]
		}
		at := len(b.cur)
		b.cur = b.cur[:at+n]
		dst = b.cur[at : at+n : at+n] // capped: appending to one value cannot overwrite the next
	}
	if _, err := io.ReadFull(v, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// reset returns the blocks to pool and forgets the records.
func (b *buffers) reset(pool *blockPool) {
	for i, blk := range b.blocks {
		pool.put(blk)
		b.blocks[i] = nil
	}
	if b.large > 0 {
		// Records left in the backing array would keep large values alive.
		clear(b.records[:cap(b.records)])
	}
	b.blocks, b.cur, b.large = b.blocks[:0], nil, 0
	b.records, b.gaps = b.records[:0], b.gaps[:0]
}

// arenaBlock is the size of the blocks keys and values are copied into:
// hundreds of typical events each, few per fetch.
const arenaBlock = 256 << 10

// blockPool recycles arena blocks across all readers of a process. Pooled
// blocks are not charged to the budget (a fetch is, for the blocks it
// holds); the garbage collector frees those unused for two cycles.
type blockPool struct{ p sync.Pool }

func (bp *blockPool) get() *[arenaBlock]byte {
	if bp != nil {
		if b, ok := bp.p.Get().(*[arenaBlock]byte); ok {
			return b
		}
	}
	return new([arenaBlock]byte)
}

func (bp *blockPool) put(b *[arenaBlock]byte) {
	if bp != nil {
		bp.p.Put(b)
	}
}

// OffsetOutOfRangeError is returned by Reader.Fetch when the broker answers
// OFFSET_OUT_OF_RANGE: the offset is below the log start (retention or
// DeleteRecords removed it) or past the log end (the log was truncated or
// recreated). The Reader never moves the offset by itself: where to resume,
// and what the records in between mean for the rollups, is the caller's
// decision.
type OffsetOutOfRangeError struct {
	Topic     string
	Partition int
	// Offset is the offset that was fetched.
	Offset int64
	// LogStart and LogEnd are the partition's first offset and high
	// watermark, listed right after the error.
	LogStart, LogEnd int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("fetch %s[%d] at offset %d: offset out of range, the log holds [%d, %d)",
		e.Topic, e.Partition, e.Offset, e.LogStart, e.LogEnd)
}
