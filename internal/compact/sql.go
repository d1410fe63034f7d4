package compact

import (
	"strconv"
	"strings"
)

// Column lists shared by the compaction's INSERT ... SELECT and the view.
const (
	dimensionColumns = "workspace_id, project_id, api_key_id, provider, model, endpoint"
	measureColumns   = "requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens, " +
		"output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events"
	// measureFolds combines measureColumns: every measure sums except the
	// maximum latency.
	measureFolds = "sum(requests), sum(errors), sum(input_tokens), sum(input_text_tokens), sum(input_image_tokens), " +
		"sum(input_cached_tokens), sum(output_tokens), sum(total_tokens), sum(latency_ms_sum), max(latency_ms_max), " +
		"sum(inconsistent_events), sum(late_events)"
)

// newestFrontier is the per-partition frontier of the newest manifest of
// every window of one topic and window size: (topic, window_start,
// partition, folded_below, folded_segment), as the view usage_<window>
// computes it. The caller binds the topic. having filters the manifests
// (e.g. by age).
func newestFrontier(database, window, having string) string {
	q := "SELECT topic, window_start, folded_partition AS `partition`, folded_below, folded_segment FROM (" +
		"SELECT topic, window_start, argMax(partitions, (generation, compaction_id)) AS folded_partitions, " +
		"argMax(below, (generation, compaction_id)) AS folded_belows, " +
		"argMax(if(empty(below_segment), arrayMap(x -> toInt64(0), below), below_segment), " +
		"(generation, compaction_id)) AS folded_segments, " +
		"argMax(created_at, (generation, compaction_id)) AS folded_at " +
		"FROM " + database + ".usage_compactions WHERE topic = ? AND window = '" + window + "' " +
		"GROUP BY topic, window_start"
	if having != "" {
		q += " HAVING " + having
	}
	return q + ") ARRAY JOIN folded_partitions AS folded_partition, folded_belows AS folded_below, " +
		"folded_segments AS folded_segment"
}

// folded renders the condition "the row's piece is below f" for the row's
// partition. ok is false for an empty frontier.
func (f frontier) folded() (cond string, ok bool) {
	chunk, ok := transformPartition(f.partitions, f.below)
	if !ok {
		return "", false
	}
	segment, _ := transformPartition(f.partitions, f.belowSeg)
	return "(chunk < " + chunk + " OR segment < " + segment + ")", true
}

// transformPartition renders transform(`partition`, [partitions], [values],
// 0): the value of the row's partition in a frontier, 0 for a partition the
// frontier does not list. The arrays must be constants on 18.16, hence CAST
// of literals. ok is false for an empty frontier, which transform refuses.
func transformPartition(partitions []int32, values []int64) (expr string, ok bool) {
	if len(partitions) == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("transform(`partition`, CAST([")
	for i, p := range partitions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(p), 10))
	}
	b.WriteString("] AS Array(Int32)), CAST([")
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(v, 10))
	}
	b.WriteString("] AS Array(Int64)), toInt64(0))")
	return b.String(), true
}

// dateTime renders a Unix time as a DateTime('UTC') literal.
func dateTime(sec int64) string {
	return "toDateTime(" + strconv.FormatInt(sec, 10) + ", 'UTC')"
}

// arrayLiteral renders integers as an array literal cast to typ.
func arrayLiteral[T int32 | int64 | uint64](values []T, typ string) string {
	var b strings.Builder
	b.WriteString("CAST([")
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		switch x := any(v).(type) {
		case uint64:
			b.WriteString(strconv.FormatUint(x, 10))
		case int32:
			b.WriteString(strconv.FormatInt(int64(x), 10))
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		}
	}
	b.WriteString("] AS " + typ + ")")
	return b.String()
}
