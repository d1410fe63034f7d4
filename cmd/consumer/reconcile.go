package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
)

// reconcile prints, per partition, what the rollup tables account for next
// to the log: offsets written, accepted + rejected + duplicates, the log end
// and the group's committed offset. It fails when a partition's counts do
// not add up to the offsets written.
func reconcile(ctx context.Context, cfg config, rd *audit.Reader, k *kafka.Client, out io.Writer) error {
	topic := cfg.consumer.Topic
	progress, err := rd.Progress(ctx, topic)
	if err != nil {
		return err
	}
	ends, committed, err := logOffsets(ctx, k, cfg.consumer.GroupID, topic, progress)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partition\tfirst_offset\twritten_to\tlog_end\tcommitted\taccepted\trejected\tduplicates\tbalance\t")
	mismatches := 0
	for _, p := range progress {
		balance := "ok"
		if !p.Balanced() {
			balance = fmt.Sprintf("MISMATCH (%d offsets, %d counted)", p.NextOffset-p.FirstOffset, p.Accepted+p.Rejected+p.Duplicates)
			mismatches++
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Partition, p.FirstOffset, p.NextOffset,
			ends[int(p.Partition)], committed[int(p.Partition)], p.Accepted, p.Rejected, p.Duplicates, balance)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if mismatches > 0 {
		return fmt.Errorf("%d partitions of %q do not reconcile (offset gaps from compaction or transactions also show here)", mismatches, topic)
	}
	return nil
}

// logOffsets reads the log end offsets and the group's committed offsets.
func logOffsets(ctx context.Context, k *kafka.Client, group, topic string, progress []audit.PartitionProgress) (ends, committed map[int]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids := make([]int, len(progress))
	for i, p := range progress {
		ids[i] = int(p.Partition)
	}
	ends, err = kafkaoffsets.Ends(ctx, k, topic, ids...)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	fetched, err := k.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, nil, fmt.Errorf("fetch committed offsets of group %q: %w", group, err)
	}
	committed = map[int]int64{}
	for _, po := range fetched.Topics[topic] {
		committed[po.Partition] = po.CommittedOffset
	}
	return ends, committed, nil
}
