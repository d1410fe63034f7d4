//go:build faults

package faults

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// Headers of a dead letter (README, DEAD_LETTER_TOPIC; docs/operations.md,
// "Dead letters"), spelt out here as the contract the suite checks.
const (
	hdrReason       = "usage-rollup-reason"
	hdrSourceTopic  = "usage-rollup-source-topic"
	hdrSourcePart   = "usage-rollup-source-partition"
	hdrSourceOffset = "usage-rollup-source-offset"
	hdrTruncated    = "usage-rollup-truncated"
	hdrOriginalSize = "usage-rollup-original-size"
)

func headerMap(hs []kafka.Header) map[string]string {
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}

// checkDeadLetters checks I9 against the log and its truth: the dead-letter
// topic holds at least one record for every rejected offset (at-least-once:
// replays may repeat one) and none for any other; each names its source and
// reason and carries the original key and value, or, marked truncated, the
// value's first aggregate.MaxRejectedPayload bytes and its original size. It
// returns the records by source offset.
func (s *scenario) checkDeadLetters(ctx context.Context, log map[int][]record, tr *truth) map[offsetKey][]record {
	s.t.Helper()
	ends, err := s.adm.endOffsets(ctx, s.deadLetter, 1)
	if err != nil {
		s.t.Fatal(err)
	}
	dl, err := s.adm.readLog(ctx, s.deadLetter, ends)
	if err != nil {
		s.t.Fatal(err)
	}
	got := map[offsetKey][]record{}
	var diffs []string
	truncated := 0
	for _, r := range dl[0] {
		h := headerMap(r.headers)
		p, perr := strconv.Atoi(h[hdrSourcePart])
		off, oerr := strconv.ParseInt(h[hdrSourceOffset], 10, 64)
		if h[hdrSourceTopic] != s.topic || perr != nil || oerr != nil || off < 0 || off >= int64(len(log[p])) {
			diffs = append(diffs, fmt.Sprintf("dead letter %d names source %q/%q/%q, not a record of %s",
				r.offset, h[hdrSourceTopic], h[hdrSourcePart], h[hdrSourceOffset], s.topic))
			continue
		}
		k := offsetKey{p, off}
		got[k] = append(got[k], r)
		orig := log[p][off]
		reason, rejected := tr.rejected[k]
		switch {
		case !rejected:
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d has a dead letter but was not rejected", p, off))
		case h[hdrReason] != reason:
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d: dead letter reason %q, want %q", p, off, h[hdrReason], reason))
		case !bytes.Equal(r.key, orig.key):
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d: dead letter key %q, want %q", p, off, r.key, orig.key))
		case h[hdrTruncated] == "true":
			truncated++
			if !bytes.Equal(r.value, orig.value[:min(len(orig.value), aggregate.MaxRejectedPayload)]) ||
				h[hdrOriginalSize] != strconv.Itoa(len(orig.value)) {
				diffs = append(diffs, fmt.Sprintf("partition %d offset %d: truncated dead letter of %d bytes, original size %q; want the first %d of %d bytes",
					p, off, len(r.value), h[hdrOriginalSize], aggregate.MaxRejectedPayload, len(orig.value)))
			}
		case !bytes.Equal(r.value, orig.value):
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d: dead letter of %d bytes differs from the %d-byte original",
				p, off, len(r.value), len(orig.value)))
		}
	}
	for k, reason := range tr.rejected {
		if len(got[k]) == 0 {
			diffs = append(diffs, fmt.Sprintf("partition %d offset %d (%s) has no dead letter", k.partition, k.offset, reason))
		}
	}
	s.res.check(s.t, "I9 dead letters", diffs, fmt.Sprintf("%d rejected offsets each on the dead-letter topic: %d records (replays may repeat one), %d truncated",
		len(tr.rejected), len(dl[0]), truncated))
	return got
}
