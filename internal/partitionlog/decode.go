package partitionlog

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
)

// Control record types, from the first four bytes of a control record's key
// (int16 version, int16 type); see Kafka's ControlRecordType.
const (
	controlAbort  = 0
	controlCommit = 1
)

// decoder turns one partition of a fetch response into a Fetch: it applies
// the read-committed filter, drops what lies before the fetch offset, copies
// the surviving keys and values into one arena and works out Next and the
// gaps. It does no I/O, so it can be fed synthetic responses. Its fields are
// scratch space reused across fetches; a decoder serves one fetch at a time.
type decoder struct {
	// aborted are the response's aborted transactions, by first offset.
	aborted []fetch.ResponseTransaction
	// abortedPIDs are the producers whose batches are being skipped: an
	// aborted transaction of theirs started at or before the current batch,
	// and their ABORT marker has not been seen yet.
	abortedPIDs map[int64]struct{}
	// blocks recycles the memory keys and values are copied into; nil
	// allocates every block.
	blocks *blockPool
	// key receives a control record's key.
	key [4]byte
}

// decode fills f from p, the response for a fetch at offset, using buf's
// memory.
//
// The transaction filter is the Java consumer's (CompletedFetch): the broker
// lists, for the fetched range, each aborted transaction as (producer id,
// first offset). Batches come in offset order; before a batch of producer P
// is looked at, every aborted transaction whose first offset is at or before
// the batch's base offset marks its producer as aborting. A transactional
// data batch of an aborting producer is skipped; that producer's control
// batch with an ABORT marker ends it. Control batches (COMMIT and ABORT
// markers) are never surfaced. Batches before offset still go through the
// filter, since a transaction can start before the fetch offset.
//
// kafka-go keeps each batch's base offset but not its last offset, so the
// decoder knows which offsets a response covers only from the records
// present. Next is one past the last record present. When no record at or
// after offset is present although the broker returned batches, the first of
// them still contains offset (the broker starts a response at the first batch
// whose last offset is at or after the fetch offset), so the fetch offset
// itself was removed by compaction: the decoder then records
// [offset, max(offset, base)+1) as a gap and moves Next there. That
// guarantees progress over the empty tail of a compacted batch, one offset per
// fetch, without ever skipping an offset that might hold a record. When no
// batch came back at all, nothing is known past offset and Next stays there,
// whatever the high watermark says: under read-committed the broker returns
// nothing past the last stable offset, and a high watermark read after the
// log was read may already be ahead of it.
func (d *decoder) decode(p *fetch.ResponsePartition, offset int64, buf *buffers, f *Fetch) error {
	f.HighWatermark, f.LastStableOffset, f.LogStartOffset = p.HighWatermark, p.LastStableOffset, p.LogStartOffset
	f.Aborted, f.Control = 0, 0

	d.aborted = append(d.aborted[:0], p.AbortedTransactions...)
	slices.SortFunc(d.aborted, func(a, b fetch.ResponseTransaction) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	if d.abortedPIDs == nil {
		d.abortedPIDs = make(map[int64]struct{})
	}
	clear(d.abortedPIDs)
	records, gaps := buf.records[:0], buf.gaps[:0]

	// expected is the offset the next record has if the log has no hole
	// there; records below it (before the fetch offset) are dropped.
	expected := offset
	// firstBase is where the first batch starts, if a batch came back.
	firstBase, sawBatch := offset, false

	var single [1]protocol.RecordReader
	var batches []protocol.RecordReader
	switch rs := p.RecordSet.Records.(type) {
	case nil:
	case *protocol.RecordStream:
		// Not rs.ReadRecord: it skips control batches and hides which batch
		// (producer, attributes) a record belongs to.
		batches = rs.Records
	default:
		single[0] = rs
		batches = single[:]
	}

	for _, b := range batches {
		var (
			attrs   protocol.Attributes
			pid     int64 = -1
			base    int64
			hasBase bool
		)
		switch b := b.(type) {
		case *protocol.RecordBatch:
			attrs, pid, base, hasBase = b.Attributes, b.ProducerID, b.BaseOffset, true
		case *protocol.ControlBatch:
			attrs, pid, base, hasBase = b.Attributes|protocol.Control, b.ProducerID, b.BaseOffset, true
		default:
			// Message format v0/v1 (kafka-go's unexported readers): no
			// producer ids, no transactions. Kafka 4 no longer stores it.
		}
		if !sawBatch {
			sawBatch = true
			if hasBase && base > offset {
				firstBase = base
			}
		}
		if pid >= 0 {
			d.markAborting(base)
		}
		_, aborting := d.abortedPIDs[pid]
		skipAborted := attrs.Transactional() && !attrs.Control() && aborting

		for {
			rec, err := b.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read record of batch at offset %d: %w", base, err)
			}
			if attrs.Control() {
				if d.isAbortMarker(rec) {
					delete(d.abortedPIDs, pid)
				}
			}
			if rec.Offset < expected || attrs.Control() || skipAborted {
				if rec.Offset >= expected {
					if attrs.Control() {
						f.Control++
					} else {
						f.Aborted++
					}
					gaps = appendGap(gaps, expected, rec.Offset)
					expected = rec.Offset + 1
				}
				closeBytes(rec.Key)
				closeBytes(rec.Value)
				continue
			}
			gaps = appendGap(gaps, expected, rec.Offset)
			expected = rec.Offset + 1
			r := Record{Offset: rec.Offset, Time: rec.Time}
			if r.Key, err = buf.copyOut(d.blocks, rec.Key); err != nil {
				return fmt.Errorf("read key of record at offset %d: %w", rec.Offset, err)
			}
			if r.Value, err = buf.copyOut(d.blocks, rec.Value); err != nil {
				return fmt.Errorf("read value of record at offset %d: %w", rec.Offset, err)
			}
			records = append(records, r)
		}
	}

	switch {
	case expected > offset:
		f.Next = expected
	case sawBatch:
		gaps = append(gaps, Range{From: offset, To: firstBase + 1})
		f.Next = firstBase + 1
	default:
		f.Next = offset
	}
	f.Records, f.Gaps = records, gaps
	buf.records, buf.gaps = records, gaps
	return nil
}

// markAborting moves the aborted transactions that started at or before a
// batch at base into abortedPIDs.
func (d *decoder) markAborting(base int64) {
	n := 0
	for n < len(d.aborted) && d.aborted[n].FirstOffset <= base {
		d.abortedPIDs[d.aborted[n].ProducerID] = struct{}{}
		n++
	}
	d.aborted = d.aborted[n:]
}

// isAbortMarker reports whether the control record rec is an ABORT marker.
// A key too short to hold a type is not one; Kafka ignores unknown control
// types the same way.
func (d *decoder) isAbortMarker(rec *protocol.Record) bool {
	if rec.Key == nil || rec.Key.Len() < len(d.key) {
		return false
	}
	if _, err := io.ReadFull(rec.Key, d.key[:]); err != nil {
		return false
	}
	return int16(d.key[2])<<8|int16(d.key[3]) == controlAbort
}

// appendGap appends [from, to) to gaps unless it is empty.
func appendGap(gaps []Range, from, to int64) []Range {
	if to > from {
		gaps = append(gaps, Range{From: from, To: to})
	}
	return gaps
}

func closeBytes(b protocol.Bytes) {
	if b != nil {
		b.Close()
	}
}
