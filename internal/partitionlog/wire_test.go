package partitionlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
)

// The tests build fetch responses from wire bytes that they encode
// themselves (record batch format v2, as a Kafka 4 broker stores it) and
// decode with kafka-go, so the decoder sees exactly the types and memory
// kafka-go hands it for a real response: kafka-go's own encoder cannot set
// producer ids, transactional or control attributes, or offset holes.

// testBaseTime is the first timestamp of every synthetic batch.
var testBaseTime = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// batch describes one record batch.
type batch struct {
	base int64
	// pid is the producer id; 0 means none (-1 on the wire), since tests
	// use small positive ids.
	pid           int64
	transactional bool
	// marker makes a control batch of one record at base holding this
	// control type (controlAbort or controlCommit).
	marker *int16
	gzip   bool
	// lastDelta overrides lastOffsetDelta, which otherwise is the last
	// record's offset delta: a compacted batch keeps its original last
	// offset.
	lastDelta *int32
	records   []rec
}

// rec is one record; delta is its offset delta from the batch base and its
// timestamp delta in milliseconds.
type rec struct {
	delta      int64
	key, value []byte
}

var (
	abortMarker  = int16(controlAbort)
	commitMarker = int16(controlCommit)
)

// data returns records with consecutive deltas from 0 and values "v<offset>".
// plain is a batch of n records from base, written without a producer id.
func plain(base int64, n int) batch { return batch{base: base, records: data(base, n)} }

// txn is a transactional batch of producer pid: n records from base.
func txn(pid, base int64, n int) batch {
	return batch{base: base, pid: pid, transactional: true, records: data(base, n)}
}

// abortAt and commitAt are producer pid's control batches at offset base,
// ending its transaction.
func abortAt(pid, base int64) batch { return batch{base: base, pid: pid, marker: &abortMarker} }

func commitAt(pid, base int64) batch { return batch{base: base, pid: pid, marker: &commitMarker} }

func data(base int64, n int) []rec {
	rs := make([]rec, n)
	for i := range rs {
		rs[i] = rec{delta: int64(i), key: []byte("k"), value: []byte(value(base + int64(i)))}
	}
	return rs
}

// value is the value data gives the record at offset.
func value(offset int64) string { return "v" + strconv.FormatInt(offset, 10) }

func (b batch) encode(t testing.TB) []byte {
	t.Helper()
	records := b.records
	attrs := int16(0)
	if b.transactional || b.marker != nil {
		attrs |= int16(protocol.Transactional)
	}
	if b.marker != nil {
		attrs |= int16(protocol.Control)
		key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(*b.marker))
		value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), 0) // version, coordinator epoch
		records = []rec{{delta: 0, key: key, value: value}}
	}
	var body []byte
	for _, r := range records {
		var one []byte
		one = append(one, 0) // attributes
		one = binary.AppendVarint(one, r.delta)
		one = binary.AppendVarint(one, r.delta)
		one = appendVarBytes(one, r.key)
		one = appendVarBytes(one, r.value)
		one = binary.AppendVarint(one, 0) // headers
		body = binary.AppendVarint(body, int64(len(one)))
		body = append(body, one...)
	}
	if b.gzip {
		attrs |= int16(compress.Gzip)
		var z bytes.Buffer
		w := compress.Gzip.Codec().NewWriter(&z)
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		body = z.Bytes()
	}
	lastDelta := int32(0)
	if n := len(records); n > 0 {
		lastDelta = int32(records[n-1].delta)
	}
	if b.lastDelta != nil {
		lastDelta = *b.lastDelta
	}
	pid := b.pid
	if pid == 0 {
		pid = -1
	}
	ts := testBaseTime.UnixMilli()
	var h []byte
	h = binary.BigEndian.AppendUint16(h, uint16(attrs))
	h = binary.BigEndian.AppendUint32(h, uint32(lastDelta))
	h = binary.BigEndian.AppendUint64(h, uint64(ts))                  // first timestamp
	h = binary.BigEndian.AppendUint64(h, uint64(ts+int64(lastDelta))) // max timestamp
	h = binary.BigEndian.AppendUint64(h, uint64(pid))
	h = binary.BigEndian.AppendUint16(h, 0) // producer epoch
	h = binary.BigEndian.AppendUint32(h, 0) // base sequence
	h = binary.BigEndian.AppendUint32(h, uint32(len(records)))
	h = append(h, body...)

	var out []byte
	out = binary.BigEndian.AppendUint64(out, uint64(b.base))
	out = binary.BigEndian.AppendUint32(out, uint32(4+1+4+len(h))) // epoch, magic, crc, rest
	out = binary.BigEndian.AppendUint32(out, 0)                    // partition leader epoch
	out = append(out, 2)                                           // magic
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
	return append(out, h...)
}

func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

// recordSetBytes is the size-prefixed record set of a fetch response.
func recordSetBytes(t testing.TB, batches ...batch) []byte {
	t.Helper()
	var raw []byte
	for _, b := range batches {
		raw = append(raw, b.encode(t)...)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(raw))), raw...)
}

// readRecordSet decodes wire bytes the way kafka-go decodes a fetch
// response's records: from a bufio.Reader.
func readRecordSet(t testing.TB, wire []byte) protocol.RecordSet {
	t.Helper()
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bufio.NewReader(bytes.NewReader(wire))); err != nil {
		t.Fatalf("decode record set: %v", err)
	}
	return rs
}

// partition is a response partition holding batches.
type partition struct {
	aborted []fetch.ResponseTransaction
	batches []batch
}

func (p partition) response(t testing.TB) *fetch.ResponsePartition {
	t.Helper()
	next := int64(0)
	for _, b := range p.batches {
		next = b.base + 1
		if n := len(b.records); n > 0 {
			next = b.base + b.records[n-1].delta + 1
		}
	}
	return &fetch.ResponsePartition{
		HighWatermark:       next,
		LastStableOffset:    next,
		AbortedTransactions: p.aborted,
		RecordSet:           readRecordSet(t, recordSetBytes(t, p.batches...)),
	}
}
