package sink

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// maxMonthsPerInsert bounds the months one INSERT into a rollup table or
// usage_rejected_log spans. Both are partitioned by month (toYYYYMM of
// window_start, of record_time), and current servers refuse a block that
// touches more than max_partitions_per_insert_block partitions (default 100)
// with TOO_MANY_PARTS, which no retry can fix; 18.16 has no such limit. A
// historical backfill or garbage timestamps (clamped to 1970 or 2106) can put
// a batch over it.
//
// Rows are grouped by month in ascending order and every month's rows go into
// one INSERT, so the parts a batch creates (one per month touched) are the
// same whatever the bound: it only trades round trips for the breadth of one
// INSERT. 12 keeps a live batch (one or two months) in a single INSERT, costs
// one INSERT per year of history in a backfill, stays far under the default
// of 100 and any sensible lowered setting, and bounds the parts one INSERT
// writes synchronously within CLICKHOUSE_INSERT_TIMEOUT.
const maxMonthsPerInsert = 12

// monthIndex returns the partition month of a Unix time in seconds as
// year*12 + month-1, after the clamping the writer applies (utcSeconds), so
// that it matches toYYYYMM of the stored DateTime('UTC') value.
func monthIndex(sec int64) int32 {
	t := time.Unix(utcSeconds(sec), 0).UTC()
	return int32(t.Year()*12 + int(t.Month()) - 1)
}

// monthName formats a monthIndex as toYYYYMM shows it, e.g. 202405.
func monthName(m int32) string { return fmt.Sprintf("%04d%02d", m/12, m%12+1) }

// splitByMonth plans the INSERTs of one table's rows, given the partition
// month (monthIndex) of each row. It returns nil when the rows span at most
// maxMonths consecutive months: the usual case, sent as one INSERT in the
// rows' own order, decided without sorting or allocating. Otherwise it
// returns groups of row indexes, one INSERT each, in ascending month order;
// each group spans at most maxMonths distinct months, each month's rows are
// in exactly one group, and rows of one month keep their relative order.
func splitByMonth(months []int32, maxMonths int) [][]int {
	if len(months) == 0 {
		return nil
	}
	lo, hi := months[0], months[0]
	for _, m := range months[1:] {
		lo, hi = min(lo, m), max(hi, m)
	}
	if int(hi-lo) < maxMonths {
		return nil
	}
	order := make([]int, len(months))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(months[a], months[b]) })
	var groups [][]int
	start, distinct := 0, 1
	for i := 1; i < len(order); i++ {
		if months[order[i]] == months[order[i-1]] {
			continue
		}
		if distinct == maxMonths {
			groups = append(groups, order[start:i:i])
			start, distinct = i, 0
		}
		distinct++
	}
	return append(groups, order[start:])
}
